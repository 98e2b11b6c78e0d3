"""Hostile programs are contained: each gets a clear status within small limits, and the host
(its files, its network, its process table) is untouched, at run time and at compile time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from sleepy.day import PromptTemplate, get_edit_format
from sleepy.day.loop import KoanRun, Policy, run_koans
from sleepy.episodes import EpisodeStore
from sleepy.koan.model import Koan
from sleepy.llm import LLM, Generation
from sleepy.sandbox import Limits, Sandbox
from sleepy.sandbox import cargo as cargo_mode
from sleepy.sandbox import rustc as rustc_mode
from sleepy.sandbox.cli import main as cli_main

LIMITS = Limits(
    run_timeout=4.0,
    cpu_seconds=3,
    memory_bytes=256 << 20,
    file_size_bytes=4 << 20,
    scratch_bytes=16 << 20,
    nproc=32,
    output_bytes=64 << 10,
)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


@pytest.fixture(scope="module")
def patient() -> Sandbox:
    """LIMITS without a time limit worth the name: a test of another limit (memory, stack,
    output, disk) passes or fails by that limit alone, however loaded the machine is."""
    return Sandbox(replace(LIMITS, run_timeout=600.0, cpu_seconds=600))


def test_infinite_loop_times_out(sandbox):
    v = sandbox.judge(
        "fn main() { let mut i: u64 = 0; loop { i = i.wrapping_add(1); std::hint::black_box(i); } }"
    )
    assert v.status == "timeout"
    assert not v.passed and v.signature.code == "timeout"


def test_sleeping_forever_times_out_on_the_wall_clock(sandbox):
    v = sandbox.judge("fn main() { std::thread::sleep(std::time::Duration::from_secs(3600)); }")
    assert v.status == "timeout"
    assert "wall-clock limit" in v.detail  # not the CPU limit: a sleeping program uses none


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


def _gone(marker: str, patience_s: float = 60.0) -> bool:
    """True once no process with the marker is left. The kernel kills what is left of a PID
    namespace as its last process ends, and on a loaded machine that can take a moment after
    the run returns; an escaped process (they sleep for an hour) is still there after a minute.
    Not a timing: the patience only bounds how long a failing test takes to say so."""
    deadline = time.monotonic() + patience_s
    while _processes_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_fork_bomb_is_contained_and_leaves_nothing_behind(sandbox):
    marker = f"sleepy-bomb-{uuid.uuid4().hex}"
    code = f"""
use std::process::Command;
fn main() {{
    let me = std::env::current_exe().unwrap();
    let mut kids = Vec::new();
    loop {{
        // every child does the same: an unbounded tree of processes
        if let Ok(c) = Command::new(&me).arg("{marker}").spawn() {{ kids.push(c); }}
    }}
}}
"""
    v = sandbox.judge(code)
    assert v.status in ("timeout", "killed", "memory")
    assert not v.passed
    assert _gone(marker), _processes_with(marker)


def test_thread_bomb_is_contained(sandbox):
    code = """
fn main() {
    let mut hs = Vec::new();
    for _ in 0..100_000 {
        hs.push(std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(3600))));
    }
    println!("spawned {}", hs.len());
}
"""
    v = sandbox.judge(code)
    assert not v.passed
    assert "spawned 100000" not in v.stdout
    if os.geteuid() == 0:  # RLIMIT_NPROC is only enforced for a non-root uid
        assert v.status in ("runtime_error", "killed", "memory")
    else:
        assert v.status in ("runtime_error", "killed", "memory", "timeout")


def test_unbounded_allocation_hits_the_memory_limit(patient):
    code = """
fn main() {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    loop { keep.push(vec![1u8; 64 << 20]); }
}
"""
    v = patient.judge(code)
    assert v.status == "memory"
    assert v.signature.code == "memory"


def test_stack_overflow_is_reported_as_memory(patient):
    code = """
