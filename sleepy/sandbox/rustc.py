"""The sandbox for one-file programs: rustc called directly (no cargo project per koan), the
test harness and `main` run contained, and the one definition of a passing fix (`verdict`)."""

from __future__ import annotations

import atexit
import functools
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sleepy.koan.model import Koan
from sleepy.sandbox.batch import in_batch
from sleepy.sandbox.cargo import run_cargo
from sleepy.sandbox.guard import deny_reason
from sleepy.sandbox.harness import KoanTests, changes_under_test, koan_tests, with_koan_tests
from sleepy.sandbox.isolation import (
    EXPORT_FAILED,
    WORKDIR,
    Jail,
    Limits,
    Outcome,
    SandboxConfig,
    execute,
    with_env,
)
from sleepy.sandbox.result import (
    Diagnostic,
    SandboxResult,
    Verdict,
    harness_summary,
    parse_diagnostics,
    parse_test_output,
)
from sleepy.sandbox.signatures import (
    ErrorSignature,
    signature_from_diagnostic,
    signature_from_test_failure,
    signature_of,
)
from sleepy.sandbox.workdir import SOURCE, Workdir

# Flags chosen by measurement (`make bench`): libstd linked dynamically makes the link step,
# about half of a small program's build, several times cheaper; no debuginfo to write.
BUILD_FLAGS = ["-C", "opt-level=0", "-C", "debuginfo=0", "-C", "prefer-dynamic"]


class SandboxError(RuntimeError):
    """The sandbox cannot work on this host (no rustc); the message says what to install."""


@dataclass(frozen=True)
class Toolchain:
    sysroot: Path
    rustc: Path
    cargo: Path | None
    libstd_dir: Path  # the target's lib dir holding libstd-*.so

    @staticmethod
    @functools.cache
    def find() -> Toolchain:
        rustc = shutil.which("rustc")
        if rustc is None:
            raise SandboxError("rustc not found on PATH; install Rust (rustup) to use the sandbox")
        out = subprocess.run(
            [rustc, "--print", "sysroot"], capture_output=True, text=True, check=True
        )
        sysroot = Path(out.stdout.strip()).resolve()
        version = subprocess.run([rustc, "-vV"], capture_output=True, text=True, check=True)
        host = re.search(r"^host: (\S+)", version.stdout, re.M).group(1)
        direct = sysroot / "bin" / "rustc"  # skips the rustup proxy, a few ms per call
        cargo = sysroot / "bin" / "cargo"
        return Toolchain(
            sysroot=sysroot,
            rustc=direct if direct.exists() else Path(rustc),
            cargo=cargo
            if cargo.exists()
            else (Path(shutil.which("cargo")) if shutil.which("cargo") else None),
            libstd_dir=sysroot / "lib" / "rustlib" / host / "lib",
        )

    def binds(self) -> list[tuple[str, str]]:
        return [(str(self.sysroot), str(self.sysroot))]


_RUNTIME_LOCK = threading.Lock()


@functools.cache
def runtime_dir() -> Path:
    """A copy of libstd-*.so for programs built with prefer-dynamic, readable by their uid.

    The toolchain usually lives under /root, which the program's throwaway uid cannot read. One
    copy per user and toolchain is shared between processes; when its path holds something else
    (another user can create that name in a shared temp dir), this process makes its own.
    """
    tc = Toolchain.find()
    libs = sorted(tc.libstd_dir.glob("libstd-*.so"))
    key = "-".join(p.name.removeprefix("libstd-").removesuffix(".so") for p in libs) or "none"
    base = Path(tempfile.gettempdir()) / f"sleepy-runtime-{os.getuid()}-{key}"
    with _RUNTIME_LOCK:
        return shared_runtime_copy(base, libs)


def shared_runtime_copy(base: Path, libs: list[Path]) -> Path:
    """`base` when it is (or can atomically become) this user's own copy of `libs`, else a
    private copy removed when the process exits. Nothing at `base` is followed or removed."""
    if _trusted(base, libs):
        return base
    tmp = Path(tempfile.mkdtemp(prefix="sleepy-runtime-"))
    for p in libs:
        shutil.copyfile(p, tmp / p.name)
        os.chmod(tmp / p.name, 0o755)
    # others may enter it (the program's uid opens libstd by name) but not list or change it
    os.chmod(tmp, 0o711)
    try:
        os.rename(tmp, base)  # fails on a symlink, a file or a dir that is not empty
    except OSError:
        if _trusted(base, libs):  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
            return base
        atexit.register(shutil.rmtree, tmp, True)
        return tmp
    return base


