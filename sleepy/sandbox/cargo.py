"""Cargo mode for multi-file crates. The crate is checked and copied without following a symlink,
then built contained like a one-file program (a throwaway uid, a sized tmpfs, no network); its
target dir is cached per content, so a repeat of the same crate is incremental and two different
crates never share one."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from sleepy.sandbox.guard import deny_reason
from sleepy.sandbox.isolation import WORKDIR, execute, with_env
from sleepy.sandbox.result import (
    SandboxResult,
    diagnostic_from_json,
    harness_summary,
    parse_test_output,
)
from sleepy.sandbox.workdir import Workdir

if TYPE_CHECKING:
    from sleepy.sandbox.rustc import Sandbox

COMMANDS = ("check", "test", "run")
CRATE, TARGET = f"{WORKDIR}/crate", f"{WORKDIR}/target"
# read-only binds: the checked copy of the crate, and the cached target dir for its content
CRATE_IN, CACHE_IN = "/in/crate", "/in/target"
MAX_FILES = 10_000
# Every copied file gets this mtime: the target dir is keyed by the crate's content, so a file
# is never newer than what cargo built from it, and whole-second mtimes in the tar that carries
# the target dir out of its tmpfs cannot make cargo think otherwise.
SOURCE_MTIME = 946_684_800  # 2000-01-01

# Manifest keys that would build or fetch other code: every dependency table and the tables that
# rewrite dependencies. Cargo reads `dev_dependencies` like `dev-dependencies`, so both spellings.
_DEPENDENCY_KEYS = {
    "dependencies", "dev-dependencies", "build-dependencies", "target", "patch", "replace",
}  # fmt: skip
_TARGET_TABLES = ("lib", "bin", "test", "example", "bench")


class CrateRefused(Exception):
    """The crate cannot be built in the sandbox; the message says why."""


def default_target_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sleepy" / "cargo-target"


def copy_crate(src: Path, dest: Path, max_bytes: int) -> str:
    """Copy the crate's files into `dest` (not `target/`, `.git/`) and return a hash of its
    content. No symlink is followed: one pointing outside the crate, a special file, a
    crate-local `.cargo/` config, or more than `max_bytes` of files refuse the crate."""
    digest = hashlib.sha256()
    state = {"bytes": 0, "files": 0}
    os.mkdir(dest, 0o755)
    _copy_dir(Path(src), dest, "", digest, state, max_bytes)
    # Lexical checks cannot see through a chain of links (`a -> b/..`, `b -> .`): resolve
    # each copied link inside the copy, where every link it passes through is a copied one.
    root = os.path.realpath(dest)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if os.path.commonpath([real, root]) != root:
                    rel = os.path.relpath(path, dest)
                    raise CrateRefused(f"{rel}: a symlink that points outside the crate")
    return digest.hexdigest()


def _copy_dir(src: Path, dest: Path, rel: str, digest, state: dict, max_bytes: int) -> None:
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = posixpath.join(rel, entry.name) if rel else entry.name
        if name in ("target", ".git"):
            continue
        st = entry.stat(follow_symlinks=False)
        state["files"] += 1
        if state["files"] > MAX_FILES:
            raise CrateRefused(f"the crate has more than {MAX_FILES} files")
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(entry.path)
            inside = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
            if posixpath.isabs(link) or inside == ".." or inside.startswith("../"):
                raise CrateRefused(f"{name}: a symlink that points outside the crate ({link!r})")
            os.symlink(link, dest / entry.name)
            digest.update(b"L\0" + os.fsencode(name) + b"\0" + os.fsencode(link) + b"\0")
        elif stat.S_ISDIR(st.st_mode):
            if entry.name == ".cargo":
                raise CrateRefused(f"{name}: crate-local cargo config is not allowed")
            os.mkdir(dest / entry.name, 0o755)
            digest.update(b"D\0" + os.fsencode(name) + b"\0")
            _copy_dir(Path(entry.path), dest / entry.name, name, digest, state, max_bytes)
        elif stat.S_ISREG(st.st_mode):
            data = _read_regular(entry.path, max_bytes - state["bytes"])
            if data is None:
                raise CrateRefused(f"the crate's files pass {max_bytes >> 20} MiB")
            state["bytes"] += len(data)
            mode = 0o755 if st.st_mode & 0o100 else 0o644  # readable by the compiler's uid
            fd = os.open(dest / entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.utime(dest / entry.name, (SOURCE_MTIME, SOURCE_MTIME))
            digest.update(b"F\0" + os.fsencode(name) + b"\0%o\0%d\0" % (mode, len(data)) + data)
        else:
            raise CrateRefused(f"{name}: not a regular file, directory or symlink")


def _read_regular(path: str, budget: int) -> bytes | None:
    """The file's bytes (None past `budget`), opened so that a file swapped for a symlink or a
    fifo since it was listed is refused rather than followed or waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CrateRefused(f"{path}: changed while it was copied")
        data = f.read(max(budget, 0) + 1)
    return None if len(data) > budget else data


