"""`sleepy koans validate|list|show|freeze` on small corpora in tmp_path, checked with real rustc."""

import json
import re

import pytest

from sleepy.cli import main
from sleepy.koan.model import Koan, load_evalset, save_evalset, save_koan
from sleepy.koans import generator
from sleepy.koans.generator import Draft, Vocab

MOVED_BUGGY = """fn shout(text: String) -> String {
    text.to_uppercase()
}

fn main() {
    let name = String::from("ferris");
    let loud = shout(name);
    println!("{} {}", name, loud);
}
"""
MOVED_FIXED = MOVED_BUGGY.replace("shout(name)", "shout(name.clone())")

SUM_BUGGY = """pub fn total(prices: &[u32]) -> u32 {
    prices.iter().skip(1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_every_price() {
        assert_eq!(total(&[3, 4, 5]), 12);
    }
}
"""
SUM_FIXED = SUM_BUGGY.replace(".skip(1)", "")


def moved(**change) -> Koan:
    return Koan.from_dict(
        {
            "id": "moved-name",
            "family": "borrow_checker",
            "description": "`name` is moved into `shout`, then printed.",
            "buggy_code": MOVED_BUGGY,
            "correct_code": MOVED_FIXED,
            "expected_error": "borrow of moved value",
            "expected_code": "E0382",
            "pattern": "use_after_move",
            "expected_stdout": "ferris FERRIS\n",
        }
        | change
    )


def skipped_price(**change) -> Koan:
    return Koan.from_dict(
        {
            "id": "skipped-price",
            "family": "closures_iterators",
            "description": "`total` skips the first price.",
            "buggy_code": SUM_BUGGY,
            "correct_code": SUM_FIXED,
            "expected_error": "assertion `left == right` failed",
            "kind": "test",
            "pattern": "off_by_one_iterator",
        }
        | change
    )


def validate_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["koans", "validate", "--json", "--workers", "2", *map(str, argv)])
    return code, json.loads(capsys.readouterr().out)


def test_good_corpus_and_evalset_validate(tmp_path, capsys):
    save_koan(moved(), tmp_path / "koans")
    save_koan(skipped_price(), tmp_path / "koans")
    ev = moved(id="moved-name-eval", buggy_code=MOVED_BUGGY.replace("ferris", "crab"))
    ev = Koan.from_dict(
        ev.to_dict()
        | {"correct_code": MOVED_FIXED.replace("ferris", "crab"), "expected_stdout": "crab CRAB\n"}
    )
    save_evalset([ev], tmp_path / "evalsets" / "frozen.json")
    code, report = validate_json(capsys, tmp_path / "koans", tmp_path / "evalsets" / "frozen.json")
    assert report == {"total": 3, "ok": 3, "failed": []}
    assert code == 0
    # the rich summary names each family
    assert main(["koans", "validate", str(tmp_path / "koans")]) == 0
    out = capsys.readouterr().out
    assert (
        "borrow_checker" in out and "closures_iterators" in out and "2 koans: 2 ok, 0 failed" in out
    )


