"""Hostile programs are contained: each gets a clear status within small limits, and the host
(its files, its network, its process table) is untouched."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from sleepy.sandbox import Limits, Sandbox

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


def test_infinite_loop_times_out(sandbox):
    v = sandbox.judge(
        "fn main() { let mut i: u64 = 0; loop { i = i.wrapping_add(1); std::hint::black_box(i); } }"
    )
    assert v.status == "timeout"
    assert not v.passed and v.signature.code == "timeout"


def test_sleeping_forever_times_out_on_the_wall_clock(sandbox):
    v = sandbox.judge("fn main() { std::thread::sleep(std::time::Duration::from_secs(3600)); }")
    assert v.status == "timeout"
    assert v.wall_time < 30


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
    assert _processes_with(marker) == []


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


def test_unbounded_allocation_hits_the_memory_limit(sandbox):
    code = """
fn main() {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    loop { keep.push(vec![1u8; 64 << 20]); }
}
"""
    v = sandbox.judge(code)
    assert v.status == "memory"
    assert v.signature.code == "memory"


def test_stack_overflow_is_reported_as_memory(sandbox):
    code = """
fn down(n: u64) -> u64 { let pad = [n; 64]; std::hint::black_box(&pad); down(n + 1) + pad[3] }
fn main() { println!("{}", down(0)); }
"""
    v = sandbox.judge(code)
    assert v.status == "memory"
    assert "stack" in v.detail


def test_gigabytes_of_stdout_are_cut_off(sandbox):
    code = 'fn main() { let line = "x".repeat(1 << 16); loop { println!("{line}"); } }'
    v = sandbox.judge(code)
    assert v.status == "output_truncated"
    assert len(v.stdout) <= LIMITS.output_bytes


def test_disk_fill_is_stopped(sandbox):
    code = """
use std::io::Write;
fn main() {
    let mut f = std::fs::File::create("fill.bin").unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..(10u64 << 10) { f.write_all(&block).unwrap(); }  // 10 GiB
    println!("wrote it all");
}
"""
    v = sandbox.judge(code)
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