fn down(n: u64) -> u64 { let pad = [n; 64]; std::hint::black_box(&pad); down(n + 1) + pad[3] }
fn main() { println!("{}", down(0)); }
"""
    v = patient.judge(code)
    assert v.status == "memory"
    assert "stack" in v.detail


def test_gigabytes_of_stdout_are_cut_off(patient):
    code = 'fn main() { let line = "x".repeat(1 << 16); loop { println!("{line}"); } }'
    v = patient.judge(code)
    assert v.status == "output_truncated"
    assert len(v.stdout) <= LIMITS.output_bytes


def test_disk_fill_is_stopped(patient):
    code = """
use std::io::Write;
fn main() {
    let mut f = std::fs::File::create("fill.bin").unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..(10u64 << 10) { f.write_all(&block).unwrap(); }  // 10 GiB
    println!("wrote it all");
}
"""
    v = patient.judge(code)
    assert v.status in ("killed", "runtime_error")
    assert "wrote it all" not in v.stdout


def needs_bwrap(sandbox: Sandbox) -> None:
    if sandbox.jail.mode != "bwrap":
        pytest.skip(f"needs bubblewrap's private scratch space (`make setup`); {sandbox.isolation}")


def test_many_files_cannot_fill_the_disk(sandbox):
    # each file stays under RLIMIT_FSIZE; the sized scratch tmpfs stops the total
    needs_bwrap(sandbox)
    code = """
use std::io::Write;
fn main() {
    let block = vec![0u8; 1 << 20];
    for i in 0..4096 {
        let mut f = std::fs::File::create(format!("part{i}.bin")).unwrap();
        for _ in 0..3 { f.write_all(&block).unwrap(); }
    }
    println!("wrote 12 GiB");
}
"""
    v = sandbox.judge(code)
    assert not v.passed
    assert "wrote 12 GiB" not in v.stdout


def test_writes_outside_its_dir_do_not_reach_the_host(sandbox, tmp_path):
    needs_bwrap(sandbox)
    name = f"sleepy_pwned_{uuid.uuid4().hex}"
    targets = [Path("/tmp") / name, tmp_path / name, Path("/var/tmp") / name]
    writes = "\n".join(f'    let _ = std::fs::write("{t}", "pwned");' for t in targets)
    code = f'fn main() {{\n{writes}\n    println!("done");\n}}\n'
    v = sandbox.judge(code)
    assert v.status == "ok"  # the writes may "succeed" inside the sandbox's own scratch space
    for t in targets:
        assert not t.exists(), t


def test_network_connect_fails(sandbox):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    code = f"""
fn main() {{
    match std::net::TcpStream::connect("127.0.0.1:{port}") {{
        Ok(_) => println!("connected"),
        Err(e) => {{ eprintln!("no network: {{e}}"); std::process::exit(3); }}
    }}
}}
"""
    try:
        v = sandbox.judge(code)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    assert v.status == "runtime_error"
    assert "connected" not in v.stdout


@pytest.mark.parametrize(
    "snippet",
    [
        'const S: &str = include_str!("/etc/hostname");',
        'const S: &[u8] = include_bytes!("/etc/hostname");',
        'const S: &str = include_str!("../../../../../../etc/hostname");',
        'const S: &str = include_str!(concat!("/etc/", "hostname"));',
        'macro_rules! grab { ($p:expr) => { include_str!($p) }; }\nconst S: &str = grab!("/etc/hostname");',
        'use std::include_str as inc;\nconst S: &str = inc!("/etc/hostname");',
        '#[path = "/etc/hostname"]\nmod host;\nconst S: &str = "";',
    ],
)
def test_compile_time_reads_of_host_files_are_denied(sandbox, snippet):
    v = sandbox.judge(f'{snippet}\nfn main() {{ println!("{{}}", S.len()); }}\n')
    assert v.status == "denied"
    assert v.signature.code == "denied"


def test_secret_file_is_invisible_to_the_compiler_even_past_the_static_check(tmp_path):
    """bubblewrap hides host files from rustc itself, not only the static check."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    sb = Sandbox(LIMITS)
    if sb.jail.mode != "bwrap":
        pytest.skip(f"bubblewrap not usable here ({sb.isolation})")
    from sleepy.sandbox import rustc as rustc_mod

    code = f'const S: &str = include_str!("{secret}");\nfn main() {{ println!("{{S}}"); }}\n'
    real = rustc_mod.deny_reason
    rustc_mod.deny_reason = lambda code: None  # pretend the static check missed it
    try:
        v = sb.judge(code)
    finally:
        rustc_mod.deny_reason = real
    assert v.status == "compile_error"
    assert "TOP-SECRET-VALUE" not in v.stdout
    assert "couldn't read" in v.feedback()