def _outside(path) -> bool:
    p = str(path)
    return posixpath.isabs(p) or ".." in Path(p).parts or "\\" in p


def manifest_deny_reason(manifest: dict) -> str | None:
    """Why this Cargo.toml may not be built: it would run code at build time (a build script, a
    proc macro), build other code (dependencies, workspaces) or read outside the crate. Keys are
    compared the way cargo reads them, `-` and `_` alike."""

    def norm(table: dict) -> dict:
        return {k.replace("_", "-"): v for k, v in table.items()} if isinstance(table, dict) else {}

    top = norm(manifest)
    if "cargo-features" in top:
        return "Cargo.toml cargo-features: unstable cargo features are not allowed in the sandbox"
    dependencies = sorted(_DEPENDENCY_KEYS & top.keys())
    if dependencies:
        return f"Cargo.toml [{dependencies[0]}]: dependencies are not allowed in the sandbox"
    if "workspace" in top:
        return "Cargo.toml [workspace]: workspaces are not supported; give one crate"
    package = norm(top.get("package") or top.get("project") or {})
    if "workspace" in package:
        return "Cargo.toml package.workspace: workspaces are not supported; give one crate"
    if package.get("build", False) is not False:
        return "build scripts (package.build) are not allowed in the sandbox"
    for kind in _TARGET_TABLES:
        tables = top.get(kind)
        for table in tables if isinstance(tables, list) else [tables]:
            t = norm(table)
            types = t.get("crate-type", [])
            types = types if isinstance(types, list) else [types]
            if (
                t.get("proc-macro")
                or t.get("plugin")
                or any(str(c).replace("_", "-") == "proc-macro" for c in types)
            ):
                return f"Cargo.toml [{kind}]: proc-macro crates are not allowed in the sandbox"
            if "path" in t and _outside(t["path"]):
                return f"Cargo.toml [{kind}] path {t['path']!r} is outside the crate"
    return None


def crate_deny_reason(crate: Path) -> str | None:
    """Crates run offline and build nothing but their own code: no dependencies, no build
    scripts, no proc macros (each would run code at build time). `crate` is the checked copy."""
    try:
        manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        return f"Cargo.toml is not valid TOML: {e}"
    reason = manifest_deny_reason(manifest)
    if reason:
        return reason
    if os.path.lexists(crate / "build.rs"):
        return "build scripts (build.rs) are not allowed in the sandbox"
    for dirpath, _, filenames in os.walk(crate):
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith(".rs") and not path.is_symlink():
                reason = deny_reason(path.read_text(errors="replace"))
                if reason:
                    return f"{path.relative_to(crate)}: {reason}"
    return None


