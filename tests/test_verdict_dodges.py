"""A koan is judged with its own tests: a candidate that dodges them (deletes, ignores, renames or
compiles them out, exits the harness early, shadows an assertion) has not fixed it. Real rustc."""

from __future__ import annotations

import pytest

from sleepy.day.protocol import Action
from sleepy.day.workspace import Workspace
from sleepy.koan import Koan
from sleepy.prompts.edits import WholeFile
from sleepy.sandbox import Limits, Sandbox
from sleepy.sandbox.cli import main as cli_main
from sleepy.sandbox.harness import bug_in_tests, koan_tests, strip_tests

CODE = """fn average(values: &[i32]) -> i32 {
    values.iter().sum::<i32>() / values.len() as i32
}

fn main() {
    println!("average={}", average(&[2, 4, 9]));
}
"""
TESTS = """
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_three() {
        assert_eq!(average(&[2, 4, 9]), 5);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(average(&[]), 0);
    }
}
"""
FIX = "    if values.is_empty() { return 0; }\n    values.iter()"
CORRECT = CODE.replace("    values.iter()", FIX) + TESTS
BUGGY = CODE + TESTS  # divides by zero on an empty slice: empty_is_zero panics


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits(run_timeout=10))


@pytest.fixture(scope="module")
def koan() -> Koan:
    return Koan(
        id="average", family="result_handling", description="d", buggy_code=BUGGY,
        correct_code=CORRECT, expected_error="attempt to divide by zero", kind="test",
        expected_stdout="average=5\n",
    )  # fmt: skip


def test_the_real_fix_passes_and_reports_every_koan_test(sandbox, koan):
    v = sandbox.verdict(koan, CORRECT)
    assert v.passed, v.feedback()
    assert sorted(v.passed_tests) == ["tests::averages_three", "tests::empty_is_zero"]
    assert koan_tests(CORRECT).names == ("tests::averages_three", "tests::empty_is_zero")


def test_deleting_the_test_module_keeps_the_bug_failing(sandbox, koan):
    dodge = CODE  # the bug kept, main's expected line still printed, no tests at all
    assert sandbox.judge(dodge, expected_stdout="average=5\n").passed  # the code's own view
    v = sandbox.verdict(koan, dodge)
    assert not v.passed and v.status == "test_failed"
    assert "tests::empty_is_zero" in v.failed_tests
    assert "empty_is_zero" in v.feedback()


@pytest.mark.parametrize(
    "how",
    [
        lambda t: t.replace("#[test]", "#[test]\n    #[ignore]"),
        lambda t: t.replace("#[cfg(test)]", "#[cfg(any())]"),
        lambda t: t.replace("fn empty_is_zero", "fn empty_is_zero_renamed"),
        lambda t: t.replace("assert_eq!(average(&[]), 0);", "std::process::exit(0);"),
        lambda t: t.replace("#[test]\n    fn empty_is_zero() {", "fn empty_is_zero() {"),
    ],
    ids=["ignored", "compiled_out", "renamed", "exits_first", "not_a_test"],
)
def test_a_changed_test_module_is_replaced_by_the_koans(sandbox, koan, how):
    dodge = CODE + how(TESTS)
    assert dodge != BUGGY
    v = sandbox.verdict(koan, dodge)
    assert not v.passed and v.status == "test_failed", v.feedback()
    assert "tests::empty_is_zero" in {*v.failed_tests, *v.missing_tests}


def test_code_that_exits_the_harness_early_fails_with_the_tests_that_did_not_run(sandbox, koan):
    dodge = CORRECT.replace(
        "fn average(values: &[i32]) -> i32 {",
        "fn average(values: &[i32]) -> i32 {\n    if values.is_empty() { std::process::exit(0); }",
    ).replace(FIX, "    values.iter()")
    v = sandbox.verdict(koan, dodge)
    assert not v.passed and v.status == "test_failed"
    assert "tests::empty_is_zero" in v.missing_tests
    assert "did not run: " in v.feedback() and "tests::empty_is_zero" in v.feedback()


def test_a_shadowed_assertion_does_not_silence_the_koans_tests(sandbox, koan):
    dodge = "macro_rules! assert_eq { ($($t:tt)*) => {}; }\n" + BUGGY
    v = sandbox.verdict(koan, dodge)
    assert not v.passed and "tests::empty_is_zero" in v.failed_tests


def test_code_that_behaves_differently_under_test_is_not_a_fix(sandbox, koan):
    dodge = BUGGY.replace(
        "    values.iter()",
        "    if cfg!(test) && values.is_empty() { return 0; }\n    values.iter()",
    )
    v = sandbox.verdict(koan, dodge)
    assert not v.passed and v.status == "test_failed" and "cfg" in v.detail


def test_removed_tests_keep_the_candidates_line_numbers():
    code = (
        '#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\nfn main() { let x: i32 = ""; }\n'
    )
    stripped = strip_tests(code)
    assert stripped.count("\n") == code.count("\n") and "mod tests" not in stripped
    assert stripped.splitlines()[5] == code.splitlines()[5]


def test_a_bug_inside_the_tests_is_not_a_koan():
    assert bug_in_tests(BUGGY.replace("5);", "6);"), CORRECT)
    assert not bug_in_tests(BUGGY, CORRECT)


def test_cli_test_run_is_not_ok_when_a_test_exits_the_harness(tmp_path, capsys):
    src = tmp_path / "exits.rs"
    src.write_text(
        "#[test]\nfn a_exits() { std::process::exit(0); }\n"
        "#[test]\nfn b_fails() { std::thread::sleep(std::time::Duration::from_millis(50));"
        ' panic!("no"); }\n'
    )
    assert cli_main(["sandbox", "run", str(src), "--test"]) == 1
    out = capsys.readouterr().out
    assert "status: ok" not in out and "test_failed" in out


def test_cargo_test_is_not_ok_when_a_test_exits_the_harness(tmp_path):
    crate = tmp_path / "exits"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "exits"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    (crate / "src" / "lib.rs").write_text(
        "#[test]\nfn quits() { std::process::exit(0); }\n#[test]\nfn fine() {}\n"
    )
    r = Sandbox(cargo_target_dir=tmp_path / "target").cargo(crate, "test")
    assert r.status == "test_failed" and "summary" in r.detail


def test_the_agents_run_tests_runs_the_koans_tests(sandbox, koan):
    ws = Workspace(koan, sandbox, WholeFile())
    ws.code = CODE  # the model deleted the test module
    text = ws.execute(Action("run_tests", {})).text
    assert "1 failed" in text and "tests::empty_is_zero" in text
    ws.code = CODE + TESTS.replace("fn empty_is_zero", "fn gone")
    assert "tests::empty_is_zero" in ws.execute(Action("run_tests", {})).text