def _trusted(path: Path, libs: list[Path]) -> bool:
    """A real dir (lstat: a symlink is not trusted) of this user's, writable by no one else,
    holding a regular file of this user's for each lib, of the lib's size."""
    uid = os.getuid()
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o022:
            return False
        for lib in libs:
            f = os.lstat(path / lib.name)
            if not stat.S_ISREG(f.st_mode) or f.st_uid != uid or f.st_mode & 0o022:
                return False
            if f.st_size != lib.stat().st_size:
                return False
    except OSError:
        return False
    return True


def has_main(code: str) -> bool:
    return re.search(r"\bfn\s+main\s*\(", code) is not None


def has_tests(code: str) -> bool:
    return re.search(r"#\s*\[\s*test\s*\]", code) is not None


# A program with tests and a main is built once: the test harness, plus one extra test that
# calls main between two markers. Run with --nocapture on its own, it prints exactly what main
# prints; only cfg(test)-dependent code could tell the difference, and such code gets two builds.
MAIN_TEST = "__sleepy_main"


def can_combine(code: str) -> bool:
    return (
        has_main(code)
        and has_tests(code)
        and not re.search(r"not\s*\(\s*test\s*\)|cfg!\s*\(\s*test|cfg_attr\s*\(\s*test", code)
        and not re.search(r"\b" + MAIN_TEST + r"\b", code)
    )


def main_test_source(code: str, nonce: str) -> str:
    return code + (
        f"\n\n#[cfg(test)]\n#[test]\nfn {MAIN_TEST}() -> impl std::process::Termination {{\n"
        f'    print!("\\u{{1}}S-{nonce}\\n");\n    let r = main();\n'
        f'    print!("\\u{{1}}E-{nonce}\\n");\n    r\n}}\n'
    )


def main_test_args() -> list[str]:
    return [MAIN_TEST, "--exact", "--nocapture", "--test-threads=1"]


def main_output(stdout: str, nonce: str) -> str:
    """What main printed, cut from the harness's own lines by the two markers."""
    start, end = f"\x01S-{nonce}\n", f"\x01E-{nonce}\n"
    i = stdout.find(start)
    if i == -1:
        return ""
    body = stdout[i + len(start) :]
    j = body.find(end)
    if j != -1:
        return body[:j]
    # main exited or panicked before the end marker: drop the harness's closing report
    for trailer in ("FAILED\n\nfailures:\n", "\ntest result:"):
        k = body.rfind(trailer)
        if k != -1:
            return body[:k]
    return body