def test_validate_catches_broken_koans(tmp_path, capsys):
    root = tmp_path / "koans"
    # buggy code that compiles: it already has the fix, only spelled differently
    save_koan(
        moved(
            id="buggy-compiles", buggy_code=MOVED_FIXED.replace("name.clone()", "name.to_string()")
        ),
        root,
    )
    save_koan(
        moved(id="wrong-stdout", expected_stdout="ferris ferris\n", description="other"), root
    )
    save_koan(moved(id="wrong-code", expected_code="E0499"), root)
    save_koan(
        skipped_price(
            id="test-passes", buggy_code=SUM_FIXED + "\n// nothing wrong\nfn unused() {}\n"
        ),
        root,
    )
    code, report = validate_json(capsys, root)
    assert code == 1
    reasons = {f["id"]: f["reason"] for f in report["failed"]}
    assert report["total"] == 4 and report["ok"] == 0
    assert reasons["buggy-compiles"].startswith("buggy_code compiles without errors")
    assert "wrong_output" in reasons["wrong-stdout"]
    assert "not the declared E0499" in reasons["wrong-code"] and "E0382" in reasons["wrong-code"]
    assert "buggy_code passes all its tests" in reasons["test-passes"]
    # duplicates of one program under three ids
    assert "duplicate content hash" in reasons["wrong-stdout"]
    # the plain summary names the koan and the reason, and exits non-zero
    assert main(["koans", "validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL buggy-compiles: buggy_code compiles without errors" in out


def test_validate_shows_no_escape_sequences_a_program_printed(tmp_path, capsys):
    # the fix prints an OSC title and a colour: the failure's reason quotes that output
    loud = MOVED_FIXED.replace('"{} {}"', r'"\u{1b}]0;pwned\u{7}\u{1b}[31m{} {}\u{1b}[0m\r"')
    save_koan(moved(id="retitles", correct_code=loud), tmp_path / "koans")
    assert main(["koans", "validate", str(tmp_path / "koans")]) == 1
    out = capsys.readouterr().out
    assert "FAIL retitles: correct_code does not pass (wrong_output)" in out
    assert "got: ferris FERRIS" in out  # what it printed, minus the escapes
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), repr(out)


def test_evalset_must_be_disjoint_and_intact(tmp_path, capsys):
    save_koan(moved(), tmp_path / "koans")
    frozen = save_evalset([moved(id="leaked"), skipped_price()], tmp_path / "frozen.json")
    data = json.loads(frozen.read_text())
    data["koans"][1]["correct_code"] += "\nfn added_later() {}\n"
    frozen.write_text(json.dumps(data))
    code, report = validate_json(capsys, frozen, "--corpus", tmp_path / "koans")
    assert code == 1 and report["total"] == 2
    reasons = {f["id"]: f["reason"] for f in report["failed"]}
    assert "evalset koan is also in the corpus" in reasons["leaked"]
    edited = reasons[f"{frozen}[1]"]
    assert "field 'content_hash'" in edited and "edited after it was frozen" in edited


def test_malformed_file_is_reported_not_fatal(tmp_path, capsys):
    save_koan(moved(), tmp_path / "koans")
    bad = tmp_path / "koans" / "lifetimes" / "half-written.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"id": "half-written", "family": "lifetimes"}))
    code, report = validate_json(capsys, tmp_path / "koans")
    assert code == 1 and report["ok"] == 1
    [failed] = report["failed"]
    assert failed["id"] == str(bad)
    assert failed["reason"].startswith(f"{bad}: field '") and "missing" in failed["reason"]


def test_fill_stdout_writes_missing_output(tmp_path, capsys):
    path = save_koan(moved(expected_stdout=None), tmp_path / "koans")
    code, report = validate_json(capsys, tmp_path / "koans")
    assert code == 1 and "expected_stdout missing" in report["failed"][0]["reason"]
    code, report = validate_json(capsys, "--fill-stdout", tmp_path / "koans")
    assert code == 0 and report["ok"] == 1
    assert json.loads(path.read_text())["expected_stdout"] == "ferris FERRIS\n"


def test_list_and_show(tmp_path, capsys):
    root = tmp_path / "koans"
    save_koan(moved(), root)
    save_koan(skipped_price(), root)
    assert main(["koans", "list", str(root), "--json", "--kind", "test"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [
        {
            "id": "skipped-price",
            "family": "closures_iterators",
            "pattern": "off_by_one_iterator",
            "kind": "test",
            "source": "handwritten",
        }
    ]
    assert main(["koans", "list", str(root)]) == 0
    out = capsys.readouterr().out
    assert "moved-name" in out and "skipped-price" in out
    assert main(["koans", "show", "moved-name", str(root)]) == 0
    out = capsys.readouterr().out
    assert "borrow of moved value" in out and "shout(name.clone())" in out
    assert main(["koans", "show", "nope", str(root)]) == 1
    assert "no koan with id 'nope'" in capsys.readouterr().err


def shouting(v: Vocab) -> Draft:
    name, word = v.var(), v.word()
    b = MOVED_BUGGY.replace("name", name).replace("ferris", word)
    return Draft(
        f"`{name}` is moved, then printed.",
        b,
        b.replace(f"shout({name})", f"shout({name}.clone())"),
        "borrow of moved value",
    )


@pytest.fixture
def templates(monkeypatch):
    """One test-only template per family used here, so freezing does not hang on real ones."""
    generator.patterns("borrow_checker")
    for family in ("borrow_checker", "closures_iterators", "lifetimes"):
        monkeypatch.setitem(generator.REGISTRY, family, {})
    generator.pattern("borrow_checker", "t_shouting", code="E0382")(shouting)
    generator.pattern("closures_iterators", "t_shouting", code="E0382")(shouting)


def test_freeze_builds_a_disjoint_hashed_evalset(tmp_path, capsys, templates):
    koans, hand = tmp_path / "koans", tmp_path / "evalsets" / "handwritten"
    save_koan(moved(), koans)
    save_koan(skipped_price(expected_stdout=None), hand)
    out = tmp_path / "evalsets" / "frozen.json"
    argv = [
        "koans",
        "freeze",
        "--out",
        str(out),
        "--handwritten",
        str(hand),
        "--koans",
        str(koans),
        "--generated-per-family",
        "1",
        "--seed",
        "99",
        "--workers",
        "2",
        "--families",
    ]
    assert main([*argv, "borrow_checker", "closures_iterators"]) == 0
    assert "3 koans frozen" in capsys.readouterr().out
    first = out.read_text()
    frozen = load_evalset(out)
    assert [(k.family, k.source) for k in frozen] == [
        ("borrow_checker", "generated"),
        ("closures_iterators", "handwritten"),
        ("closures_iterators", "generated"),
    ]
    assert moved().content_hash not in {k.content_hash for k in frozen}
    code, report = validate_json(capsys, out, "--corpus", koans)
    assert (code, report["ok"]) == (0, 3)
    # same seed, same evalset
    assert main([*argv, "borrow_checker", "closures_iterators"]) == 0
    assert out.read_text() == first

    assert main([*argv, "lifetimes"]) == 1
    assert "family 'lifetimes' has no templates" in capsys.readouterr().err
    # a hand-written evalset koan that is also in the corpus stops the freeze
    save_koan(moved(id="copied"), hand)
    assert main([*argv, "borrow_checker"]) == 1
    assert "copied: same code as a koan in" in capsys.readouterr().err
