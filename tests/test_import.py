"""`sleepy koans import`: exercise/solution trees of .rs files become validated koans (real rustc)."""

import json

import pytest

from sleepy.cli import main
from sleepy.koans.importer import import_pairs
from sleepy.koans.model import KoanError, load_koans

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
    assert "2 imported, 3 skipped" in printed
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
    with pytest.raises(KoanError, match=r"moved\.rs: no family: pass --family"):
        import_pairs(buggy, fixed)
    report = import_pairs(buggy, fixed, tmp_path / "out", family="mutability")
    assert [k.family for k in report.koans] == ["mutability"]
    assert (tmp_path / "out" / "mutability" / f"{report.koans[0].id}.json").is_file()
    with pytest.raises(KoanError, match="--fixed-dir: .* is not a folder"):
        import_pairs(buggy, tmp_path / "missing")
