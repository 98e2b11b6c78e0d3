"""The koan generator with real rustc: deterministic per seed, validated, deduplicated, and loud
about templates that never validate."""

import pytest

from sleepy.koan.model import load_koans
from sleepy.koans import generator
from sleepy.koans.generate import GenerateError, generate
from sleepy.koans.generator import Draft, Vocab

FAMILY = "borrow_checker"


def moved_string(v: Vocab) -> Draft:
    s, f, word = v.var(), v.func(), v.word()
    body = (
        "fn {f}(text: String) -> usize {{\n    text.len()\n}}\n\n"
        'fn main() {{\n    let {s} = String::from("{word}");\n    let n = {f}({arg});\n'
        '    println!("{{}} {{}}", {s}, n);\n}}\n'
    )
    return Draft(
        description=f"`{s}` is moved into `{f}` and then printed.",
        buggy_code=body.format(f=f, s=s, word=word, arg=s),
        correct_code=body.format(f=f, s=s, word=word, arg=f"{s}.clone()"),
        expected_error="borrow of moved value",
    )


def off_by_one(v: Vocab) -> Draft:
    f, k = v.func(), v.int(2, 9)
    body = (
        "fn {f}(n: u32) -> u32 {{\n    (1..{end}).sum()\n}}\n\n"
        "#[cfg(test)]\nmod tests {{\n    use super::*;\n\n    #[test]\n"
        "    fn sums_one_to_n() {{\n        assert_eq!({f}({k}), {total});\n    }}\n}}\n"
    )
    return Draft(
        description=f"`{f}` should sum 1..=n but stops one short.",
        buggy_code=body.format(f=f, end="n", k=k, total=k * (k + 1) // 2),
        correct_code=body.format(f=f, end="=n", k=k, total=k * (k + 1) // 2),
        expected_error="assertion `left == right` failed",
    )


def wrong_code(v: Vocab) -> Draft:
    d = moved_string(v)
    return Draft(d.description, d.buggy_code, d.correct_code, "mismatched types")


def always_the_same(v: Vocab) -> Draft:
    return moved_string(Vocab(__import__("random").Random(0)))


@pytest.fixture
def templates(monkeypatch):
    """Test-only patterns beside the family's real ones, so these tests do not depend on them."""
    generator.patterns(FAMILY)  # import the real families first
    reg = dict(generator.REGISTRY.get(FAMILY, {}))
    monkeypatch.setitem(generator.REGISTRY, FAMILY, reg)
    generator.pattern(FAMILY, "t_moved_string", code="E0382")(moved_string)
    generator.pattern(FAMILY, "t_off_by_one", kind="test")(off_by_one)
    generator.pattern(FAMILY, "t_wrong_code", code="E0308")(wrong_code)
    generator.pattern(FAMILY, "t_same", code="E0382")(always_the_same)
    return ["t_moved_string", "t_off_by_one"]


def test_same_seed_same_koans_different_seed_different(templates, tmp_path):
    a = generate(FAMILY, 4, seed=7, exclude_hashes=set(), patterns=templates, workers=2)
    b = generate(FAMILY, 4, seed=7, exclude_hashes=set(), patterns=templates, workers=1)
    c = generate(FAMILY, 4, seed=8, exclude_hashes=set(), patterns=templates, workers=2)
    assert [k.to_dict() for k in a] == [k.to_dict() for k in b]
    assert {k.content_hash for k in a}.isdisjoint({k.content_hash for k in c})
    assert [k.pattern for k in a] == ["t_moved_string", "t_off_by_one"] * 2
    for k in a:
        assert k.id == f"gen-{FAMILY}-{k.pattern}-{k.content_hash[:8]}"
        assert k.source == "generated" and k.family == FAMILY
    moved = [k for k in a if k.kind == "compile"]
    assert all(k.expected_code == "E0382" and k.expected_stdout.endswith("\n") for k in moved)
    # word then its length: the stdout really came from running the fix
    word, n = moved[0].expected_stdout.split()
    assert len(word) == int(n)
    assert all(k.expected_stdout is None for k in a if k.kind == "test")


def test_writes_files_and_keeps_clear_of_excluded(templates, tmp_path):
    first = generate(
        FAMILY, 3, seed=1, out=tmp_path / "koans", exclude_hashes=set(), patterns=templates
    )
    assert load_koans(tmp_path / "koans") == sorted(first, key=lambda k: k.id)
    excluded = {k.content_hash for k in first}
    again = generate(FAMILY, 3, seed=1, exclude_hashes=excluded, patterns=templates)
    assert excluded.isdisjoint(k.content_hash for k in again)
    assert len({k.content_hash for k in again}) == 3


def test_default_excludes_koans_and_evalsets_in_cwd(templates, tmp_path, monkeypatch):
    first = generate(
        FAMILY, 2, seed=3, out=tmp_path / "koans", exclude_hashes=set(), patterns=templates
    )
    monkeypatch.chdir(tmp_path)
    again = generate(FAMILY, 2, seed=3, patterns=templates)
    assert {k.content_hash for k in first}.isdisjoint(k.content_hash for k in again)


def test_pattern_that_never_validates_is_named(templates):
    with pytest.raises(GenerateError) as e:
        generate(FAMILY, 6, seed=1, exclude_hashes=set(), patterns=["t_wrong_code"])
    msg = str(e.value)
    assert "t_wrong_code never validates" in msg and "template bug" in msg
    assert "E0382" in msg and "E0308" in msg


def test_templates_that_do_not_vary_enough(templates):
    with pytest.raises(GenerateError, match="only 1 of 3 distinct valid koans"):
        generate(FAMILY, 3, seed=1, exclude_hashes=set(), patterns=["t_same"])


def test_bad_family_and_pattern_names():
    with pytest.raises(GenerateError, match="unknown family 'borrowing'"):
        generate("borrowing", 1, seed=1)
    with pytest.raises(GenerateError, match="has no pattern 'nope'"):
        generate(FAMILY, 1, seed=1, patterns=["nope"])
