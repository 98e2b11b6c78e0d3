"""`sleepy koans import`: exercise/solution trees of .rs files become validated koans (real rustc)."""

import json
import os
import sys
from pathlib import Path

import pytest

from sleepy.cli import main
from sleepy.koan.model import MAX_ID_LEN, KoanError, load_koans
from sleepy.koans.importer import import_pairs

MOVED = """// A name is handed to a function that takes it by value.
fn greet(name: String) -> String {
    format!("hello {}", name)
}

fn main() {
    let name = String::from("ada");
    let line = greet(name);
    println!("{} ({})", line, name.len());
}
"""
MOVED_FIXED = MOVED.replace("greet(name)", "greet(name.clone())")

AVERAGE = """pub fn average(xs: &[i32]) -> i32 {
    xs.iter().sum::<i32>() / (xs.len() as i32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_of_three() {
        assert_eq!(average(&[2, 4, 6]), 4);
    }
}
"""
AVERAGE_FIXED = AVERAGE.replace(" + 1)", ")")
FINE = 'fn main() {\n    println!("{}", 1 + 1);\n}\n'


def tree(root, files: dict[str, str]):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_import_end_to_end(tmp_path, capsys):
    buggy = tree(
        tmp_path / "exercises",
        {
            "borrow_checker/moved.rs": MOVED,
            "closures_iterators/nested/average.rs": AVERAGE,
            "borrow_checker/fine.rs": FINE,
            "borrow_checker/bad_fix.rs": MOVED.replace("ada", "bob"),
            "borrow_checker/orphan.rs": MOVED,
        },
    )
    fixed = tree(
        tmp_path / "solutions",
        {
            "borrow_checker/moved.rs": MOVED_FIXED,
            "closures_iterators/nested/average.rs": AVERAGE_FIXED,
            "borrow_checker/fine.rs": FINE.replace("1 + 1", "2"),
            "borrow_checker/bad_fix.rs": MOVED.replace("ada", "bob").replace(
                "name.len()", "name.size()"
            ),
        },
    )
    out = tmp_path / "koans"
    argv = [
        "koans",
        "import",
        "--buggy-dir",
        str(buggy),
        "--fixed-dir",
        str(fixed),
        "--out",
        str(out),
    ]
    assert main([*argv, "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2 imported -> " in printed and "3 skipped:" in printed
    assert "skipped borrow_checker/fine.rs: buggy file already passes" in printed
    assert "skipped borrow_checker/orphan.rs: no fixed file" in printed
    assert "skipped borrow_checker/bad_fix.rs: fixed file does not pass (compile_error)" in printed

    koans = {k.meta["imported_from"]: k for k in load_koans(out)}
    moved = koans["borrow_checker/moved.rs"]
    assert (moved.kind, moved.expected_code, moved.source) == ("compile", "E0382", "imported")
    assert "borrow of moved value" in moved.expected_error
    assert moved.description == "A name is handed to a function that takes it by value."
    assert moved.expected_stdout == "hello ada (3)\n"
    assert moved.id.startswith("imp-borrow-checker-moved-")
    average = koans["closures_iterators/nested/average.rs"]
    assert (average.family, average.kind, average.expected_code) == (
        "closures_iterators",
        "test",
        None,
    )
    assert average.expected_error.startswith("assertion `left == right` failed")
    assert average.expected_stdout is None

    assert main(["koans", "validate", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"total": 2, "ok": 2, "failed": []}


def test_family_comes_from_flag_or_first_folder(tmp_path):
    buggy = tree(tmp_path / "a", {"moved.rs": MOVED})
    fixed = tree(tmp_path / "b", {"moved.rs": MOVED_FIXED})
    report = import_pairs(buggy, fixed, tmp_path / "out", family="mutability")
    assert [k.family for k in report.koans] == ["mutability"]
    assert report.families == {"moved.rs": "from --family"}
    assert (tmp_path / "out" / "mutability" / f"{report.koans[0].id}.json").is_file()
    with pytest.raises(KoanError, match="--fixed-dir: .* is not a folder"):
        import_pairs(buggy, tmp_path / "missing")


# -- a public-style exercise set: exercises/ and solutions/ by topic, not by sleepy's families ---

VARIABLES = """fn main() {
    let count = 1;
    count = count + 1;
    println!("count {}", count);
}
"""
ERRORS = """use std::num::ParseIntError;

fn parse(text: &str) -> Result<i32, ParseIntError> {
    text.parse::<i32>()
}

fn main() {
    let n = parse("42")?;
    println!("{}", n);
}
"""
ERRORS_FIXED = ERRORS.replace('parse("42")?', 'parse("42").unwrap()')
SEMICOLON = """fn main() {
    let x = 5
    let y = x + 1;
    println!("{}", y);
}
"""
FORMAT = """fn main() {
    let name = "ada";
    println!("{} is {} years old", name);
}
"""
DELIMITER = """fn main() {
    let total = add(2, 3;
    println!("{}", total);
}

fn add(a: i32, b: i32) -> i32 {
    a + b
}
"""
# the fixed program prints the time: its output cannot be an expected_stdout
CLOCK = """use std::time::{SystemTime, UNIX_EPOCH};

fn stamp(label: String) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{} at {}", label, now.as_nanos())
}

fn main() {
    let label = String::from("start");
    let line = stamp(label);
    println!("{} ({})", line, label.len());
}
"""
# a HashMap's iteration order is seeded per process: this output differs from run to run
ORDER = """use std::collections::HashMap;

fn main() {
    let mut scores = HashMap::new();
    for i in 0..24 {
        scores.insert(format!("player{}", i), i);
    }
    let names = scores.keys();
    scores.insert(String::from("late"), 99);
    for name in names {
        print!("{} ", name);
    }
    println!();
}
"""
ORDER_FIXED = ORDER.replace(
    '    let names = scores.keys();\n    scores.insert(String::from("late"), 99);\n',
    '    scores.insert(String::from("late"), 99);\n    let names = scores.keys();\n',
)
ITERATORS = """pub fn doubled(xs: &[i32]) -> Vec<i32> {
    xs.iter().map(|x| x * 2).skip(1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_every_element() {
        assert_eq!(doubled(&[1, 2, 3]), vec![2, 4, 6]);
    }
}
"""
ITERATORS_FIXED = ITERATORS.replace(".skip(1)", "")


def public_style_tree(root):
    """exercises/ and solutions/ side by side, folders by topic; some compile errors have no
    rustc code, one fixed program prints the time, one prints in a HashMap's order."""
    exercises = {
        "move_semantics/move1.rs": MOVED,
        "variables/variables1.rs": VARIABLES,
        "error_handling/errors1.rs": ERRORS,
        "functions/functions1.rs": SEMICOLON,
        "strings/strings1.rs": FORMAT,
        "functions/functions2.rs": DELIMITER,
        "quiz1/quiz1.rs": SEMICOLON.replace("x + 1", "x * 2"),
        "clock/clock1.rs": CLOCK,
        "hashmaps/order1.rs": ORDER,
        "iterators/iterators1.rs": ITERATORS,
        "intro/intro1.rs": FINE,
        "intro/intro2.rs": FINE.replace("1 + 1", "2 + 2"),
    }
    solutions = {
        "move_semantics/move1.rs": MOVED_FIXED,
        "variables/variables1.rs": VARIABLES.replace("let count", "let mut count"),
        "error_handling/errors1.rs": ERRORS_FIXED,
        "functions/functions1.rs": SEMICOLON.replace("let x = 5\n", "let x = 5;\n"),
        "strings/strings1.rs": FORMAT.replace("name);", "name, 36);"),
        "functions/functions2.rs": DELIMITER.replace("add(2, 3;", "add(2, 3);"),
        "quiz1/quiz1.rs": SEMICOLON.replace("x + 1", "x * 2").replace("= 5\n", "= 5;\n"),
        "clock/clock1.rs": CLOCK.replace("stamp(label)", "stamp(label.clone())"),
        "hashmaps/order1.rs": ORDER_FIXED,
        "iterators/iterators1.rs": ITERATORS_FIXED,
        "intro/intro1.rs": FINE,
    }
    tree(root / "exercises", exercises)
    tree(root / "solutions", solutions)
    return root / "exercises", root / "solutions"


def test_public_style_exercise_tree_imports_with_families_inferred(tmp_path, capsys):
    exercises, solutions = public_style_tree(tmp_path / "rust-exercises")
    out = tmp_path / "koans"
    argv = ["koans", "import", "--buggy-dir", str(exercises), "--fixed-dir", str(solutions)]
    assert main([*argv, "--out", str(out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    koans = {k.meta["imported_from"]: k for k in load_koans(out)}
    assert {rel: k.family for rel, k in koans.items()} == {
        "move_semantics/move1.rs": "borrow_checker",  # E0382 borrow of moved value
        "variables/variables1.rs": "mutability",  # E0384 cannot assign twice
        "error_handling/errors1.rs": "result_handling",  # the `?` operator
        "functions/functions1.rs": "type_mismatch",  # no code: the topic folder says
        "strings/strings1.rs": "type_mismatch",
        "functions/functions2.rs": "type_mismatch",
        "clock/clock1.rs": "borrow_checker",
        "hashmaps/order1.rs": "borrow_checker",  # E0502, by its message
        "iterators/iterators1.rs": "closures_iterators",  # a failing test, by its topic
    }
    # the report says which family it chose and why
    assert "family mutability from the error message 'cannot assign twice" in printed
    assert "family type_mismatch from the folder 'functions'" in printed

    # compile errors without a rustc code are koans keyed by their normalized message
    semicolon = koans["functions/functions1.rs"]
    assert (semicolon.kind, semicolon.expected_code) == ("compile", None)
    assert semicolon.expected_error == "expected `;`, found keyword `let`"
    assert semicolon.pattern.startswith("rustc_error_expected")
    assert koans["strings/strings1.rs"].pattern != semicolon.pattern

    # output that differs between runs is imported without an output check, never broken
    clock, order = koans["clock/clock1.rs"], koans["hashmaps/order1.rs"]
    assert clock.stdout_varies and clock.expected_stdout is None
    assert clock.meta["stdout_varies"] == "it reads the clock"
    assert order.stdout_varies and "differed between 3 runs" in order.meta["stdout_varies"]
    assert koans["move_semantics/move1.rs"].expected_stdout == "hello ada (3)\n"

    # a summary of what came in and what did not, by reason
    assert "9 imported" in printed and "2 without an output check" in printed
    assert "3 skipped:" in printed
    for line in ("1 no family", "1 buggy file already passes", "1 no fixed file"):
        assert f"  {line}" in printed
    assert "skipped quiz1/quiz1.rs: no family: the error (no code: 'expected `;`" in printed

    # every imported koan passes validation, as imported
    assert main(["koans", "validate", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"total": 9, "ok": 9, "failed": []}

    # importing again adds nothing: the same code is already in --out
    again = import_pairs(exercises, solutions, out, workers=2)
    assert not again.koans and again.skipped_by_reason()["same code as another koan"] == 9


# -- another person's tree: only regular UTF-8 files are read, however deep -----------------------


def deep_folder(root: Path, depth: int) -> Path:
    """`root/d/d/.../d`, `depth` folders down, made one at a time (os.makedirs recurses)."""
    folder = root
    folder.mkdir()
    for _ in range(depth):
        folder = folder / "d"
        folder.mkdir()
    return folder


def remove_deep(root: Path, folder: Path) -> None:
    """Remove what `deep_folder` made (shutil.rmtree recurses too), from the bottom up."""
    while True:
        for f in folder.iterdir():
            if not f.is_dir():
                f.unlink()
        folder.rmdir()
        if folder == root:
            return
        folder = folder.parent


@pytest.mark.timeout(30)  # a FIFO read the old way blocks until a writer comes: never
def test_symlinks_fifos_and_folders_named_rs_are_skipped_each_with_why(tmp_path):
    buggy, fixed = tmp_path / "exercises", tmp_path / "solutions"
    names = ["fifo.rs", "passwd.rs", "folder.rs", "fixed_link.rs", "linked/under.rs"]
    tree(fixed, {n: MOVED_FIXED for n in names if n != "fixed_link.rs"})
    tree(buggy, {"fixed_link.rs": MOVED, "linked/under.rs": MOVED})
    os.mkfifo(buggy / "fifo.rs")
    (buggy / "passwd.rs").symlink_to("/etc/passwd")
    (buggy / "folder.rs").mkdir()
    (fixed / "fixed_link.rs").symlink_to("/etc/passwd")
    (tmp_path / "elsewhere").mkdir()
    (fixed / "linked").rename(tmp_path / "elsewhere" / "linked")
    (fixed / "linked").symlink_to(tmp_path / "elsewhere" / "linked")

    report = import_pairs(buggy, fixed, tmp_path / "out")
    assert report.koans == [] and not (tmp_path / "out").exists()
    assert dict(report.skipped) == {
        "fifo.rs": "not a regular file: a FIFO",
        "passwd.rs": "a symlink (only regular files are read: copy the file into the tree)",
        "folder.rs": "not a regular file: a folder",
        "fixed_link.rs": (
            "fixed file a symlink (only regular files are read: copy the file into the tree)"
        ),
        "linked/under.rs": (
            f"fixed file reached through a symlinked folder ({fixed / 'linked'}): "
            "only regular files are read"
        ),
    }


def test_a_file_that_is_not_utf8_is_skipped_by_name_and_the_rest_imported(tmp_path, capsys):
    latin1 = MOVED.replace("function", "fonction (café)").encode("latin-1")
    buggy = tree(tmp_path / "exercises", {"borrow_checker/moved.rs": MOVED})
    fixed = tree(tmp_path / "solutions", {"borrow_checker/moved.rs": MOVED_FIXED})
    (buggy / "borrow_checker" / "latin1.rs").write_bytes(latin1)
    (fixed / "borrow_checker" / "latin1.rs").write_text(MOVED_FIXED)
    out = tmp_path / "koans"
    argv = ["koans", "import", "--buggy-dir", str(buggy), "--fixed-dir", str(fixed)]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    at = latin1.index("é".encode("latin-1"))
    assert (
        f"skipped borrow_checker/latin1.rs: not UTF-8 text: byte {at} is 0xe9 (save it as UTF-8)"
        in printed
    )
    assert "1 imported -> " in printed and "1 skipped:" in printed
    assert [k.meta["imported_from"] for k in load_koans(out)] == ["borrow_checker/moved.rs"]


def test_a_tree_deeper_than_the_recursion_limit_imports(tmp_path):
    depth = sys.getrecursionlimit() + 100
    rel = Path(*["d"] * depth, "moved.rs")
    buggy, fixed = tmp_path / "exercises", tmp_path / "solutions"
    bottoms = deep_folder(buggy, depth), deep_folder(fixed, depth)
    try:
        (bottoms[0] / "moved.rs").write_text(MOVED)
        (bottoms[1] / "moved.rs").write_text(MOVED_FIXED)
        report = import_pairs(buggy, fixed, tmp_path / "out", family="borrow_checker")
        assert report.skipped == []
        assert [k.meta["imported_from"] for k in report.koans] == [str(rel)]
        # an id from a path 1,100 folders long is capped, so the koan's file name can be written
        (koan,) = load_koans(tmp_path / "out")
        assert koan == report.koans[0] and len(koan.id) <= MAX_ID_LEN
        assert koan.id.startswith("imp-d-d-d-") and koan.id.endswith(koan.content_hash[:8])
    finally:
        remove_deep(buggy, bottoms[0])
        remove_deep(fixed, bottoms[1])