def test_host_environment_is_not_visible_to_env_macro(sandbox, monkeypatch):
    monkeypatch.setenv("SLEEPY_TEST_SECRET", "hunter2")
    v = sandbox.judge('fn main() { println!("{}", env!("SLEEPY_TEST_SECRET")); }')
    assert v.status == "compile_error"
    assert "hunter2" not in v.stdout
    v = sandbox.judge('fn main() { println!("{:?}", std::env::var("SLEEPY_TEST_SECRET")); }')
    assert v.status == "ok" and "hunter2" not in v.stdout


def test_ordinary_names_are_not_denied(sandbox):
    code = """
struct Filter { words: Vec<String> }
impl Filter {
    fn include(&mut self, w: &str) { self.words.push(w.to_string()); }
}
fn main() {
    let mut f = Filter { words: vec![] };
    f.include("path = \\"/etc\\""); // include_str!("/etc/hostname") in a comment is fine
    println!("{}", f.words.len());
}
"""
    v = sandbox.judge(code, expected_stdout="1\n")
    assert v.passed, v.feedback()


def test_a_detached_daemon_does_not_outlive_its_run_in_any_mode():
    marker = f"sleepy-daemon-{uuid.uuid4().hex}"
    # the child leaves the process group and lets go of the output pipes, as a daemon does
    code = f"""
use std::os::unix::process::CommandExt;
use std::process::Stdio;
fn main() {{
    let me = std::env::current_exe().unwrap();
    if std::env::args().nth(1).as_deref() == Some("{marker}") {{
        std::thread::sleep(std::time::Duration::from_secs(3600));
        return;
    }}
    std::process::Command::new(&me).arg("{marker}").process_group(0)
        .stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    println!("detached");
}}
"""
    for isolation in ("auto", "none"):
        sb = Sandbox(LIMITS, isolation=isolation)
        if isolation == "none" and os.geteuid() != 0:
            assert "can outlive the run" in sb.isolation  # said, since it cannot be done
            continue
        v = sb.judge(code, expected_stdout="detached\n")
        assert v.passed, (isolation, v.feedback())
        assert _gone(marker), (isolation, _processes_with(marker))


# -- compile time: the compiler is a throwaway uid in its own namespaces ----------------------
#
# Each hostile program below tries to pull a file that only root may read into its binary or
# into the compiler's messages. The include guard is switched off for them: it is an early
# message, not the defence, and most of these ways are ones it does not know.


@dataclass
class Secret:
    path: Path
    value: str


@pytest.fixture
def secret(tmp_path) -> Secret:
    value = f"sleepy-secret-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(value + "\n")
    os.chmod(path, 0o600)  # root's alone when the tests run as root, as in CI
    return Secret(path, value)


@pytest.fixture
def host_tmp(tmp_path, monkeypatch) -> Path:
    """The sandbox's temp dirs go here, so the test can see that none is left behind."""
    rustc_mode.runtime_dir()  # the shared runtime copy is made once per process, not per call
    d = tmp_path / "host-tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def no_guard(monkeypatch) -> None:
    monkeypatch.setattr(rustc_mode, "deny_reason", lambda code: None)


