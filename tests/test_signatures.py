"""Error signatures on real rustc and test-harness output: the same mistake in different programs
gives the same signature, different mistakes give different ones."""

from __future__ import annotations

import hashlib

import pytest

from sleepy.sandbox import Sandbox
from sleepy.sandbox.signatures import (
    ErrorSignature,
    normalize_message,
    signature_from_diagnostic,
    signature_from_test_failure,
)

# Pairs of programs that make the same mistake with different names, types and literals.
SAME_MISTAKE = {
    "use_after_move": (
        'fn main() { let v = vec![1, 2]; let w = v; println!("{:?} {:?}", v, w); }',
        """struct Order { id: u64 }
fn ship(o: Order) -> u64 { o.id }
fn main() { let order = Order { id: 7 }; ship(order); println!("{}", order.id); }""",
    ),
    "mutable_while_shared": (
        'fn main() { let mut xs = vec![1]; let first = &xs[0]; xs.push(2); println!("{first}"); }',
        """use std::collections::HashMap;
fn main() {
    let mut scores: HashMap<String, i64> = HashMap::new();
    scores.insert("a".into(), 1);
    let a = scores.get("a").unwrap();
    scores.clear();
    println!("{a}");
}""",
    ),
    "mismatched_types": (
        'fn main() { let n: i32 = "five"; println!("{n}"); }',
        'fn total(xs: &[u64]) -> u64 { xs.len() }\nfn main() { println!("{}", total(&[1])); }',
    ),
    "no_method": (
        "struct Bag;\nfn main() { let b = Bag; b.shake(); }",
        "struct Ledger { rows: Vec<i32> }\nfn main() { let l = Ledger { rows: vec![] }; l.balance(3); }",
    ),
    "not_mutable": (
        'fn main() { let count = 0; count += 1; println!("{count}"); }',
        'fn main() { let total: u64 = 10; for i in 0..3 { total += i; } println!("{total}"); }',
    ),
    "missing_lifetime": (
        "fn longest(a: &str, b: &str) -> &str { if a.len() > b.len() { a } else { b } }\nfn main() {}",
        "fn pick(x: &[u8], y: &[u8]) -> &[u8] { if x.is_empty() { y } else { x } }\nfn main() {}",
    ),
    "missing_display": (
        'struct Point { x: i32 }\nfn main() { println!("{}", Point { x: 1 }); }',
        'struct Celsius(f64);\nfn main() { let t = Celsius(3.5); println!("temp {}", t); }',
    ),
}


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture(scope="module")
def signatures(sandbox) -> dict[str, tuple[ErrorSignature, ErrorSignature]]:
    out = {}
    for name, (a, b) in SAME_MISTAKE.items():
        va, vb = sandbox.judge(a), sandbox.judge(b)
        assert va.status == vb.status == "compile_error", (name, va.status, vb.status)
        out[name] = (va.signature, vb.signature)
    return out


@pytest.mark.parametrize("mistake", sorted(SAME_MISTAKE))
def test_same_mistake_same_signature(signatures, mistake):
    a, b = signatures[mistake]
    assert a == b, (str(a), str(b))
    assert a.hash == b.hash


def test_different_mistakes_different_signatures(signatures):
    firsts = {name: sig for name, (sig, _) in signatures.items()}
    assert len({s.hash for s in firsts.values()}) == len(firsts), {
        k: str(v) for k, v in firsts.items()
    }


def test_signatures_read_as_the_error(signatures):
    assert str(signatures["use_after_move"][0]) == "E0382 borrow of moved value: <id>"
    assert str(signatures["mismatched_types"][0]) == "E0308 mismatched types"
    assert signatures["no_method"][0].code == "E0599"
    assert "<id>" in signatures["no_method"][0].text and "<type>" in signatures["no_method"][0].text
    assert signatures["missing_lifetime"][0].code == "E0106"
    assert str(signatures["missing_display"][0]) == "E0277 <type> doesn't implement <type>"


TEST_PROGRAMS = {
    "eq_a": "fn f(x: i32) -> i32 { x + 1 }\n#[test] fn t() { assert_eq!(f(1), 3); }",
    "eq_b": 'fn name() -> String { "bob".into() }\n#[test] fn check_name() { assert_eq!(name(), "alice"); }',
    "plain_a": "#[test] fn t() { let v = vec![1, 2]; assert!(v.len() > 5); }",
    "plain_b": "#[test] fn t() { let ok = 3 % 2 == 0; assert!(ok, ); }",
    "index_a": "#[test] fn t() { let v = vec![1]; let _ = v[4]; }",
    "index_b": '#[test] fn t() { let xs: Vec<u8> = Vec::new(); let i = 10; println!("{}", xs[i]); }',
}


@pytest.fixture(scope="module")
def test_signatures(sandbox) -> dict[str, ErrorSignature]:
    out = {}
    for name, code in TEST_PROGRAMS.items():
        v = sandbox.judge(code)
        assert v.status == "test_failed", (name, v.status, v.feedback())
        out[name] = v.signature
    return out