def run_cargo(
    sb: Sandbox, crate: str | Path, command: str = "test", stdin: str = ""
) -> SandboxResult:
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

    lim = sb.limits
    with Workdir() as wd:
        copy = wd.path / "crate"
        try:
            key = copy_crate(crate, copy, lim.compile_scratch_bytes)
        except CrateRefused as e:
            return done("denied", str(e))
        reason = crate_deny_reason(copy)
        if reason:
            return done("denied", reason)
        key = hashlib.sha256(f"{key} {sb.toolchain.sysroot}".encode()).hexdigest()[:32]
        root = sb.cargo_target_dir or default_target_dir()
        root.mkdir(parents=True, exist_ok=True)
        cached = root / key
        inside = sb.jail.mode == "bwrap"
        if inside:
            crate_at, target_at = CRATE, TARGET
            binds = [*sb.toolchain.binds(), (str(copy), CRATE_IN)]
            prepare = f"cp -a {CRATE_IN} {CRATE}"
            if cached.is_dir():
                binds.append((str(cached), CACHE_IN))
                prepare += f" && {{ cp -a {CACHE_IN} {TARGET} || true; }}"
            export = f"tar -C {TARGET} -cf - ."
        else:  # no tmpfs to build in: the cached dir itself is the target dir
            crate_at, target_at = str(copy), str(cached)
            binds, prepare, export = [], "", None
        sub = {"check": ["check", "--all-targets"], "test": ["test", "--no-run"], "run": ["build"]}
        argv = [str(sb.toolchain.cargo), *sub[command], "--offline", "--message-format=json"]
        argv += ["--manifest-path", f"{crate_at}/Cargo.toml"]
        home = WORKDIR if inside else str(wd.path)
        env = {
            "PATH": f"{sb.toolchain.sysroot}/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": home,
            "CARGO_HOME": f"{home}/cargo-home",
            "CARGO_TARGET_DIR": target_at,
            "RUSTC": str(sb.toolchain.rustc),
            "CARGO_TERM_COLOR": "never",
            "LC_ALL": "C",
        }
        uid = sb.jail.compile_uid()
        cmd, switched = sb.jail.compile_command(argv, binds, uid, export=export, prepare=prepare)
        cmd = with_env(cmd, env)
        tar = wd.path / "target.tar"
        fd = os.open(tar, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600) if export else None
        try:
            outcome = execute(
                cmd, env, lim.compile_timeout, lim.compile_output_bytes, cwd=wd.path,
                uid=None if switched else uid, cleanup_uid=uid, export_to=fd,
            )  # fmt: skip
        finally:
            if fd is not None:
                os.close(fd)
        executables: list[tuple[str, str]] = []  # (target name, path inside)
        seen = set()
        for line in outcome.stdout.splitlines():
            if not line.startswith("{"):
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if msg.get("reason") == "compiler-message":
                d = diagnostic_from_json(msg["message"])
                if d is not None and d.rendered not in seen:
                    seen.add(d.rendered)
                    res.diagnostics.append(d)
            elif msg.get("reason") == "compiler-artifact":
                if not msg.get("fresh", True):
                    res.compiled.append(msg["target"]["name"])
                # `cargo test` also builds the plain binary (for integration tests): not a harness
                is_harness = (msg.get("profile") or {}).get("test", False)
                if msg.get("executable") and (command != "test" or is_harness):
                    executables.append((msg["target"]["name"], msg["executable"]))
        failure = sb.compile_failure(res.diagnostics, outcome)
        if failure:
            if failure[0] != "compile_error":
                res.stderr = outcome.stderr[-4000:]
            return done(*failure)
        built = cached
        if export:
            built = wd.path / "target"
            _extract(tar, built)
            if res.compiled or not cached.is_dir():
                _keep(tar, root, cached)
        if command == "check":
            return done()
        bins = []
        for i, (name, path) in enumerate(executables):
            host = built / os.path.relpath(path, target_at)
            local = f"exe-{i}"
            if os.path.relpath(path, target_at).startswith("..") or not host.is_file():
                return done("killed", f"cargo reported an executable outside its target: {path}")
            shutil.copyfile(host, wd.path / local)
            os.chmod(wd.path / local, 0o755)
            bins.append((name, local))
        if command == "test":
            for name, local in bins:
                out = sb.run_binary(wd, local, [])
                passed, failed = parse_test_output(out.stdout)
                prefix = f"{name}::" if len(bins) > 1 else ""
                res.passed_tests += [prefix + t for t in passed]
                res.failed_tests.update({prefix + t: m for t, m in failed.items()})
                res.stderr += out.stderr
                stop = sb.run_failure(out)
                if stop:
                    return done(*stop)
                if out.returncode != 0 and not failed:
                    return done(
                        "test_failed", out.stderr.strip()[-300:] or "the test harness failed"
                    )
                if not failed and harness_summary(out.stdout) is None:
                    return done("test_failed", f"{name}'s test harness exited before its summary")
            if res.failed_tests:
                return done("test_failed", next(iter(res.failed_tests.values())))
            return done()
        if len(bins) != 1:
            return done("runtime_error", f"the crate has {len(bins)} binaries; cargo run needs one")
        out = sb.run_binary(wd, bins[0][1], [], stdin)
        res.stdout, res.stderr = out.stdout, out.stderr
        stop = sb.run_failure(out)
        if stop:
            return done(*stop)
        if out.returncode != 0:
            return done("runtime_error", f"exit status {out.returncode}")
        return done()


def _extract(tar: Path, dest: Path) -> None:
    """The target dir the build wrote out; tar's data filter refuses links out of it, device
    files and absolute paths, and drops ownership and set-id bits."""
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")


def _keep(tar: Path, root: Path, cached: Path) -> None:
    """Install this content's target dir as its cache, replacing an older one atomically."""
    staged = Path(tempfile.mkdtemp(dir=root, prefix=f".{cached.name}-"))
    os.chmod(staged, 0o755)  # the next build's uid copies it
    try:
        _extract(tar, staged)
        if cached.is_dir():
            old = Path(tempfile.mkdtemp(dir=root, prefix=f".{cached.name}-old-"))
            os.rename(cached, old / "t")
            shutil.rmtree(old, ignore_errors=True)
        os.rename(staged, cached)
    except OSError:  # a concurrent build of the same content installed its own
        shutil.rmtree(staged, ignore_errors=True)