def _print_bytes(symbol: str) -> str:
    return f"""
extern "C" {{ static {symbol}: [u8; 64]; }}
fn main() {{
    let bytes = unsafe {{ &*std::ptr::addr_of!({symbol}) }};
    println!("{{}}", String::from_utf8_lossy(bytes));
}}
"""


def hostile_reads(secret: str) -> dict[str, str]:
    """Ways a program pulls a host file in at compile time, keyed by name. Most go through
    /proc/<a host pid>/root, which reaches the host's whole filesystem from a compiler that
    shares the host's pid namespace, whatever its own view of the filesystem hides."""
    escape = f"/proc/{os.getpid()}/root{secret}"
    incbin = '.section .rodata\\n.globl {sym}\\n{sym}:\\n.incbin \\"{p}\\"\\n.zero 64\\n.text'

    def asm(p: str, sym: str) -> str:
        return f'std::arch::global_asm!("{incbin.format(sym=sym, p=p)}");\n' + _print_bytes(sym)

    up = "../" * 24
    return {
        "include_bytes": f'const S: &[u8] = include_bytes!("{secret}");\n'
        'fn main() { println!("{}", String::from_utf8_lossy(S)); }\n',
        "include_str via /proc": f'const S: &str = include_str!("{escape}");\n'
        'fn main() { println!("{S}"); }\n',
        "global_asm .incbin via /proc": asm(escape, "LEAK_A"),
        "global_asm .incbin via /proc/1/root": asm(f"/proc/1/root{secret}", "LEAK_B"),
        "global_asm .include via /proc": f'std::arch::global_asm!(".include \\"{escape}\\"");\n'
        "fn main() {}\n",
        "#[path] module via /proc": f'#[path = "{escape}"]\nmod leak;\nfn main() {{}}\n',
        "debugger_visualizer via /proc": f'#![debugger_visualizer(gdb_script_file = "{escape}")]\n'
        "fn main() {\n"
        "    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();\n"
        '    let needle = ["sleepy", "-secret-"].concat();\n'
        "    let at = me.windows(needle.len()).position(|w| w == needle.as_bytes());\n"
        '    if let Some(i) = at { println!("{}", String::from_utf8_lossy(&me[i..i + 60])); }\n'
        "}\n",
        "#[link] verbatim path via /proc": f'#[link(name = "{up}{escape.lstrip("/")}", '
        'kind = "dylib", modifiers = "+verbatim")]\nextern "C" {}\nfn main() {}\n',
    }


HOSTILE_READS = sorted(hostile_reads("/x"))


def _assert_nothing_left(host_tmp: Path) -> None:
    assert sorted(p.name for p in host_tmp.iterdir()) == []


@pytest.mark.parametrize("way", HOSTILE_READS)
def test_compile_time_reads_of_a_root_only_file_fail_through_the_cli(
    way, secret, host_tmp, no_guard, tmp_path, capsys
):
    needs_bwrap(Sandbox(LIMITS))
    src = tmp_path / "hostile.rs"
    src.write_text(hostile_reads(str(secret.path))[way])
    assert cli_main(["sandbox", "run", str(src), "--json"]) == 1
    out = capsys.readouterr()
    assert secret.value not in out.out + out.err
    result = json.loads(out.out)
    assert result["status"] == "compile_error", result["detail"]
    assert "bwrap" in result["isolation"]
    _assert_nothing_left(host_tmp)


class OneReply(LLM):
    """A model double that always replies with one program: the day's path is under test."""

    model_id = "hostile"

    def __init__(self, reply: str):
        self.reply = reply

    def generate(self, messages_batch, **opts):
        return [Generation(self.reply, tokens_in=10, tokens_out=10) for _ in messages_batch]


