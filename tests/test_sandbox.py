"""The sandbox on real rustc and cargo: diagnostics, tests, output, verdicts, cargo, batches."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sleepy.koan import Koan
from sleepy.sandbox import Limits, Sandbox, run_batch
from sleepy.sandbox.cli import main as cli_main

MOVED = """fn main() {
    let names = vec![String::from("ada")];
    let moved = names;
    println!("{} {}", names.len(), moved.len());
}
"""

SCORES = """struct Scores { values: Vec<i32> }

impl Scores {
    fn total(&self) -> i32 { self.values.iter().sum() }
    fn best(&self) -> Option<i32> { self.values.iter().copied().max() }
}

fn main() {
    let s = Scores { values: vec![3, 9, 4] };
    println!("total={} best={:?}", s.total(), s.best());
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn totals() { assert_eq!(Scores { values: vec![1, 2] }.total(), 3); }
    #[test]
    fn best_of_empty() { assert_eq!(Scores { values: vec![] }.best(), None); }
}
"""


def koan(correct: str, expected_stdout: str | None) -> Koan:
    return Koan(
        id="scores", family="borrow_checker", description="d", buggy_code=MOVED,
        correct_code=correct, expected_error="borrow of moved value", expected_code="E0382",
        expected_stdout=expected_stdout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits(run_timeout=10))


def test_check_parses_rustc_diagnostics(sandbox):
    r = sandbox.check(MOVED)
    assert r.status == "compile_error"
    (err,) = r.errors
    assert err.code == "E0382"
    assert err.message == "borrow of moved value: `names`"
    assert (err.line, err.column) == (4, 23)
    assert "value moved here" in err.labels
    assert any(".clone()" in s for s in err.suggestions)
    assert "--> src/main.rs:4:23" in err.rendered
    assert 'println!("{} {}", names.len(), moved.len());' in err.rendered  # the offending line
    assert r.wall_time > 0 and r.isolation


def test_check_keeps_warnings_but_passes(sandbox):
    r = sandbox.check("fn main() { let unused = 1; }")
    assert r.status == "ok" and r.errors == []
    assert any(d.level == "warning" and "unused" in d.message for d in r.diagnostics)


def test_check_type_checks_test_code_too(sandbox):
    code = 'fn main() {}\n#[cfg(test)]\nmod tests { #[test] fn t() { let x: i32 = "no"; } }\n'
    r = sandbox.check(code)
    assert r.status == "compile_error"
    assert r.errors[0].code == "E0308"


def test_test_reports_passed_and_failed_tests_with_panic_messages(sandbox):
    broken = SCORES.replace("self.values.iter().sum()", "self.values.iter().sum::<i32>() + 1")
    r = sandbox.test(broken)
    assert r.status == "test_failed"
    assert r.passed_tests == ["tests::best_of_empty"]
    assert list(r.failed_tests) == ["tests::totals"]
    msg = r.failed_tests["tests::totals"]
    assert msg.startswith("assertion `left == right` failed")
    assert "left: 4" in msg and "right: 3" in msg
    assert sandbox.test(SCORES).status == "ok"


def test_run_captures_stdout_and_reads_stdin(sandbox):
    code = """use std::io::Read;