def test_test_failures_group_by_kind_of_assertion(test_signatures):
    s = test_signatures
    assert str(s["eq_a"]) == "test_failed assertion left == right failed"
    assert s["eq_a"] == s["eq_b"]
    assert s["plain_a"] == s["plain_b"] == ErrorSignature("test_failed", "assertion failed")
    assert s["index_a"] == s["index_b"]
    assert (
        str(s["index_a"])
        == "test_failed index out of bounds: the len is <num> but the index is <num>"
    )
    assert len({s["eq_a"], s["plain_a"], s["index_a"]}) == 3


def test_hash_is_stable_and_short():
    sig = ErrorSignature("E0382", "borrow of moved value: <id>")
    assert sig.hash == hashlib.sha256(b"E0382 borrow of moved value: <id>").hexdigest()[:12]
    assert len(sig.hash) == 12 and int(sig.hash, 16) >= 0


@pytest.mark.parametrize(
    ("message", "normalized"),
    [
        ("lifetime `'a` does not outlive `'static`", "lifetime <lifetime> does not outlive <lifetime>"),
        ("expected `Vec<String>`, found `&str`", "expected <type>, found <type>"),
        ("cannot borrow `self.items` as mutable", "cannot borrow <id> as mutable"),
        ("this function takes 2 arguments but 1 argument was supplied",
         "this function takes <num> argument but <num> argument was supplied"),
        ("this function takes 1 argument but 3 arguments were supplied",
         "this function takes <num> argument but <num> argument was supplied"),
        ('panicked with "boom 42" at src/main.rs:10:5', "panicked with <str> at <path>"),
        ("called `Option::unwrap()` on a `None` value", "called Option::unwrap() on a None value"),
        ("value doesn't live long enough\nsecond line", "value doesn't live long enough"),
    ],
)  # fmt: skip
def test_normalize_message(message, normalized):
    assert normalize_message(message) == normalized


def test_signature_from_custom_panic():
    a = signature_from_test_failure(
        "called `Result::unwrap()` on an `Err` value: ParseIntError { kind: InvalidDigit }"
    )
    assert (
        str(a)
        == "test_failed called Result::unwrap() on an Err value: ParseIntError { kind: InvalidDigit }"
    )


def test_generator_templates_give_one_signature_per_mistake(sandbox):
    """The corpus templates, two seeds each: a template's variants share one signature with the
    template's declared rustc code, and templates for different codes differ."""
    import random

    from sleepy.koans.generator import Vocab, patterns

    pats = [p for fam in ("borrow_checker", "mutability", "trait_bounds") for p in patterns(fam)]
    pats = [p for p in pats if p.kind == "compile"]
    if len(pats) < 5:
        pytest.skip("the generator templates are not written yet")
    drafts = [(p, p.make(Vocab(random.Random(seed))).buggy_code) for p in pats for seed in (1, 2)]
    sigs: dict[str, set] = {}
    for p, code in drafts:
        errors = sandbox.check(code).errors
        assert errors, f"{p.family}/{p.name}: buggy code compiled"
        sigs.setdefault(f"{p.family}/{p.name}", set()).add(
            (p.expected_code, str(signature_from_diagnostic(errors[0])))
        )
    stable = [name for name, s in sigs.items() if len(s) == 1]
    assert len(stable) >= 0.9 * len(sigs), {k: v for k, v in sigs.items() if len(v) > 1}
    by_code: dict[str, set] = {}
    for s in sigs.values():
        for code, sig in s:
            assert sig.startswith(code), (code, sig)
            by_code.setdefault(code, set()).add(sig)
    codes = sorted(by_code)
    for i, a in enumerate(codes):
        for b in codes[i + 1 :]:
            assert not by_code[a] & by_code[b]


# rustc quotes `compile_error!`'s literal in its message, escapes and all; a panic message is the
# program's own text. `\x1b]0;...\x07` retitles a terminal, `\x1b[31m` colours it.
HOSTILE_COMPILE_ERROR = (
    'fn main() {\n    compile_error!("\\u{1b}]0;pwned\\u{7}\\u{1b}[31mred");\n}\n'
)
HOSTILE_PANIC = """#[test]
fn shouts() {
    panic!("\\u{1b}[2J\\u{1b}[31mcleared\\u{8}\\u{0}");
}
"""


def test_control_characters_from_the_program_stay_out_of_signatures():
    sandbox = Sandbox()
    error = sandbox.check(HOSTILE_COMPILE_ERROR).errors[0]
    assert "\x1b" in error.message  # rustc hands the program's escapes on as they are
    compiled = signature_from_diagnostic(error)
    failed = sandbox.judge(HOSTILE_PANIC).signature
    for sig in (compiled, failed):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in str(sig)), repr(sig)
    assert str(compiled) == "error red" and str(failed) == "test_failed cleared"