def through_the_day(code: str, store_dir: Path, limits: Limits = LIMITS) -> tuple[KoanRun, str]:
    """One episode of the day's loop whose only reply is `code`: the run, and every byte the
    episode store holds afterwards (as text)."""
    moved = 'fn main() { let a = String::from("x"); let b = a; println!("{a}{b}"); }\n'
    koan = Koan(
        id="hostile", family="borrow_checker", description="d", buggy_code=moved,
        correct_code=moved.replace("let b = a;", "let b = a.clone();"),
        expected_error="borrow of moved value", expected_code="E0382", expected_stdout="xx\n",
    )  # fmt: skip
    fmt = get_edit_format("whole_file")
    template, sandbox = PromptTemplate.load("tiny"), Sandbox(limits)
    with EpisodeStore(store_dir / "episodes.sqlite") as store:

        def make_run(k: Koan) -> KoanRun:
            return KoanRun(k, sandbox, template, fmt, "edit", Policy(max_attempts=1), store)

        [run] = run_koans([koan], make_run, OneReply(fmt.render(moved, code)), 1, 1)
    stored = b"".join(p.read_bytes() for p in store_dir.glob("episodes.sqlite*"))
    return run, stored.decode(errors="replace")


@pytest.mark.parametrize("way", HOSTILE_READS)
def test_compile_time_reads_of_a_root_only_file_fail_on_the_days_path(
    way, secret, host_tmp, no_guard, tmp_path
):
    needs_bwrap(Sandbox(LIMITS))
    run, stored = through_the_day(hostile_reads(str(secret.path))[way], tmp_path)
    assert run.done and not run.passed
    step = run.steps[-1]
    assert step["signature"] and not step["signature"].startswith("denied")
    assert secret.value not in json.dumps(run.steps) + run.feedback + stored
    _assert_nothing_left(host_tmp)


def test_the_guard_still_names_known_ways_early(secret):
    for way, code in hostile_reads(str(secret.path)).items():
        if way.startswith(("include", "global_asm", "debugger")):
            v = Sandbox(LIMITS).judge(code)
            assert v.status == "denied" and str(secret.path) in v.detail, way


def test_a_build_that_fills_the_compilers_scratch_is_stopped(host_tmp):
    needs_bwrap(Sandbox(LIMITS))
    limits = Limits(**{**LIMITS.__dict__, "compile_scratch_bytes": 16 << 20})
    code = "static BIG: [u8; 48 << 20] = [7; 48 << 20];\n"
    code += 'fn main() { println!("{}", BIG[std::hint::black_box(12345)]); }\n'
    v = Sandbox(limits).judge(code)
    assert v.status == "killed" and "16 MiB of scratch" in v.detail, v.detail
    _assert_nothing_left(host_tmp)


def test_a_lone_surrogate_from_a_json_reply_is_a_verdict(host_tmp):
    code = json.loads('"fn main() { println!(\\"\\ud800\\"); }"')
    v = Sandbox(LIMITS).judge(code)
    assert v.status == "denied" and "UTF-8" in v.detail
    assert v.signature.code == "denied"
    _assert_nothing_left(host_tmp)


def test_a_lone_surrogate_from_a_json_reply_does_not_end_the_day(host_tmp, tmp_path):
    code = json.loads('"fn main() { println!(\\"\\ud800\\"); }"')
    run, stored = through_the_day(code, tmp_path)
    assert run.done and not run.passed and run.steps[-1]["signature"].startswith("denied")
    with EpisodeStore(tmp_path / "episodes.sqlite", create=False) as store:
        [episode] = store.episodes()  # stored, the reply with it: escaped, not lost
    assert episode.status == "done" and "\\ud800" in json.dumps(episode.trajectory)