fn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap();
            println!("got {}", s.trim().to_uppercase()); }"""
    r = sandbox.run(code, stdin="hello\n")
    assert r.status == "ok"
    assert r.stdout == "got HELLO\n"


def test_verdict_passes_only_the_real_fix(sandbox):
    k = koan(SCORES, "total=16 best=Some(9)\n")
    v = sandbox.verdict(k, SCORES)
    assert v.passed and v.status == "ok" and v.signature is None and v.feedback() == ""
    assert sorted(v.passed_tests) == ["tests::best_of_empty", "tests::totals"]
    assert v.stdout == "total=16 best=Some(9)\n" and v.wall_time > 0


def test_verdict_compiling_is_not_enough(sandbox):
    # "fixing" by deleting the print compiles, passes the tests, and is still wrong
    gutted = SCORES.replace('println!("total={} best={:?}", s.total(), s.best());', "let _ = s;")
    v = sandbox.verdict(koan(SCORES, "total=16 best=Some(9)\n"), gutted)
    assert not v.passed and v.status == "wrong_output"
    assert v.signature.code == "wrong_output"
    fb = v.feedback()
    assert "expected output:\ntotal=16 best=Some(9)" in fb and "got:" in fb


def test_verdict_compile_error_has_signature_and_rustc_feedback(sandbox):
    v = sandbox.verdict(koan(SCORES, None), MOVED)
    assert v.status == "compile_error"
    assert str(v.signature) == "E0382 borrow of moved value: <id>"
    fb = v.feedback()
    assert fb.startswith("error[E0382]: borrow of moved value: `names`")
    assert "src/main.rs:4:23" in fb
    assert len(sandbox.verdict(koan(SCORES, None), MOVED).feedback(max_chars=120)) <= 120


def test_verdict_failing_test(sandbox):
    broken = SCORES.replace(".copied().max()", ".copied().max().or(Some(0))")
    v = sandbox.verdict(koan(SCORES, "total=16 best=Some(9)\n"), broken)
    assert v.status == "test_failed"
    assert list(v.failed_tests) == ["tests::best_of_empty"]
    assert str(v.signature) == "test_failed assertion left == right failed"
    assert v.feedback().startswith("test tests::best_of_empty failed:\nassertion `left == right`")


def test_verdict_panicking_main_is_a_runtime_error(sandbox):
    code = 'fn main() { let v: Vec<i32> = vec![]; println!("{}", v[2]); }'
    v = sandbox.verdict(koan(code, None), code)
    assert v.status == "runtime_error"
    assert "index out of bounds" in v.detail
    assert v.signature.code == "runtime_error"


def test_verdict_without_expected_stdout_needs_a_clean_exit(sandbox):
    ok = 'fn main() { println!("anything"); }'
    assert sandbox.verdict(koan(ok, None), ok).passed
    bad = "fn main() { std::process::exit(2); }"
    assert sandbox.verdict(koan(bad, None), bad).status == "runtime_error"


def test_verdict_of_a_library_with_tests(sandbox):
    lib = "pub fn double(x: i32) -> i32 { x * 2 }\n#[cfg(test)]\nmod t { #[test] fn d() { assert_eq!(super::double(2), 4); } }\n"
    v = sandbox.verdict(koan(lib, None), lib)
    assert v.passed and v.passed_tests == ["t::d"]
    assert sandbox.verdict(koan(lib, None), lib.replace("x * 2", "x + 2")).status == "ok"
    assert sandbox.verdict(koan(lib, None), lib.replace("x * 2", "x * 3")).status == "test_failed"


def test_edition_is_passed_to_rustc(sandbox):
    code = 'fn main() { let async = 1; println!("{}", async); }'  # a keyword since 2018
    assert sandbox.run(code, edition="2015").status == "ok"
    assert sandbox.run(code, edition="2021").status == "compile_error"


@pytest.mark.parametrize("isolation", ["none", "netns"])
def test_weaker_isolation_still_runs_and_says_what_it_used(isolation):
    sb = Sandbox(isolation=isolation)
    assert "bwrap" not in sb.isolation
    r = sb.run('fn main() { println!("hi"); }')
    assert r.stdout == "hi\n" and r.isolation == sb.isolation
    assert sb.check(MOVED).errors[0].code == "E0382"


def test_unknown_isolation_is_a_clear_error():
    with pytest.raises(ValueError, match="isolation 'chroot' must be one of"):
        Sandbox(isolation="chroot")


# -- cargo mode ------------------------------------------------------------------------------


def make_crate(root: Path) -> Path:
    (root / "src" / "shapes").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "Cargo.toml").write_text(
        '[package]\nname = "geo"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    (root / "src" / "lib.rs").write_text("pub mod shapes;\npub use shapes::square::Square;\n")
    (root / "src" / "shapes" / "mod.rs").write_text("pub mod square;\n")
    (root / "src" / "shapes" / "square.rs").write_text(
        "pub struct Square { pub side: u32 }\n"
        "impl Square { pub fn area(&self) -> u32 { self.side * self.side } }\n"
        "#[cfg(test)]\nmod tests { #[test] fn area() { assert_eq!(super::Square { side: 3 }.area(), 9); } }\n"
    )
    (root / "src" / "main.rs").write_text(
        'fn main() { println!("area {}", geo::Square { side: 4 }.area()); }\n'
    )
    (root / "tests" / "integration.rs").write_text(
        "#[test]\nfn big() { assert_eq!(geo::Square { side: 10 }.area(), 100); }\n"
    )
    return root


def test_cargo_mode_on_a_multi_file_crate(tmp_path):
    crate = make_crate(tmp_path / "geo")
    sb = Sandbox(cargo_target_dir=tmp_path / "target")
    r = sb.cargo(crate, "test")
    assert r.status == "ok", r.detail
    assert "geo::shapes::square::tests::area" in r.passed_tests or any(
        t.endswith("tests::area") for t in r.passed_tests
    )
    assert any(t.endswith("big") for t in r.passed_tests)
    r = sb.cargo(crate, "run")
    assert r.status == "ok" and r.stdout == "area 16\n"
    assert not (crate / "target").exists()  # the crate itself is never written to


def test_cargo_mode_is_incremental_across_calls(tmp_path):
    crate = make_crate(tmp_path / "geo")
    sb = Sandbox(cargo_target_dir=tmp_path / "target")
    first = sb.cargo(crate, "check")
    assert first.status == "ok" and "geo" in first.compiled
    again = sb.cargo(crate, "check")
    assert again.status == "ok" and again.compiled == []  # nothing rebuilt
    square = crate / "src" / "shapes" / "square.rs"
    square.write_text(square.read_text().replace("self.side * self.side", "self.side * self.sid"))
    broken = sb.cargo(crate, "check")
    assert broken.status == "compile_error"
    assert broken.errors[0].code == "E0609"
    assert "src/shapes/square.rs" in broken.errors[0].rendered


def test_cargo_mode_refuses_dependencies_and_build_scripts(tmp_path):
    crate = make_crate(tmp_path / "geo")
    sb = Sandbox(cargo_target_dir=tmp_path / "target")
    (crate / "build.rs").write_text("fn main() {}\n")
    r = sb.cargo(crate, "check")
    assert r.status == "denied" and "build" in r.detail
    (crate / "build.rs").unlink()
    with open(crate / "Cargo.toml", "a") as f:
        f.write('\n[dependencies]\nrand = "0.8"\n')
    assert sb.cargo(crate, "check").status == "denied"
    with pytest.raises(ValueError, match="no Cargo.toml"):
        sb.cargo(tmp_path, "check")


# -- batches and the CLI ------------------------------------------------------------------------


def test_run_batch_keeps_order_and_runs_in_parallel():
    barrier = threading.Barrier(2, timeout=20)

    def work(x: int) -> int:
        if x < 2:
            barrier.wait()  # raises BrokenBarrierError unless two items run at once
        return x * x

    assert run_batch(work, range(6), workers=2, desc="squares") == [0, 1, 4, 9, 16, 25]


def test_run_batch_reraises_errors():
    def work(x: int) -> int:
        if x == 3:
            raise KeyError("three")
        return x

    with pytest.raises(KeyError, match="three"):
        run_batch(work, range(5), workers=2)


def test_run_batch_of_verdicts(sandbox):
    codes = [f'fn main() {{ println!("{i}"); }}' for i in range(4)] + [MOVED]
    verdicts = run_batch(lambda c: sandbox.judge(c), codes, workers=2)
    assert [v.stdout for v in verdicts[:4]] == ["0\n", "1\n", "2\n", "3\n"]
    assert verdicts[4].status == "compile_error"


def test_cli_run_prints_the_verdict(tmp_path, capsys):
    src = tmp_path / "moved.rs"
    src.write_text(MOVED)
    assert cli_main(["sandbox", "run", str(src), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "compile_error"
    assert out["signature"] == "E0382 borrow of moved value: <id>"
    assert out["diagnostics"][0]["code"] == "E0382" and out["wall_time"] > 0
    ok = tmp_path / "scores.rs"
    ok.write_text(SCORES)
    assert cli_main(["sandbox", "run", str(ok)]) == 0
    text = capsys.readouterr().out
    assert "status: ok" in text and "2 passed" in text and "total=16" in text
    assert cli_main(["sandbox", "run", str(ok), "--test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed_tests"]
    assert cli_main(["sandbox", "run", str(tmp_path / "missing.rs")]) == 2
    assert "no such file" in capsys.readouterr().err


# -- one build for programs with tests and a main -------------------------------------------

DEEP = """fn depth(n: u64) -> u64 {
    let pad = [n; 16];
    if n == 0 { return 0; }
    std::hint::black_box(&pad);
    depth(n - 1) + pad[1] - n + 1
}
fn main() { print!("depth {}", depth(20_000)); }
#[test]
fn shallow() { assert_eq!(depth(10), 10); }
"""


def test_main_and_tests_share_one_build_faithfully(sandbox):
    # 20k frames need more than a test thread's default 2 MiB stack: main gets main's 8 MiB
    v = sandbox.judge(DEEP, expected_stdout="depth 20000")
    assert v.passed, v.feedback()
    assert v.passed_tests == ["shallow"]  # the harness's own main-runner is not reported


def test_cfg_test_dependent_code_gets_a_real_binary(sandbox):
    code = """#[cfg(not(test))]
