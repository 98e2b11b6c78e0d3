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
    assert report.koans[0].meta["family_evidence"] == [{"rule": "--family", "token": "mutability"}]
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
    # the report says which family it chose and why: each rule and the token it matched
    assert (
        "family mutability from the error message's 'cannot assign twice to immutable' "
        "and the error code E0384)" in printed
    )
    assert "family type_mismatch from the folder 'functions')" in printed
    assert koans["move_semantics/move1.rs"].meta["family_evidence"] == [
        {"rule": "message", "token": "moved value"},
        {"rule": "code", "token": "E0382"},
        {"rule": "folder", "token": "move_semantics"},
    ]
    # E0277 alone would say trait_bounds: the message says which E0277 it is
    assert koans["error_handling/errors1.rs"].meta["family_evidence"] == [
        {"rule": "message", "token": "`?` operator"},
        {"rule": "folder", "token": "error_handling"},
    ]

    # compile errors without a rustc code are koans keyed by their normalized message, when a
    # folder names their family (quiz1's names none: it is skipped, above)
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
    assert (
        "skipped quiz1/quiz1.rs: no family: the error (no code: 'expected `;`, found keyword `let`')"
        " and the folders name none; pass --family" in printed
    )

    # every imported koan passes validation, as imported
    assert main(["koans", "validate", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"total": 9, "ok": 9, "failed": []}

    # importing again adds nothing: the same code is already in --out
    again = import_pairs(exercises, solutions, out, workers=2)
    assert not again.koans and again.skipped_by_reason()["same code as another koan"] == 9


# -- a numbered exercise set: families a Rust programmer would pick, each with its evidence -------

RC_MUT = """// Push onto a vector behind an Rc.
use std::rc::Rc;

fn main() {
    let shared = Rc::new(vec![1, 2, 3]);
    shared.push(4);
    println!("{:?}", shared);
}
"""
RC_MUT_FIXED = """// Push onto a vector behind an Rc.
use std::cell::RefCell;
use std::rc::Rc;

fn main() {
    let shared = Rc::new(RefCell::new(vec![1, 2, 3]));
    shared.borrow_mut().push(4);
    println!("{:?}", shared.borrow());
}
"""
RECURSIVE = """// A list that holds the rest of itself.
#[derive(Debug)]
enum List {
    Cons(i32, List),
    Nil,
}

fn main() {
    println!("{:?}", List::Cons(1, List::Nil));
}
"""
RECURSIVE_FIXED = RECURSIVE.replace("Cons(i32, List)", "Cons(i32, Box<List>)").replace(
    "List::Cons(1, List::Nil)", "List::Cons(1, Box::new(List::Nil))"
)
FROM_STR = """// A person from their name.
#[derive(Debug)]
struct Person {
    name: String,
}

impl From<&str> for Person {}

fn main() {
    println!("{:?}", Person::from("ada"));
}
"""
FROM_STR_FIXED = FROM_STR.replace(
    "impl From<&str> for Person {}",
    "impl From<&str> for Person {\n"
    "    fn from(name: &str) -> Person {\n"
    "        Person { name: name.to_string() }\n"
    "    }\n"
    "}",
)
COLLECT = """// Double every number.
fn main() {
    let xs = vec![1, 2, 3];
    let doubled: Vec<i32> = xs.iter().collect();
    println!("{:?}", doubled);
}
"""
COLLECT_FIXED = COLLECT.replace("xs.iter().collect()", "xs.iter().map(|x| x * 2).collect()")
PARSE_ALL = """pub fn parse_all(words: &[&str]) -> Vec<i32> {
    words.iter().map(|w| w.parse::<i32>().unwrap()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_what_is_not_a_number() {
        assert_eq!(parse_all(&["1", "two", "3"]), vec![1, 3]);
    }
}
"""
PARSE_ALL_FIXED = PARSE_ALL.replace(
    ".map(|w| w.parse::<i32>().unwrap())", ".filter_map(|w| w.parse().ok())"
)
SPAWN = """// Print the names on another thread, then count them.
use std::thread;

fn main() {
    let names = vec![String::from("ada"), String::from("bob")];
    let handle = thread::spawn(move || println!("{:?}", names));
    handle.join().unwrap();
    println!("{}", names.len());
}
"""
SPAWN_FIXED = SPAWN.replace(
    "    let handle = thread::spawn(move || println!",
    "    let count = names.len();\n    let handle = thread::spawn(move || println!",
).replace("names.len());\n}", "count);\n}")


def test_a_numbered_exercise_set_gets_the_families_its_errors_teach(tmp_path, capsys):
    exercises = {
        "19_smart_pointers/rc1.rs": (RC_MUT, RC_MUT_FIXED),
        "19_smart_pointers/box1.rs": (RECURSIVE, RECURSIVE_FIXED),
        "23_conversions/from_into.rs": (FROM_STR, FROM_STR_FIXED),
        "18_iterators/iterators2.rs": (COLLECT, COLLECT_FIXED),
        "18_iterators/iterators3.rs": (PARSE_ALL, PARSE_ALL_FIXED),
        "20_threads/threads1.rs": (SPAWN, SPAWN_FIXED),
    }
    buggy = tree(tmp_path / "exercises", {rel: pair[0] for rel, pair in exercises.items()})
    fixed = tree(tmp_path / "solutions", {rel: pair[1] for rel, pair in exercises.items()})
    out = tmp_path / "koans"
    argv = ["koans", "import", "--buggy-dir", str(buggy), "--fixed-dir", str(fixed)]
    assert main([*argv, "--out", str(out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    koans = {k.meta["imported_from"]: k for k in load_koans(out)}
    assert {rel: k.family for rel, k in koans.items()} == {
        "19_smart_pointers/rc1.rs": "mutability",  # not concurrency: an Rc is not shared by threads
        "23_conversions/from_into.rs": "trait_bounds",  # E0046: a trait item is missing
        "18_iterators/iterators2.rs": "closures_iterators",
    }
    evidence = {rel: k.meta["family_evidence"] for rel, k in koans.items()}
    assert evidence == {
        "19_smart_pointers/rc1.rs": [{"rule": "code", "token": "E0596"}],
        "23_conversions/from_into.rs": [{"rule": "code", "token": "E0046"}],
        # E0277 alone would say trait_bounds: the message names the iterator
        "18_iterators/iterators2.rs": [
            {"rule": "message", "token": "iterator"},
            {"rule": "folder", "token": "18_iterators"},
        ],
    }
    assert "family trait_bounds from the error code E0046)" in printed
    assert (
        "family closures_iterators from the error message's 'iterator' "
        "and the folder '18_iterators')" in printed
    )

    # two rules that point at different families: skipped with both, not guessed
    assert (
        "skipped 18_iterators/iterators3.rs: ambiguous family: the error message's 'unwrap' says "
        "result_handling, the folder '18_iterators' says closures_iterators; pass --family"
    ) in printed
    assert (
        "skipped 20_threads/threads1.rs: ambiguous family: the error message's 'moved value' says "
        "borrow_checker, the error code E0382 says borrow_checker, the folder '20_threads' says "
        "concurrency; pass --family"
    ) in printed
    # a smart pointers folder names no family: an error nothing else names has none
    assert (
        "skipped 19_smart_pointers/box1.rs: no family: the error (E0072: 'recursive type `List` "
        "has infinite size') and the folders name none; pass --family"
    ) in printed
    assert "3 imported -> " in printed and "3 skipped:" in printed
    assert "  2 ambiguous family" in printed and "  1 no family" in printed

    # --family settles what the rules could not
    settled = import_pairs(buggy / "20_threads", fixed / "20_threads", family="concurrency")
    assert [(k.family, k.meta["family_evidence"]) for k in settled.koans] == [
        ("concurrency", [{"rule": "--family", "token": "concurrency"}])
    ]


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
