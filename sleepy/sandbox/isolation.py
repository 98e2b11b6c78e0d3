"""Containment for code nobody trusts: bubblewrap (or a network namespace), rlimits, a scrubbed
environment, a wall-clock timeout that kills the whole process group, and capped output."""

from __future__ import annotations

import functools
import os
import random
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sleepy.config import ranged

ISOLATIONS = ("auto", "bwrap", "netns", "none")

_SETPRIV = shutil.which("setpriv")

# Where the program sees its own files inside bubblewrap; rustc sees the same path, so
# diagnostics say src/main.rs relative to it.
WORKDIR = "/sandbox"
# The exit status of a compile whose build succeeded but could not be written out of its tmpfs.
EXPORT_FAILED = 125


@dataclass
class Limits:
    """Resource limits. `compile_*` bound rustc/cargo, the rest bound the compiled program.
    The one place their defaults live: the `sandbox` config group's `limits` is this class."""

    run_timeout: float = ranged(
        10.0, gt=0
    )  # wall-clock seconds for one program or test-harness run
    cpu_seconds: int = ranged(10, ge=1)  # RLIMIT_CPU of the program
    memory_bytes: int = ranged(1 << 30, ge=1 << 20)  # RLIMIT_AS of the program
    stack_bytes: int = ranged(8 << 20, ge=1 << 16)  # RLIMIT_STACK of the program's main thread
    file_size_bytes: int = ranged(
        64 << 20, ge=0
    )  # RLIMIT_FSIZE: largest file the program may write
    scratch_bytes: int = ranged(
        64 << 20, ge=1 << 20
    )  # size of the tmpfs the program may write into (bwrap)
    nproc: int = ranged(
        64, ge=1
    )  # RLIMIT_NPROC: processes + threads of the program (needs root to enforce)
    output_bytes: int = ranged(
        1 << 20, ge=1024
    )  # stdout and stderr, each, before the program is killed
    compile_timeout: float = ranged(60.0, gt=0)
    compile_cpu_seconds: int = ranged(60, ge=1)
    compile_memory_bytes: int = ranged(4 << 30, ge=1 << 20)
    compile_output_bytes: int = ranged(8 << 20, ge=1024)  # the compiler's stdout and stderr, each
    # size of the tmpfs holding everything rustc/cargo write (objects, binaries, the crate's
    # target dir), and RLIMIT_FSIZE of the compiler everywhere
    compile_scratch_bytes: int = ranged(256 << 20, ge=1 << 20)


@dataclass
class SandboxConfig:
    """The `sandbox` config group (a structured config): how untrusted code is contained."""

    isolation: str = ranged("auto", choices=ISOLATIONS)  # auto: the strongest that works here
    limits: Limits = field(default_factory=Limits)


@dataclass
class Outcome:
    """How one contained process ended."""

    returncode: int | None
    signal: int | None  # the signal that killed the program, when it died of one
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool
    wall_time: float

    @property
    def signal_name(self) -> str:
        if self.signal is None:
            return ""
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


def _usable(cmd: list[str], user: int | None = None) -> bool:
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            timeout=20,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


@functools.cache
def _probe() -> dict[str, bool]:
    """Which containment this host allows (checked once per process)."""
    root = os.geteuid() == 0
    sandbox_uid = _SANDBOX_UID_BASE if root else None
    bwrap = shutil.which("bwrap")
    unshare = shutil.which("unshare")
    true = shutil.which("true") or "/bin/true"
    return {
        "bwrap": bool(bwrap)
        and _usable([bwrap, "--unshare-all", "--ro-bind", "/", "/", true])
        and _usable([bwrap, "--unshare-all", "--ro-bind", "/", "/", true], user=sandbox_uid),
        "netns": bool(unshare)
        and _usable([unshare, "-r", "-n", "-p", "-f", true], user=sandbox_uid),
        "prlimit": bool(shutil.which("prlimit")),
        "root": root,
    }


# Programs run as a throwaway uid when we are root: RLIMIT_NPROC is not enforced for root, and
# a uid of its own keeps one program's threads from counting against another's.
_SANDBOX_UID_BASE = 2_000_000
_UID_SPAN = 1_000_000