const MODE: &str = "real";
#[cfg(test)]
const MODE: &str = "test";
fn main() { println!("{MODE}"); }
#[test]
fn mode() { assert_eq!(MODE, "test"); }
"""
    v = sandbox.judge(code, expected_stdout="real\n")
    assert v.passed, v.feedback()


def test_main_with_tests_that_panics_or_exits(sandbox):
    tests = "\n#[test]\nfn t() { assert!(true); }\n"
    v = sandbox.judge('fn main() { print!("so far"); panic!("boom {}", 3); }' + tests)
    assert v.status == "runtime_error" and v.detail == "boom 3" and v.stdout == "so far"
    v = sandbox.judge('fn main() { println!("bye"); std::process::exit(4); }' + tests)
    assert v.status == "runtime_error" and v.stdout == "bye\n"
    v = sandbox.judge('fn main() -> Result<(), String> { Err("bad input".into()) }' + tests)
    assert v.status == "runtime_error" and "bad input" in v.detail


# What a hostile program prints to retitle (OSC), colour (CSI) and clear a terminal, and ring it.
RETITLES = r"""fn main() {
    println!("\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{1b}[0m");
    eprintln!("\u{1b}]52;c;Y2xpcGJvYXJk\u{7}");
    panic!("\u{1b}[2J\u{1b}[Hcleared\u{7}");
}
"""
QUOTES_ESCAPES = 'fn main() {\n    compile_error!("\\u{1b}]0;pwned\\u{7}\\u{1b}[31mred");\n}\n'


def test_cli_run_shows_no_escape_sequences_from_the_program_or_rustc(tmp_path):
    shown = {}
    for name, code in (("retitles", RETITLES), ("quotes", QUOTES_ESCAPES)):
        src = tmp_path / f"{name}.rs"
        src.write_text(code)
        proc = subprocess.run(
            [sys.executable, "-m", "sleepy.cli", "sandbox", "run", str(src)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr[-2000:]
        shown[name] = proc.stdout
    for text in shown.values():
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)
    # what the program meant to say is still there, and so is rustc's error
    assert "status: runtime_error" in shown["retitles"] and "detail: cleared" in shown["retitles"]
    assert "\nred\n" in shown["retitles"]
    assert "status: compile_error" in shown["quotes"] and "signature: error red" in shown["quotes"]