def test_a_symlink_planted_at_the_shared_runtime_path_is_not_followed(tmp_path):
    libs = sorted(rustc_mode.Toolchain.find().libstd_dir.glob("libstd-*.so"))
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    planted = tmp_path / "sleepy-runtime"
    planted.symlink_to(elsewhere)
    rt = rustc_mode.shared_runtime_copy(planted, libs)
    assert rt != planted and not rt.is_symlink()
    assert list(elsewhere.iterdir()) == [] and planted.is_symlink()
    assert sorted(p.name for p in rt.iterdir()) == [p.name for p in libs]
    st = rt.lstat()
    assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o711
    fresh = rustc_mode.shared_runtime_copy(tmp_path / "fresh", libs)
    assert fresh == tmp_path / "fresh" and fresh.lstat().st_mode & 0o777 == 0o711
    assert rustc_mode.shared_runtime_copy(fresh, libs) == fresh  # reused, not copied again
    if os.geteuid() == 0:  # a real dir of another user's at that path is not trusted either
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        (theirs / "libstd-planted.so").write_text("")
        os.chown(theirs, 4242, 4242)
        assert rustc_mode.shared_runtime_copy(theirs, libs) != theirs


# -- cargo mode -----------------------------------------------------------------------------------


def write_crate(root: Path, manifest: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "evil"\nversion = "0.1.0"\n' + manifest)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def cargo_cli(crate: Path, capsys) -> tuple[dict, str]:
    code = cli_main(["sandbox", "run", str(crate), "--json"])
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert code == (0 if result["status"] == "ok" else 1)
    return result, out.out + out.err


@pytest.fixture
def cargo_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sleepy" / "cargo-target"


MAIN = {"src/main.rs": 'fn main() { println!("hi"); }\n'}


@pytest.mark.parametrize(
    "manifest, files",
    [
        ("[lib]\nproc-macro = true\n", {"src/lib.rs": ""}),
        ("[lib]\nproc_macro = true\n", {"src/lib.rs": ""}),
        ('[lib]\ncrate-type = ["proc-macro"]\n', {"src/lib.rs": ""}),
        ('[lib]\ncrate_type = ["rlib", "proc-macro"]\n', {"src/lib.rs": ""}),
        ('build = "src/gen.rs"\n', {"src/gen.rs": "fn main() {}\n"}),
        ("", {"build.rs": "fn main() {}\n"}),
        ('workspace = ".."\n', {}),
        ('\n[workspace]\nmembers = ["inner"]\n', {}),
        ('\n[dependencies]\nother = { path = "../other" }\n', {}),
        ('\n[dev_dependencies]\nother = { path = "../other" }\n', {}),
        ('\n[build_dependencies]\nother = { path = "../other" }\n', {}),
        ("\n[target.'cfg(unix)'.dependencies]\nother = { path = \"../other\" }\n", {}),
        ('\n[patch.crates-io]\nother = { path = "../other" }\n', {}),
        ('\n[[bin]]\nname = "x"\npath = "../../outside.rs"\n', {}),
        ("", {".cargo/config.toml": '[build]\nrustflags = ["-Clink-arg=/etc/shadow"]\n'}),
    ],
)
def test_cargo_refuses_build_time_code_however_the_manifest_spells_it(
    manifest, files, tmp_path, host_tmp, cargo_cache, capsys
):
    crate = write_crate(tmp_path / "evil", manifest, {**MAIN, **files})
    result, _ = cargo_cli(crate, capsys)
    assert result["status"] == "denied", result
    _assert_nothing_left(host_tmp)
    assert not cargo_cache.exists() or not any(cargo_cache.iterdir())


def test_cargo_build_time_code_past_the_checks_runs_as_nobody_in_particular(
    secret, tmp_path, host_tmp, cargo_cache, capsys, monkeypatch
):
    """A proc macro and a build script (let through on purpose) try to read a root-only file,
    another process's environment, and to write on the host: all of it fails inside the jail."""
    needs_bwrap(Sandbox(LIMITS))
    env_secret = f"sleepy-env-{uuid.uuid4().hex}"
    other = subprocess.Popen(["sleep", "300"], env={"SLEEPY_ENV_SECRET": env_secret})
    pwned = tmp_path / f"pwned-{uuid.uuid4().hex}"
    probes = [
        str(secret.path),
        f"/proc/1/root{secret.path}",
        f"/proc/{os.getpid()}/root{secret.path}",
        f"/proc/{other.pid}/environ",
        f"/proc/{os.getpid()}/environ",
        "/proc/self/status",  # who the build-time code runs as, and with which capabilities
    ]
    grab = f"""
fn grab() -> String {{
    let mut seen = String::new();
    for p in {json.dumps(probes)} {{
        match std::fs::read(p) {{
            Ok(b) => seen += &String::from_utf8_lossy(&b),
            Err(e) => seen += &format!("{{p}}: {{e}}; "),
        }}
    }}
    for w in ["{pwned}", "/tmp/{pwned.name}"] {{
        if std::fs::write(w, "pwned").is_ok() {{ seen += "wrote "; }}
    }}
    seen
}}
"""
    lib = "extern crate proc_macro;\nuse proc_macro::TokenStream;\n" + grab
    lib += "#[proc_macro]\npub fn leak(_: TokenStream) -> TokenStream {\n"
    lib += '    format!("{:?}", grab()).parse().unwrap()\n}\n'
    build = (
        grab
        + 'fn main() { println!("cargo:rustc-env=BUILD_SAW={}", grab().replace(\'\\n\', " ")); }\n'
    )
    files = {
        "src/lib.rs": lib,
        "build.rs": build,
        "src/main.rs": 'fn main() { println!("{}|{}", evil::leak!(), env!("BUILD_SAW")); }\n',
    }
    crate = write_crate(tmp_path / "evil", "[lib]\nproc-macro = true\n", files)
    monkeypatch.setattr(cargo_mode, "crate_deny_reason", lambda crate: None)
    try:
        result, text = cargo_cli(crate, capsys)
    finally:
        other.kill()
        other.wait()
    assert result["status"] == "ok", result  # the build ran, its reads and writes failed
    assert "Permission denied" in result["stdout"] or "No such file" in result["stdout"]
    assert "wrote" not in result["stdout"]
    status = result["stdout"]
    assert status.count("CapEff:\t0000000000000000") == 2  # the macro and the build script
    assert status.count("CapBnd:\t0000000000000000") == 2
    if os.geteuid() == 0:
        assert "Uid:\t0\t" not in status
    assert secret.value not in text and env_secret not in text
    assert not pwned.exists() and not Path("/tmp", pwned.name).exists()
    _assert_nothing_left(host_tmp)


@pytest.mark.parametrize("kind", ["absolute file", "directory", "through a link chain"])
def test_cargo_refuses_symlinks_out_of_the_crate(
    kind, secret, tmp_path, host_tmp, cargo_cache, capsys
):
    crate = write_crate(tmp_path / "evil", "", MAIN)
    if kind == "absolute file":
        (crate / "src" / "leak.rs").symlink_to(secret.path)
    elif kind == "directory":
        (crate / "usr").symlink_to("/usr")  # followed, it would copy hundreds of MB
    else:
        (tmp_path / "beside.rs").write_text(f'pub const S: &str = "{secret.value}";\n')
        (crate / "here").symlink_to(".")
        (crate / "src" / "leak.rs").symlink_to("../here/../beside.rs")  # lexically inside
    result, text = cargo_cli(crate, capsys)
    assert result["status"] == "denied" and "symlink" in result["detail"], result
    assert secret.value not in text
    _assert_nothing_left(host_tmp)


def test_two_crates_with_one_name_and_version_get_their_own_builds(tmp_path, cargo_cache, capsys):
    first = write_crate(tmp_path / "a", "", {"src/main.rs": 'fn main() { println!("first"); }\n'})
    second = write_crate(tmp_path / "b", "", {"src/main.rs": 'fn main() { println!("second"); }\n'})
    for crate, said in ((first, "first\n"), (second, "second\n"), (first, "first\n")):
        result, _ = cargo_cli(crate, capsys)
        assert result["status"] == "ok" and result["stdout"] == said
    assert len([d for d in cargo_cache.iterdir() if not d.name.startswith(".")]) == 2