def _root_view() -> list[str]:
    """bwrap arguments for a read-only system: /usr and its compat links, the linker's config."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    # The C linker driver resolves `cc` through /etc/alternatives; ld.so needs its cache.
    args += ["--perms", "0755", "--dir", "/etc"]
    for etc in ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"):
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    return args + ["--proc", "/proc", "--dev", "/dev"]


def _reachable(paths) -> list[str]:
    """bwrap arguments that make the parents of bind targets traversable (0755).

    bwrap creates a missing parent with its host mode, so a toolchain under /root would sit
    behind a 0700 dir that the throwaway uid cannot enter.
    """
    args, seen = [], {"/usr", "/etc", WORKDIR}
    for path in paths:
        for parent in reversed(Path(path).parents[:-1]):
            p = str(parent)
            if p not in seen and not p.startswith(("/usr/", "/etc/", f"{WORKDIR}/")):
                seen.add(p)
                args += ["--perms", "0755", "--dir", p]
    return args


class Jail:
    """Builds contained command lines for the compiler and for the compiled program."""

    def __init__(self, limits: Limits, isolation: str = "auto"):
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation '{isolation}' must be one of {list(ISOLATIONS)}")
        self.limits = limits
        self.asked = isolation
        probe = _probe()
        self.root = probe["root"]
        if isolation in ("auto", "bwrap") and probe["bwrap"]:
            self.mode = "bwrap"
        elif isolation in ("auto", "bwrap", "netns") and probe["netns"]:
            self.mode = "netns"
        else:
            self.mode = "none"
        self.prlimit = probe["prlimit"]
        self.description = self._describe(probe)

    def _describe(self, probe: dict[str, bool]) -> str:
        parts = {"bwrap": "bwrap", "netns": "netns", "none": ""}[self.mode]
        text = "+".join(p for p in (parts, "rlimits" if self.prlimit else "") if p) or "none"
        weaker = []
        if self.mode != "bwrap":
            weaker.append(
                "no bubblewrap: the compiler sees the host's files (only the static include "
                "check guards them) and its disk use is bounded per file only"
            )
        if self.mode == "none":
            weaker.append("no network namespace: the program can reach the network")
        if self.mode == "bwrap" and self.root and not _SETPRIV:
            weaker.append(
                "no setpriv: the compiler and the program run as root in a user namespace"
            )
        if not self.prlimit:
            weaker.append("prlimit missing: no rlimits")
        if not self.root:
            weaker.append("not root: process count not limited")
            if self.mode == "none":
                weaker.append("not root: a process the program detaches can outlive the run")
        return f"{text} (weaker: {'; '.join(weaker)})" if weaker else text

    # -- command lines ---------------------------------------------------------------------

    def _rlimits(
        self, cpu: int, memory: int, fsize: int, nproc: int | None, stack: int | None
    ) -> list[str]:
        if not self.prlimit:
            return []
        args = [
            "prlimit",
            f"--cpu={cpu}:{cpu + 1}",
            f"--as={memory}",
            f"--fsize={fsize}",
            "--core=0",
        ]
        if nproc is not None and self.root:
            args.append(f"--nproc={nproc}")
        if stack is not None:
            args.append(f"--stack={stack}")
        return args + ["--"]

    def _bwrap(self, uid: int | None) -> tuple[list[str], list[str]]:
        """bwrap's namespaces, and the command that drops to `uid` inside them.

        As root, bwrap needs no user namespace (the slow part of starting it): it keeps only the
        capabilities setpriv needs, and setpriv drops to the throwaway uid, clearing every
        capability set and the bounding set, so nothing inside can read a root-only file.
        Without root (or setpriv), a user namespace maps the caller's own uid.
        """
        if uid is not None and _SETPRIV:
            spaces = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
            spaces += ["--cap-drop", "ALL"]
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                spaces += ["--cap-add", cap]
            inner = [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            inner += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        else:
            spaces, inner = ["--unshare-all"], []
        return ["bwrap", *spaces, "--die-with-parent", "--new-session", *_root_view()], inner

    def compile_command(
        self,
        argv: list[str],
        binds: list[tuple[str, str]],
        uid: int | None,
        output: tuple[str, str] | None = None,
        export: str | None = None,
        prepare: str = "",
    ) -> tuple[list[str], bool]:
        """rustc or cargo as `uid`, seeing only the system, the toolchain and `binds` (read-only,
        host path -> path inside), writing only into a sized tmpfs at /sandbox (its cwd).

        What the build makes leaves the tmpfs one of two ways: `output`, a host file (made by
        the caller, writable by `uid`) bound at one path inside, which rustc links into
        directly; or `export`, a fixed shell command run after a successful build, whose
        stdout goes to the command's stdin, a host file opened for writing (see
        `execute(export_to=...)`). `prepare`, a fixed shell command, runs first. Returns
        (command, switched) as `run_command` does.

        Outside bubblewrap the command runs as it is, in the caller's cwd, and writes there.
        """
        lim = self.limits
        scratch = lim.compile_scratch_bytes
        prefix = self._rlimits(
            lim.compile_cpu_seconds, lim.compile_memory_bytes, scratch, None, None
        )
        if self.mode != "bwrap":
            return prefix + argv, False
        head, inner = self._bwrap(uid)
        view = [*head, "--perms", "1777", "--size", str(scratch), "--tmpfs", WORKDIR]
        view += _reachable(dest for _, dest in binds)
        for src, dest in binds:
            view += ["--ro-bind", src, dest]
        if output:
            view += ["--bind", *output]
        # a writable /dev would be an unsized tmpfs the compiler could fill
        view += ["--remount-ro", "/dev", "--chdir", WORKDIR, "--clearenv"]
        if export or prepare:
            script = f'{prepare + " && " if prepare else ""}"$@" </dev/null; rc=$?'
            if export:
                script += f"; if [ $rc = 0 ]; then {{ {export}; }} >&0 || rc={EXPORT_FAILED}; fi"
            argv = ["/bin/sh", "-c", script + "; exit $rc", "sh", *argv]
        return prefix + view + ["--", *inner, *argv], bool(inner)

    def run_command(
        self, argv: list[str], binary: Path, runtime_dir: Path, uid: int | None
    ) -> tuple[list[str], bool]:
        """The compiled program, with `binary` at /sandbox/main, as `uid` when given.

        Returns (command, switched): switched is True when the command itself drops to `uid`
        (root bubblewrap, then setpriv inside), so the caller must not switch user first.
        """
        lim = self.limits
        prefix = self._rlimits(
            lim.cpu_seconds, lim.memory_bytes, lim.file_size_bytes, lim.nproc, lim.stack_bytes
        )
        if self.mode == "bwrap":
            size = str(lim.scratch_bytes)
            view, inner = self._bwrap(uid)
            for scratch in ("/tmp", WORKDIR):
                view += ["--perms", "1777", "--size", size, "--tmpfs", scratch]
            view += ["--ro-bind", str(binary), f"{WORKDIR}/main"]
            view += ["--ro-bind", str(runtime_dir), "/rt"]
            # a writable /dev would be an unsized tmpfs the program could fill
            view += ["--remount-ro", "/dev", "--chdir", WORKDIR, "--clearenv"]
            cmd = prefix + view + ["--", *inner, f"{WORKDIR}/main", *argv]
            return cmd, bool(inner)
        if self.mode == "netns":
            unshare = ["unshare", "-r", "-n", "-p", "-f", "--kill-child", "--"]
            return prefix + unshare + [str(binary), *argv], False
        return prefix + [str(binary), *argv], False

    def run_env(self, runtime_dir: Path) -> dict[str, str]:
        libdir = "/rt" if self.mode == "bwrap" else str(runtime_dir)
        home = WORKDIR if self.mode == "bwrap" else "/nonexistent"
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "LD_LIBRARY_PATH": libdir,
            "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per arena
            "RUST_BACKTRACE": "0",
            "LC_ALL": "C",
        }

    def sandbox_uid(self) -> int | None:
        return _SANDBOX_UID_BASE + random.randrange(_UID_SPAN) if self.root else None

    def compile_uid(self) -> int | None:
        """The compiler's throwaway uid: only where bwrap can drop to it, since the toolchain
        (under /root as a rule) is reachable only through bwrap's own view."""
        return self.sandbox_uid() if self.mode == "bwrap" and _SETPRIV else None


