"""Cargo mode for multi-file crates: the crate is copied into a fresh dir that rustc always sees
at /sandbox/crate, and the target dir is shared, so repeated checks compile incrementally."""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from sleepy.sandbox.guard import deny_reason
from sleepy.sandbox.isolation import WORKDIR, execute, with_env
from sleepy.sandbox.result import SandboxResult, diagnostic_from_json, parse_test_output

if TYPE_CHECKING:
    from sleepy.sandbox.rustc import Sandbox

COMMANDS = ("check", "test", "run")
CRATE, TARGET = f"{WORKDIR}/crate", f"{WORKDIR}/target"


def default_target_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sleepy" / "cargo-target"


def crate_deny_reason(crate: Path) -> str | None:
    """Crates run offline and build nothing but their own code: no dependencies, no build
    scripts, no proc macros (each would run code at build time, outside the program's limits)."""
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    for section in ("dependencies", "dev-dependencies", "build-dependencies", "target"):
        if manifest.get(section):
            return f"Cargo.toml [{section}]: dependencies are not allowed in the sandbox"
    if manifest.get("workspace"):
        return "Cargo.toml [workspace]: workspaces are not supported; give one crate"
    if (
        manifest.get("package", {}).get("build") not in (None, False)
        or (crate / "build.rs").exists()
    ):
        return "build scripts (build.rs) are not allowed in the sandbox"
    if manifest.get("lib", {}).get("proc-macro"):
        return "proc-macro crates are not allowed in the sandbox"
    for rs in sorted(crate.rglob("*.rs")):
        if "target" in rs.relative_to(crate).parts:
            continue
        reason = deny_reason(rs.read_text(errors="replace"))
        if reason:
            return f"{rs.relative_to(crate)}: {reason}"
    return None


def run_cargo(
    sb: Sandbox, crate: str | Path, command: str = "test", stdin: str = ""
) -> SandboxResult:
    from sleepy.sandbox.rustc import Workdir

    start = time.perf_counter()
    crate = Path(crate)
    if command not in COMMANDS:
        raise ValueError(f"cargo command '{command}' must be one of {list(COMMANDS)}")
    if not (crate / "Cargo.toml").is_file():
        raise ValueError(f"{crate}: no Cargo.toml; give the folder of a Cargo crate")
    if sb.toolchain.cargo is None:
        raise ValueError("cargo not found next to rustc; install it to use cargo mode")
    res = SandboxResult(status="ok", isolation=sb.isolation)

    def done(status: str = "ok", detail: str = "") -> SandboxResult:
        res.status, res.detail, res.wall_time = status, detail, time.perf_counter() - start
        return res

    reason = crate_deny_reason(crate)
    if reason:
        return done("denied", reason)
    target = sb.cargo_target_dir or default_target_dir()
    target.mkdir(parents=True, exist_ok=True)
    with Workdir() as wd:
        # copy2 keeps mtimes, so cargo's fingerprints see unchanged files as unchanged
        shutil.copytree(crate, wd.path / "crate", ignore=shutil.ignore_patterns("target", ".git"))
        inside = sb.jail.mode == "bwrap"
        crate_at, target_at = (CRATE, TARGET) if inside else (str(wd.path / "crate"), str(target))
        sub = {"check": ["check", "--all-targets"], "test": ["test", "--no-run"], "run": ["build"]}
        argv = [str(sb.toolchain.cargo), *sub[command], "--offline", "--message-format=json"]
        argv += ["--manifest-path", f"{crate_at}/Cargo.toml"]
        env = {
            "PATH": f"{sb.toolchain.sysroot}/bin:/usr/bin:/bin",
            "HOME": WORKDIR if inside else str(wd.path),
            "CARGO_HOME": f"{WORKDIR if inside else wd.path}/cargo-home",
            "CARGO_TARGET_DIR": target_at,
            "RUSTC": str(sb.toolchain.rustc),
            "CARGO_TERM_COLOR": "never",
            "LC_ALL": "C",
        }
        cmd = sb.jail.compile_command(
            argv, wd.path, sb.toolchain.binds(), rw_binds=[(str(target), TARGET)], net=True
        )
        cmd = with_env(cmd, env)
        lim = sb.limits
        outcome = execute(cmd, env, lim.compile_timeout, lim.compile_output_bytes, cwd=wd.path)
        executables: list[tuple[str, str]] = []  # (target name, path inside)
        seen = set()
        for line in outcome.stdout.splitlines():
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("reason") == "compiler-message":
                d = diagnostic_from_json(msg["message"])
                if d is not None and d.rendered not in seen:
                    seen.add(d.rendered)
                    res.diagnostics.append(d)
            elif msg.get("reason") == "compiler-artifact":
                if not msg.get("fresh", True):
                    res.compiled.append(msg["target"]["name"])
                if msg.get("executable"):
                    executables.append((msg["target"]["name"], msg["executable"]))
        failure = sb._compile_failure(res.diagnostics, outcome)
        if failure:
            if failure[0] != "compile_error":
                res.stderr = outcome.stderr[-4000:]
            return done(*failure)
        if command == "check":
            return done()
        bins = []
        for i, (name, path) in enumerate(executables):
            host = Path(str(target) + path[len(target_at) :])
            local = f"exe-{i}"
            shutil.copy2(host, wd.path / local)
            bins.append((name, local))
        if command == "test":
            for name, local in bins:
                out = sb._exec(wd, local, [])
                passed, failed = parse_test_output(out.stdout)
                prefix = f"{name}::" if len(bins) > 1 else ""
                res.passed_tests += [prefix + t for t in passed]
                res.failed_tests.update({prefix + t: m for t, m in failed.items()})
                res.stderr += out.stderr
                stop = sb._run_failure(out)
                if stop:
                    return done(*stop)
                if out.returncode != 0 and not failed:
                    return done(
                        "test_failed", out.stderr.strip()[-300:] or "the test harness failed"
                    )
            if res.failed_tests:
                return done("test_failed", next(iter(res.failed_tests.values())))
            return done()
        if len(bins) != 1:
            return done("runtime_error", f"the crate has {len(bins)} binaries; cargo run needs one")
        out = sb._exec(wd, bins[0][1], [], stdin)
        res.stdout, res.stderr = out.stdout, out.stderr
        stop = sb._run_failure(out)
        if stop:
            return done(*stop)
        if out.returncode != 0:
            return done("runtime_error", f"exit status {out.returncode}")
        return done()
