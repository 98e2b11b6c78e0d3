"""Koan files: loading, saving, hashing, and one-line errors for every kind of malformed koan."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sleepy
from sleepy.koan.model import (
    Koan,
    KoanError,
    content_hash,
    known_hashes,
    load_evalset,
    load_koan,
    load_koans,
    normalized_form,
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
        ({"stdout_varies": "yes"}, "stdout_varies", "must be true or false"),
        ({"stdout_varies": True, "expected_stdout": "x\n"}, "stdout_varies", "remove one"),
        ({"kind": "runtime"}, "kind", "must be 'compile' or 'test'"),
        ({"source": "scraped"}, "source", "must be one of"),
        ({"id": "Has Spaces"}, "id", "lowercase"),
        ({"id": "a" * 101}, "id", "101 characters, more than 100"),
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


def test_a_compile_koan_without_a_code_is_an_error_rustc_gives_none_for(tmp_path):
    data = {k: v for k, v in GOOD.items() if k != "expected_code"}
    koan = load_koan(write(tmp_path, data))
    assert (koan.kind, koan.expected_code) == ("compile", None)


def test_stdout_varies_is_left_out_of_files_and_hashes_when_false():
    koan = Koan.from_dict(GOOD)
    assert "stdout_varies" not in koan.to_dict()  # koans written before it hash the same
    varies = Koan.from_dict({**GOOD, "expected_stdout": None, "stdout_varies": True})
    assert varies.to_dict()["stdout_varies"] is True
    assert varies.frozen_hash != Koan.from_dict({**GOOD, "expected_stdout": None}).frozen_hash


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


@pytest.mark.parametrize(
    "field, edit",
    [
        ("expected_stdout", lambda v: "b\n"),
        ("buggy_code", lambda v: v.replace('"a"', '"a  "')),  # inside a literal: was not hashed
        ("correct_code", lambda v: v.replace('"a"', '"// a"')),  # looked like a comment
        ("edition", lambda v: "2018"),
        ("id", lambda v: "renamed-koan"),
        ("expected_error", lambda v: "cannot move out of"),
        ("description", lambda v: v + " Edited."),
    ],
)
def test_every_edit_of_a_frozen_koan_is_detected_on_load(tmp_path, field, edit):
    path = save_evalset([Koan.from_dict(GOOD)], tmp_path / "frozen.json")
    data = json.loads(path.read_text())
    data["koans"][0][field] = edit(data["koans"][0].get(field) or "")
    path.write_text(json.dumps(data))
    with pytest.raises(KoanError, match=r"frozen\.json\[0\]: field '(frozen|content)_hash'") as e:
        load_evalset(path)
    assert "edited after it was frozen" in str(e.value) and "\n" not in str(e.value)


def test_an_evalset_without_frozen_hashes_is_refused(tmp_path):
    item = {**GOOD, "content_hash": Koan.from_dict(GOOD).content_hash}
    path = write(tmp_path, {"name": "frozen", "koans": [item]}, name="frozen.json")
    with pytest.raises(KoanError, match=r"field 'frozen_hash': missing"):
        load_evalset(path)


def test_the_shipped_frozen_evalset_carries_and_passes_its_hashes():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "evalsets" / "frozen.json"
    items = json.loads(path.read_text())["koans"]
    koans = load_evalset(path)
    assert len(koans) == len(items) > 0
    assert all(item["frozen_hash"] == k.frozen_hash for item, k in zip(items, koans, strict=True))


def test_an_edited_evalset_stops_the_eval_day_before_it_runs(tmp_path):
    """sleepy-eval used to run an edited evalset (0% pass, no warning)."""
    from omegaconf import OmegaConf

    from sleepy.day import DayError, select_koans
    from sleepy.day.config import KoansConfig

    path = save_evalset([Koan.from_dict(GOOD)], tmp_path / "frozen.json")
    data = json.loads(path.read_text())
    data["koans"][0]["expected_stdout"] = "nothing\n"
    path.write_text(json.dumps(data))
    kcfg = OmegaConf.structured(KoansConfig(**
        {"evalset": str(path), "source": None, "families": [], "ids": [], "count": None,
         "seed": 0, "generate": 0})
    )  # fmt: skip
    with pytest.raises(DayError, match="frozen_hash.*edited after it was frozen"):
        select_koans(kcfg, tmp_path)


def test_normalized_form_sees_through_renames_and_literals_only():
    code = 'fn total(items: &[u32]) -> u32 {\n    // sum\n    items.iter().sum::<u32>() + 1\n}\nfn main() { println!("{}", total(&[1, 2])); }\n'
    renamed = 'fn add_up(xs: &[u32]) -> u32 { xs.iter().sum::<u32>() + 7 }\nfn main() {\n    println!("sum: {}", add_up(&[3, 4]));\n}\n'
    assert normalized_form(code) == normalized_form(renamed)
    assert "<str>" in normalized_form(code) and "<num>" in normalized_form(code)
    # different use of names, or a different type, is a different program
    assert normalized_form(code) != normalized_form(code.replace("items.iter()", "total.iter()"))
    assert normalized_form(code) != normalized_form(code.replace("u32", "u64"))
    a = Koan.from_dict(GOOD)
    b = Koan.from_dict(
        {**GOOD, "id": "copy", "buggy_code": GOOD["buggy_code"].replace("eat", "consume"),
         "correct_code": GOOD["correct_code"].replace("eat", "consume")}
    )  # fmt: skip
    assert a.content_hash != b.content_hash and a.normalized_hash == b.normalized_hash


def test_a_renamed_copy_of_a_training_koan_is_no_held_out_koan():
    from sleepy.koan.model import without_twins

    train = Koan(
        id="t", family="borrow_checker", description="d", expected_error="e",
        buggy_code="fn main() { let names = vec![1]; let moved = names; println!(\"{:?}\", names); }\n",
        correct_code="fn main() { let names = vec![1]; let moved = names.clone(); println!(\"{:?}\", names); }\n",
    )  # fmt: skip
    renamed = Koan(
        id="r", family="borrow_checker", description="d", expected_error="e",
        buggy_code=train.buggy_code.replace("names", "items").replace("1", "7"),
        correct_code=train.correct_code.replace("names", "items").replace("1", "7"),
    )  # fmt: skip
    other = Koan(
        id="o", family="borrow_checker", description="d", expected_error="e",
        buggy_code="fn main() { let s = String::new(); let t = s; s.len(); }\n",
        correct_code="fn main() { let s = String::new(); let t = s.clone(); s.len(); }\n",
    )  # fmt: skip
    assert renamed.content_hash != train.content_hash
    assert without_twins([renamed, other, train], [train]) == [other]


# -- a write that fails midway (a full disk) leaves the koan that was there ------------------------


def with_a_full_disk(body: str, limit: int) -> subprocess.CompletedProcess:
    """Run `body` in a Python process where `fill_disk()` makes any write past `limit` bytes of a
    file fail (RLIMIT_FSIZE: EFBIG, as ENOSPC would on a full disk)."""
    prelude = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error to raise, not a signal\n"
        "def fill_disk():\n"
        f"    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
    )
    root = str(Path(sleepy.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", prelude + body], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_koan_rewritten_on_a_full_disk_is_kept_whole(tmp_path):
    path = save_koan(Koan.from_dict(GOOD), tmp_path)
    before = path.read_text()
    longer = {**GOOD, "description": GOOD["description"] + " It is said again." * 20}
    run = with_a_full_disk(
        "import json, sys\nfrom sleepy.koan.model import Koan, save_koan\n"
        f"koan = Koan.from_dict(json.loads({json.dumps(json.dumps(longer))}))\n"
        f"fill_disk()\nsave_koan(koan, {str(tmp_path)!r})\n",
        limit=len(before) // 2,
    )
    assert run.returncode == 1 and "File too large" in run.stderr
    assert path.read_text() == before and load_koan(path) == Koan.from_dict(GOOD)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_an_evalset_rewritten_on_a_full_disk_is_kept_whole(tmp_path):
    path = save_evalset([Koan.from_dict(GOOD)], tmp_path / "frozen.json")
    before = path.read_text()
    run = with_a_full_disk(
        "from sleepy.koan.model import load_evalset, save_evalset\n"
        f"koans = load_evalset({str(path)!r})\n"
        f"fill_disk()\nsave_evalset(koans * 3, {str(path)!r})\n",
        limit=len(before) // 2,
    )
    assert run.returncode == 1 and "File too large" in run.stderr
    assert path.read_text() == before and len(load_evalset(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["frozen.json"]


def test_filling_stdout_on_a_full_disk_keeps_the_koan_file(tmp_path):
    without = {k: v for k, v in GOOD.items() if k != "expected_stdout"}
    path = save_koan(Koan.from_dict(without), tmp_path)
    before = path.read_text()
    # the disk fills once the programs have run (rustc writes files too), before the write
    run = with_a_full_disk(
        "import sleepy.koans.validate as validate\n"
        "run_batch = validate.run_batch\n"
        "def run_then_fill(*args, **kw):\n"
        "    done = run_batch(*args, **kw)\n"
        "    fill_disk()\n"
        "    return done\n"
        "validate.run_batch = run_then_fill\n"
        f"validate.fill_stdout_files([{str(tmp_path)!r}], workers=1)\n",
        limit=len(before) // 2,
    )
    assert run.returncode == 1 and "File too large" in run.stderr
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]