def with_env(cmd: list[str], env: dict[str, str]) -> list[str]:
    """Insert --setenv pairs after bwrap's --clearenv (a no-op for commands without bwrap)."""
    if "--clearenv" not in cmd:
        return cmd
    i = cmd.index("--clearenv") + 1
    pairs = [x for k, v in env.items() for x in ("--setenv", k, v)]
    return cmd[:i] + pairs + cmd[i:]


def execute(
    cmd: list[str],
    env: dict[str, str],
    timeout: float,
    output_bytes: int,
    cwd: str | Path | None = None,
    stdin: str = "",
    uid: int | None = None,
    cleanup_uid: int | None = None,
    reap: bool = False,
    export_to: int | None = None,
) -> Outcome:
    """Run `cmd` in a new session; kill the whole group on timeout or when output overflows.

    The wall clock includes everything; the process group is always killed at the end so that
    nothing the program started outlives the call. With `reap`, every process of the run's uid
    is killed too, however it ended (a pid namespace does that for bubblewrap; without one, a
    double-forked daemon leaves the group). `export_to`, a file descriptor open for writing,
    stands in for stdin: a compile writes what it built there (see `Jail.compile_command`).
    """
    start = time.perf_counter()
    as_user = {}
    if uid is not None:
        if _SETPRIV:  # an exec of setpriv is cheaper than fork() of a large Python process
            cmd = [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]
        else:
            as_user = {"user": uid, "group": uid, "extra_groups": []}
    feed = subprocess.DEVNULL if export_to is None else export_to
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin else feed,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd or None,
        start_new_session=True,
        **as_user,
    )
    if stdin:
        threading.Thread(target=_feed, args=(proc, stdin.encode()), daemon=True).start()
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    sizes = dict.fromkeys(chunks, 0)
    timed_out = truncated = False
    deadline = start + timeout
    with selectors.DefaultSelector() as sel:
        for f in (proc.stdout, proc.stderr):
            sel.register(f, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.perf_counter()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                room = output_bytes - sizes[key.fd]
                chunks[key.fd].append(data[: max(room, 0)])
                sizes[key.fd] += len(data)
                if sizes[key.fd] > output_bytes:
                    truncated = True
            if truncated:
                break
    if not (timed_out or truncated):
        try:
            proc.wait(max(deadline - time.perf_counter(), 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill_group(proc)
    proc.wait()
    rc = proc.returncode
    owner = uid if uid is not None else cleanup_uid
    if owner is not None and (reap or timed_out or truncated or rc < 0 or rc > 128):
        _kill_uid(owner)
    proc.stdout.close()
    proc.stderr.close()
    sig = -rc if rc < 0 else None
    if sig is None and rc > 128 and cmd and "bwrap" in cmd:
        sig = rc - 128  # bwrap's reaper reports a child killed by signal N as 128 + N
    out, err = b"".join(chunks[out_fd]), b"".join(chunks[err_fd])
    return Outcome(
        returncode=rc,
        signal=sig,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        timed_out=timed_out,
        truncated=truncated and not timed_out,
        wall_time=time.perf_counter() - start,
    )


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:
        pass  # the program exited or closed stdin early


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int, patience: float = 10.0) -> None:
    """Kill every process of a throwaway uid and wait until they are gone.

    A stopped program's pid namespace is torn down asynchronously; waiting here means nothing
    it forked is still running when the call returns.
    """
    deadline = time.perf_counter() + patience
    while time.perf_counter() < deadline:
        alive = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.stat(f"/proc/{pid}").st_uid == uid:
                        alive.append(int(pid))
                except OSError:
                    pass
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
