"""Koan files: loading, saving, hashing, and one-line errors for every kind of malformed koan."""

import json

import pytest

from sleepy.koans.model import (
    Koan,
    KoanError,
    content_hash,
    known_hashes,
    load_evalset,
    load_koan,
    load_koans,
    save_evalset,
    save_koan,
)

GOOD = {
    "id": "moved-name",
    "family": "borrow_checker",
    "description": "A String is moved into a function and used afterwards.",
    "buggy_code": 'fn eat(s: String) {}\nfn main() {\n    let s = String::from("a");\n    eat(s);\n    println!("{}", s);\n}\n',
    "correct_code": 'fn eat(s: String) {}\nfn main() {\n    let s = String::from("a");\n    eat(s.clone());\n    println!("{}", s);\n}\n',
    "expected_error": "borrow of moved value",
    "kind": "compile",
    "expected_code": "E0382",
    "pattern": "use_after_move",
    "source": "handwritten",
    "expected_stdout": "a\n",
}


def write(tmp_path, data, name="borrow_checker/moved-name.json"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_roundtrip(tmp_path):
    koan = Koan.from_dict(GOOD)
    path = save_koan(koan, tmp_path)
    assert path == tmp_path / "borrow_checker" / "moved-name.json"
    assert load_koan(path) == koan
    assert load_koans(tmp_path) == [koan]
    assert koan.has_main and koan.edition == "2021"


def test_hash_ignores_comments_and_whitespace():
    a = content_hash("fn main() {\n    let x = 1; // one\n}", "fn main() {}")
    b = content_hash("fn main() { let x = 1; /* a\nblock */ }", "fn  main()  {}")
    assert a == b
    assert a != content_hash("fn main() { let x = 2; }", "fn main() {}")


@pytest.mark.parametrize(
    ("change", "field", "what"),
    [
        ({"description": None}, "description", "missing"),
        ({"buggy_code": 42}, "buggy_code", "must be a string"),
        ({"family": "borrowing"}, "family", "is not one of"),
        ({"expected_code": "382"}, "expected_code", "not a rustc code"),
        ({"expected_code": None}, "expected_code", "missing"),
        ({"kind": "runtime"}, "kind", "must be 'compile' or 'test'"),
        ({"source": "scraped"}, "source", "must be one of"),
        ({"id": "Has Spaces"}, "id", "lowercase"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"correct_code": GOOD["buggy_code"]}, "correct_code", "identical to buggy_code"),
    ],
)
def test_malformed_koan_names_file_and_field(tmp_path, change, field, what):
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = write(tmp_path, data)
    with pytest.raises(KoanError) as e:
        load_koan(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert f"field '{field}'" in msg and what in msg


def test_invalid_json_says_where(tmp_path):
    path = write(tmp_path, '{"id": "x",\n "family": }')
    with pytest.raises(KoanError, match=r"moved-name\.json: not valid JSON \(line 2"):
        load_koan(path)
    with pytest.raises(KoanError, match="not valid JSON"):
        load_koans(path)


def test_family_must_match_folder(tmp_path):
    path = write(tmp_path, GOOD, name="lifetimes/moved-name.json")
    with pytest.raises(KoanError, match="field 'family'.*under lifetimes/"):
        load_koan(path)


def test_edited_frozen_koan_is_detected(tmp_path):
    path = save_evalset([Koan.from_dict(GOOD)], tmp_path / "frozen.json")
    assert [k.id for k in load_evalset(path)] == ["moved-name"]
    data = json.loads(path.read_text())
    data["koans"][0]["correct_code"] = data["koans"][0]["correct_code"].replace(
        "clone()", "to_owned()"
    )
    path.write_text(json.dumps(data))
    with pytest.raises(KoanError) as e:
        load_evalset(path)
    assert "frozen.json[0]: field 'content_hash'" in str(e.value) and "edited" in str(e.value)
    assert "\n" not in str(e.value)


def test_evalset_koans_must_carry_hash(tmp_path):
    path = write(tmp_path, {"name": "frozen", "koans": [GOOD]}, name="frozen.json")
    with pytest.raises(KoanError, match=r"frozen\.json\[0\]: field 'content_hash': missing"):
        load_evalset(path)


def test_known_hashes_reads_corpus_and_evalsets_leniently(tmp_path):
    koan = Koan.from_dict(GOOD)
    save_koan(koan, tmp_path / "koans")
    other = Koan.from_dict(
        {**GOOD, "id": "other", "buggy_code": GOOD["buggy_code"].replace('"a"', '"b"')}
    )
    save_evalset([other], tmp_path / "evalsets" / "frozen.json")
    write(tmp_path, "{ not json", name="koans/borrow_checker/broken.json")
    assert known_hashes(tmp_path / "koans", tmp_path / "evalsets", tmp_path / "missing") == {
        koan.content_hash,
        other.content_hash,
    }