class Sandbox:
    """check / test / run / verdict for one-file Rust programs; cargo() for multi-file crates."""

    def __init__(
        self,
        limits: Limits | None = None,
        isolation: str = "auto",
        cargo_target_dir: str | Path | None = None,
        parallel_builds: bool = True,
    ):
        self.limits = limits or Limits()
        self.jail = Jail(self.limits, isolation)
        self.toolchain = Toolchain.find()
        self.cargo_target_dir = Path(cargo_target_dir) if cargo_target_dir else None
        # Outside a batch a verdict builds its test harness and its binary at once; inside one
        # the other workers already keep the cores busy.
        self.parallel_builds = parallel_builds

    @classmethod
    def from_config(cls, config: SandboxConfig) -> Sandbox:
        """The sandbox a `sandbox` config group describes."""
        return cls(config.limits, config.isolation)

    @property
    def isolation(self) -> str:
        return self.jail.description

    # -- building ----------------------------------------------------------------------------

    def _rustc(self, wd: Workdir, kind: str, edition: str) -> tuple[list[Diagnostic], Outcome]:
        """kind: "check" (metadata only, tests included), "test" (harness) or "bin"."""
        out = {"check": "check.rmeta", "test": "test", "bin": "main"}[kind]
        argv = [str(self.toolchain.rustc), SOURCE, "--edition", edition, "--error-format=json"]
        argv += ["--crate-name", "main", "-o", out]
        if kind == "check":
            argv += ["--test", "--emit=metadata"]
        else:
            argv += (["--test"] if kind == "test" else []) + BUILD_FLAGS
        inside = self.jail.mode == "bwrap"
        uid = self.jail.compile_uid()
        # the source read-only; inside, rustc links straight into the one host file it may write
        binds = [*self.toolchain.binds(), (str(wd.path / "src"), f"{WORKDIR}/src")]
        output = None
        if inside and kind != "check":
            host = wd.path / out
            os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755))
            if uid is not None:
                os.chown(host, uid, uid)
            output = (str(host), f"{WORKDIR}/{out}")
        cmd, switched = self.jail.compile_command(argv, binds, uid, output)
        home = WORKDIR if inside else str(wd.path)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LC_ALL": "C"}
        cmd = with_env(cmd, env)  # bwrap starts from --clearenv
        lim = self.limits
        outcome = execute(
            cmd, env, lim.compile_timeout, lim.compile_output_bytes, cwd=wd.path,
            uid=None if switched else uid, cleanup_uid=uid,
        )  # fmt: skip
        if output and uid is not None:  # ours again (which clears set-id bits) before it runs
            os.chown(output[0], os.getuid(), os.getgid())
            os.chmod(output[0], 0o755)
        diags, _ = parse_diagnostics(outcome.stderr)
        return diags, outcome

    def _build_combined(self, wd: Workdir, code: str, edition: str, nonce: str):
        """One harness build that also runs main; None when the extra test does not compile
        (then the caller builds the two binaries the ordinary way)."""
        (wd.path / SOURCE).write_text(main_test_source(code, nonce))
        diags, outcome = self._rustc(wd, "test", edition)
        last = code.count("\n") + 1
        if any(d.level.startswith("error") and (d.line or 0) > last for d in diags):
            (wd.path / SOURCE).write_text(code)
            return None
        return [([d for d in diags if (d.line or 0) <= last], outcome)]

    def compile_failure(self, diags: list[Diagnostic], outcome: Outcome) -> tuple[str, str] | None:
        """(status, detail) when the build failed, else None."""
        if outcome.timed_out:
            return "timeout", f"compilation ran past {self.limits.compile_timeout:g} s"
        if "memory allocation of" in outcome.stderr:
            return "memory", "the compiler ran out of memory"
        if (
            "No space left on device" in outcome.stderr
            or outcome.signal_name == "SIGXFSZ"
            or outcome.returncode == EXPORT_FAILED
        ):
            scratch = self.limits.compile_scratch_bytes >> 20
            return "killed", f"the build wrote more than the compiler's {scratch} MiB of scratch"
        errors = [d for d in diags if d.level.startswith("error")]
        if errors:
            return "compile_error", errors[0].message
        if outcome.returncode != 0:
            return "killed", f"the compiler failed: {outcome.signal_name or outcome.stderr[-300:]}"
        return None

    # -- running -----------------------------------------------------------------------------

    def run_binary(
        self, wd: Workdir, binary: str, argv: list[str], stdin: str = "", env: dict | None = None
    ) -> Outcome:
        rt = runtime_dir()
        uid = self.jail.sandbox_uid()
        cmd, switched = self.jail.run_command(argv, wd.path / binary, rt, uid)
        env = {**self.jail.run_env(rt), **(env or {})}
        if self.jail.mode == "bwrap":
            cmd = with_env(cmd, env)
            cwd = wd.path
        else:
            rundir = wd.path / f"run-{binary}"
            rundir.mkdir()
            if uid is not None:
                os.chown(rundir, uid, uid)
            cwd = rundir
        lim = self.limits
        return execute(
            cmd, env, lim.run_timeout, lim.output_bytes, cwd, stdin,
            uid=None if switched else uid, cleanup_uid=uid, reap=self.jail.mode != "bwrap",
        )  # fmt: skip

    def run_failure(self, outcome: Outcome) -> tuple[str, str] | None:
        """(status, detail) for a program that was stopped or crashed, else None."""
        lim = self.limits
        err = outcome.stderr
        if outcome.timed_out:
            return "timeout", f"ran past the {lim.run_timeout:g} s wall-clock limit"
        if outcome.truncated:
            return "output_truncated", f"printed more than {lim.output_bytes} bytes"
        if outcome.signal_name == "SIGXCPU":
            return "timeout", f"used more than {lim.cpu_seconds} s of CPU"
        if "has overflowed its stack" in err:
            return "memory", "stack overflow"
        if re.search(r"memory allocation of \d+ bytes failed", err):
            return (
                "memory",
                f"allocation failed under the {lim.memory_bytes >> 20} MiB memory limit",
            )
        if outcome.signal_name == "SIGXFSZ":
            return "killed", f"wrote a file larger than {lim.file_size_bytes >> 20} MiB"
        if outcome.signal is not None and outcome.signal_name != "SIGABRT":
            return "killed", f"killed by {outcome.signal_name}"
        return None

    # -- the public calls ---------------------------------------------------------------------

    def check(self, code: str, edition: str = "2021") -> SandboxResult:
        """Type-check (tests included) without linking or running anything."""
        return self._session(code, edition, test=False, run=False, stdin="", check_only=True)[0]

    def test(self, code: str, edition: str = "2021") -> SandboxResult:
        """Build with --test and run the harness: passed/failed test names, panic messages."""
        return self._session(code, edition, test=True, run=False, stdin="")[0]

    def run(self, code: str, edition: str = "2021", stdin: str = "") -> SandboxResult:
        """Build and run `main`, capturing its stdout."""
        return self._session(code, edition, test=False, run=True, stdin=stdin)[0]

    def cargo(self, crate: str | Path, command: str = "test", stdin: str = "") -> SandboxResult:
        """A multi-file Cargo crate: "check" (all targets), "test" (build, run every harness)
        or "run" (build, run the binary). The target dir is shared, so repeats are incremental."""
        return run_cargo(self, crate, command, stdin)

    def verdict(self, koan: Koan, code: str) -> Verdict:
        """The one definition of a fix: compiles without errors, every one of the koan's own
        tests (those of its correct code, put back in place of the candidate's) runs and passes
        by name, and a program with `main` prints `koan.expected_stdout` (or, when that is None,
        exits 0)."""
        return self.judge(code, koan.edition, koan.expected_stdout, koan_tests(koan.correct_code))

    def judge(
        self,
        code: str,
        edition: str = "2021",
        expected_stdout: str | None = None,
        tests: KoanTests | None = None,
    ) -> Verdict:
        """`verdict` for bare code (the CLI, scripts): with `tests`, the candidate's test items
        are replaced by them and each must pass; without, the code's own tests are run."""
        missing: list[str] = []
        own_lines = code.count("\n") + 1
        if tests is not None:
            code = with_koan_tests(code, tests)
        main = has_main(code)
        # a library without tests still needs its type check: the harness build gives it
        test = has_tests(code) or not main
        if tests is not None and test and not tests.cfg_in_code and changes_under_test(code):
            result, stdout = SandboxResult(status="test_failed", isolation=self.isolation), ""
            result.detail = (
                "the code under test is built differently for the tests (a cfg naming `test` "
                "outside the test module): the koan's tests must test the code main runs"
            )
        else:
            result, stdout = self._session(code, edition, test=test, run=main, stdin="")
        if tests is not None and result.diagnostics:
            # the candidate's own errors first: an error in the koan's tests is mostly a symptom
            result.diagnostics.sort(key=lambda d: (d.line or 0) > own_lines)
            if result.status == "compile_error":
                result.detail = result.errors[0].message
        status, detail = result.status, result.detail
        if tests is not None and status in ("ok", "test_failed", "wrong_output", "runtime_error"):
            missing = [n for n in tests.names if n not in result.passed_tests]
            missing = [n for n in missing if n not in result.failed_tests]
            if status == "ok" and missing:
                status = "test_failed"
                detail = f"{len(missing)} of the koan's tests did not run: {', '.join(missing)}"
        if status == "ok" and main and expected_stdout is not None and stdout != expected_stdout:
            status, detail = "wrong_output", "the program's output differs from the expected output"
        return Verdict(
            passed=status == "ok",
            status=status,
            signature=_signature(status, detail, result),
            diagnostics=result.diagnostics,
            failed_tests=result.failed_tests,
            stdout=stdout,
            wall_time=result.wall_time,
            passed_tests=result.passed_tests,
            expected_stdout=expected_stdout,
            stderr=result.stderr,
            detail=detail,
            isolation=result.isolation,
            missing_tests=missing,
        )

    def _session(
        self, code: str, edition: str, test: bool, run: bool, stdin: str, check_only: bool = False
    ) -> tuple[SandboxResult, str]:
        """Build what is asked (at once when allowed), run the harness, then main."""
        start = time.perf_counter()
        res = SandboxResult(status="ok", isolation=self.isolation)

        def done(status: str = "ok", detail: str = "") -> tuple[SandboxResult, str]:
            res.status, res.detail = status, detail
            res.wall_time = time.perf_counter() - start
            return res, res.stdout

        reason = deny_reason(code)
        if reason:
            return done("denied", reason)
        kinds = (
            ["check"] if check_only else [k for k, want in (("test", test), ("bin", run)) if want]
        )
        with Workdir(code) as wd:
            nonce = secrets.token_hex(8) if test and run and can_combine(code) else ""
            builds = self._build_combined(wd, code, edition, nonce) if nonce else None
            if builds is None:
                nonce = ""
                if len(kinds) > 1 and self.parallel_builds and not in_batch():
                    with ThreadPoolExecutor(len(kinds)) as pool:
                        builds = list(pool.map(lambda k: self._rustc(wd, k, edition), kinds))
                else:
                    builds = [self._rustc(wd, k, edition) for k in kinds]
            seen = set()
            for diags, _ in builds:  # both builds report shared errors; keep one of each
                for d in diags:
                    if d.rendered not in seen:
                        seen.add(d.rendered)
                        res.diagnostics.append(d)
            for diags, outcome in builds:
                failure = self.compile_failure(diags, outcome)
                if failure:
                    res.stderr = outcome.stderr[-4000:] if failure[0] != "compile_error" else ""
                    return done(*failure)
            if check_only:
                return done()
            if test:
                outcome = self.run_binary(wd, "test", ["--skip", MAIN_TEST] if nonce else [])
                res.passed_tests, res.failed_tests = parse_test_output(outcome.stdout)
                res.stderr = outcome.stderr
                failure = self.run_failure(outcome)
                if failure:
                    return done(*failure)
                if res.failed_tests or outcome.returncode != 0:
                    first = next(iter(res.failed_tests.values()), outcome.stderr.strip()[-300:])
                    return done("test_failed", first or "the test harness failed")
                if harness_summary(outcome.stdout) is None:
                    return done("test_failed", "the test harness exited before its summary line")
            if run:
                if nonce:
                    stack = {"RUST_MIN_STACK": str(self.limits.stack_bytes)}  # as main's thread
                    outcome = self.run_binary(wd, "test", main_test_args(), stdin, stack)
                    outcome.stdout = main_output(outcome.stdout, nonce)
                else:
                    outcome = self.run_binary(wd, "main", [], stdin)
                res.stdout, res.stderr = outcome.stdout, outcome.stderr
                failure = self.run_failure(outcome)
                if failure:
                    return done(*failure)
                if outcome.returncode != 0:
                    return done(
                        "runtime_error",
                        _panic_message(outcome) or f"exit status {outcome.returncode}",
                    )
        return done()


def _panic_message(outcome: Outcome) -> str:
    m = re.search(r"panicked at [^\n]*:\n(.*?)(?:\nnote: |\Z)", outcome.stderr, re.S)
    if m:
        return m.group(1).strip()
    return outcome.stderr.strip().splitlines()[-1] if outcome.stderr.strip() else ""


def _signature(status: str, detail: str, result: SandboxResult) -> ErrorSignature | None:
    if status == "ok":
        return None
    if status == "compile_error" and result.errors:
        return signature_from_diagnostic(result.errors[0])
    if status == "test_failed" and result.failed_tests:
        return signature_from_test_failure(next(iter(result.failed_tests.values())))
    return signature_of(status, detail)
