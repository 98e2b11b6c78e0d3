"""Mutation operators and `sleepy koans mutate` with real rustc: every operator injects the mistake
it declares into a real program of the corpus, mutants are deterministic, validated, carry their
provenance and keep clear of the evalset's programs."""

import json
import os
import random
import sys
from pathlib import Path

import pytest

from sleepy.koan.model import (
    FAMILIES,
    MAX_ID_LEN,
    KoanError,
    load_koan,
    normalized_form,
    save_evalset,
)
from sleepy.koan.syntax import Source
from sleepy.koans import cli, variation
from sleepy.koans.generate import EVAL_SEEDS, GenerateError
from sleepy.koans.mutate import MutateStats, Program, load_programs, mutate
from sleepy.koans.operators import OPERATORS
from sleepy.koans.validate import validate_koan
from sleepy.sandbox import Sandbox, run_batch

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "koans"

# For each operator, a hand-written corpus program where the operator's first site gives the
# declared failure (found once by trying the corpus in order; the programs do not change).
EXAMPLES = {
    "mutability/drop_let_mut": "hw-mutability-bank-deposit",
    "mutability/drop_param_mut": "hw-mutability-tokenizer-buffer",
    "mutability/drop_mut_self": "hw-mutability-bank-deposit",
    "mutability/drop_mut_reference_param": "hw-mutability-cart-discount",
    "mutability/shared_accessor_for_mutation": "hw-mutability-cart-discount",
    "mutability/shadow_instead_of_assign": "hw-mutability-ledger-fees",
    "borrow_checker/drop_clone": "hw-borrow_checker-config-name",
    "borrow_checker/for_loop_by_value": "hw-borrow_checker-matrix-rows",
    "borrow_checker/match_by_value": "hw-borrow_checker-message-match",
    "borrow_checker/move_out_of_borrow": "hw-lifetimes-newer-version-test",
    "borrow_checker/move_instead_of_take": "hw-borrow_checker-job-runner-take",
    "borrow_checker/mutate_a_clone": "hw-borrow_checker-outbox-flush-test",
    "lifetimes/drop_lifetime_declaration": "hw-lifetimes-byte-cursor",
    "lifetimes/elide_fn_lifetimes": "hw-lifetimes-first-or-fallback",
    "lifetimes/drop_field_lifetime": "hw-lifetimes-byte-cursor",
    "lifetimes/drop_static_lifetime": "hw-lifetimes-http-reason",
    "lifetimes/borrow_a_temporary": "hw-lifetimes-csv-headers",
    "lifetimes/drop_impl_trait_lifetime": "hw-lifetimes-error-codes-iter",
    "lifetimes/flip_comparison": "hw-lifetimes-newer-version-test",
    "trait_bounds/drop_derive": "hw-trait_bounds-document-backup",
    "trait_bounds/drop_derive_debug": "hw-trait_bounds-document-backup",
    "trait_bounds/drop_derive_clone": "hw-trait_bounds-document-backup",
    "trait_bounds/drop_derive_partial_eq": "hw-trait_bounds-editor-defaults",
    "trait_bounds/drop_derive_hash_or_ord": "hw-trait_bounds-grid-visited",
    "trait_bounds/drop_generic_bound": "hw-trait_bounds-generic-clamp",
    "trait_bounds/drop_trait_impl": "hw-trait_bounds-duration-display",
    "result_handling/drop_question_mark": "hw-result_handling-age-error-enum",
    "result_handling/drop_ok_wrap": "hw-result_handling-age-error-enum",
    "result_handling/drop_some_wrap": "hw-result_handling-cart-subtotal",
    "result_handling/drop_unwrap": "hw-borrow_checker-bank-transfer",
    "result_handling/drop_error_conversion": "hw-result_handling-age-error-enum",
    "result_handling/question_in_unit_fn": "hw-result_handling-config-main",
    "result_handling/drop_from_impl": "hw-result_handling-age-error-enum",
    "result_handling/unwrap_instead_of_question": "hw-result_handling-grade-errors",
    "type_mismatch/drop_cast": "hw-type_mismatch-average-rating",
    "type_mismatch/swap_numeric_type": "hw-type_mismatch-average-rating",
    "type_mismatch/str_for_string": "hw-type_mismatch-http-status",
    "type_mismatch/trailing_semicolon": "hw-type_mismatch-average-rating",
    "type_mismatch/if_without_else": "hw-type_mismatch-shipping-surcharge",
    "type_mismatch/drop_deref": "hw-concurrency-refcell-cache",
    "type_mismatch/owned_for_borrow": "hw-type_mismatch-longest-title",
    "type_mismatch/borrow_for_owned": "hw-type_mismatch-byte-checksum",
    "type_mismatch/int_literal_for_float": "hw-type_mismatch-average-rating",
    "closures_iterators/collect_without_type": "hw-closures_iterators-make-adder",
    "closures_iterators/sum_without_type": "hw-closures_iterators-order-total",
    "closures_iterators/closure_without_move": "hw-closures_iterators-make-adder",
    "closures_iterators/fnmut_binding_not_mut": "hw-closures_iterators-word-histogram",
    "closures_iterators/into_iter_moves": "hw-concurrency-prime-workers",
    "closures_iterators/adaptor_on_collection": "hw-closures_iterators-coldest-day",
    "closures_iterators/drop_copied": "hw-closures_iterators-even-ids",
    "closures_iterators/closure_param_not_derefed": "hw-closures_iterators-even-ids",
    "closures_iterators/adaptor_off_by_one": "hw-concurrency-ticket-ids",
    "concurrency/spawn_without_move": "hw-concurrency-bank-deposits",
    "concurrency/rc_across_threads": "hw-concurrency-bank-deposits",
    "concurrency/lock_without_unwrap": "hw-concurrency-bank-deposits",
    "concurrency/shared_value_not_cloned": "hw-concurrency-bank-deposits",
    "concurrency/mutate_arc_without_mutex": "hw-concurrency-bank-deposits",
    "concurrency/join_without_unwrap": "hw-concurrency-boxed-jobs",
}
ALL_OPERATORS = sorted(f"{o.family}/{o.name}" for fam in OPERATORS.values() for o in fam.values())


def _program(koan_id: str) -> str:
    family = next(f for f in FAMILIES if koan_id.startswith(f"hw-{f}-"))
    return load_koan(CORPUS / family / f"{koan_id}.json").correct_code


def _outcome(key: str) -> tuple[str, str]:
    """(what the mutant did, detail): "error E0382", "failing test", "compiles", ..."""
    family, name = key.split("/")
    op = OPERATORS[family][name]
    src = Source(_program(EXAMPLES[key]))
    mutant = src.apply(op.sites(src)[0])
    sandbox = Sandbox()
    result = sandbox.check(mutant)
    if not result.errors and "#[test]" in mutant:
        result = sandbox.test(mutant)
    if result.errors:
        return f"error {result.errors[0].code}", result.errors[0].message
    if op.kind == "test":
        return ("failing test", "") if result.failed_tests else ("tests pass", "")
    return "compiles", ""


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[str, str]]:
    """Every operator's mutant of its example program, compiled (and tested) in one batch."""
    keys = sorted(EXAMPLES)
    return dict(zip(keys, run_batch(_outcome, keys, workers=2), strict=True))


def test_every_operator_has_an_example_program():
    assert sorted(EXAMPLES) == ALL_OPERATORS


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_at_least_five_operators(family):
    assert len(OPERATORS[family]) >= 5


@pytest.mark.parametrize("key", ALL_OPERATORS)
def test_each_operator_produces_its_declared_failure_on_a_real_program(key, outcomes):
    family, name = key.split("/")
    op = OPERATORS[family][name]
    what, detail = outcomes[key]
    if op.kind == "compile":
        assert what.removeprefix("error ") in op.codes, f"{key}: {what} {detail}"
    else:
        assert what == "failing test", f"{key}: {what} {detail}"


def test_operators_leave_test_code_alone():
    code = (
        "fn total(xs: &[i32]) -> i32 {\n    xs.iter().sum()\n}\n\n#[cfg(test)]\nmod tests {\n"
        "    use super::*;\n    #[test]\n    fn sums() {\n        let mut v = vec![1];\n"
        "        v.push(2);\n        assert_eq!(total(&v), 3);\n    }\n}\n"
    )
    src = Source(code)
    assert OPERATORS["mutability"]["drop_let_mut"].sites(src) == []
    assert OPERATORS["type_mismatch"]["owned_for_borrow"].sites(src) == []


def test_renaming_is_consistent_and_keeps_the_normalized_form():
    code = _program("hw-borrow_checker-inventory-kinds")
    renamed, _ = variation.rename(code, random.Random(3))
    assert renamed != code
    assert normalized_form(renamed) == normalized_form(code)
    assert not Source(renamed).has_errors


def test_reordering_moves_items_but_keeps_use_lines_first():
    code = (
        "use std::fmt;\n\nstruct A;\n\n// about b\nfn b() {}\n\n#[derive(Debug)]\nstruct C;\n\n"
        "fn main() {}\n"
    )
    seen = {variation.reorder_items(code, random.Random(s)) for s in range(6)}
    assert len(seen) > 1
    for out in seen:
        assert out.startswith("use std::fmt;\n\n")
        assert "// about b\nfn b() {}" in out and "#[derive(Debug)]\nstruct C;" in out
        parts = sorted(p.strip() for p in out.split("\n\n")[1:])
        assert parts == sorted(p.strip() for p in code.split("\n\n")[1:])


def _small_pool() -> list[Program]:
    ids = ["hw-mutability-bank-deposit", "hw-mutability-task-queue", "hw-mutability-median-sort"]
    return [Program(i, _program(i), "A program.") for i in ids]


def test_mutate_gives_the_same_validated_mutants_for_a_seed():
    pool = _small_pool()
    first = mutate("mutability", 3, seed=11, programs=pool, operator_names=["drop_let_mut"])
    again = mutate("mutability", 3, seed=11, programs=pool, operator_names=["drop_let_mut"])
    assert [k.id for k in first] == [k.id for k in again]
    assert len({k.content_hash for k in first}) == 3
    sandbox = Sandbox()
    for k in first:
        assert k.source == "mutated" and k.pattern == "drop_let_mut"
        assert k.meta["operator"] == "drop_let_mut"
        assert k.meta["parent"] in {p.id for p in pool}
        assert k.expected_code in ("E0596", "E0594", "E0384")
        assert k.expected_stdout  # from running the original
        assert validate_koan(k, sandbox) is None


def test_eval_seeds_are_reserved_for_the_eval():
    with pytest.raises(GenerateError, match="reserved for evaluation"):
        mutate("mutability", 1, seed=EVAL_SEEDS.start, programs=_small_pool())
    with pytest.raises(GenerateError, match="reserved for evaluation"):
        mutate("mutability", 1, seed=5, programs=_small_pool(), purpose="eval")


def test_evalset_programs_are_never_mutated(tmp_path):
    koan = load_koan(CORPUS / "mutability" / "hw-mutability-task-queue.json")
    evalset = save_evalset([koan], tmp_path / "frozen.json")
    programs, dropped = load_programs([CORPUS / "mutability"], evalsets=[evalset])
    assert dropped == 1
    assert koan.id not in {p.id for p in programs}
    # a renamed copy of the evalset program is the same program
    renamed, _ = variation.rename(koan.correct_code, random.Random(1))
    (tmp_path / "rs").mkdir()
    (tmp_path / "rs" / "queue.rs").write_text(renamed)
    programs, dropped = load_programs([tmp_path / "rs"], evalsets=[evalset])
    assert (programs, dropped) == ([], 1)


def test_a_mutant_with_an_evalset_form_is_left_out(tmp_path):
    pool, _ = load_programs([CORPUS / "mutability"], evalsets=[])
    kw = dict(programs=pool, operator_names=["drop_let_mut"])
    (leaked,) = mutate("mutability", 1, seed=4, **kw)
    evalset = save_evalset([leaked], tmp_path / "frozen.json")
    stats = MutateStats()
    (other,) = mutate("mutability", 1, seed=4, evalsets=[evalset], stats=stats, **kw)
    assert stats.evalset_twins >= 1
    assert other.normalized_hash != leaked.normalized_hash


def test_cli_mutates_a_tree_of_rs_files(tmp_path, capsys):
    src = tmp_path / "programs"
    src.mkdir()
    (src / "bank.rs").write_text(_program("hw-mutability-bank-deposit"))
    os.mkfifo(src / "pipe.rs")
    out = tmp_path / "out"
    argv = ["koans", "mutate", "--from", str(src), "--family", "mutability", "--n", "2"]
    argv += ["--seed", "1", "--out", str(out), "--workers", "2", "--evalsets"]
    assert cli.main(argv) == 0
    assert f"skipped {src / 'pipe.rs'}: not a regular file: a FIFO" in capsys.readouterr().out
    files = sorted((out / "mutability").glob("*.json"))
    assert len(files) == 2
    data = json.loads(files[0].read_text())
    assert data["source"] == "mutated" and data["meta"]["parent"] == "bank"
    assert cli.main(["koans", "mutate", "--from", str(tmp_path / "none"), "--family",
                     "mutability", "--n", "1", "--seed", "1", "--out", str(out)]) == 1  # fmt: skip
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.timeout(30)  # a FIFO read the old way blocks until a writer comes: never
def test_mutate_from_reads_regular_utf8_files_only_and_says_why_for_the_rest(tmp_path, capsys):
    src = tmp_path / "programs"
    (src / "folder.rs").mkdir(parents=True)
    (src / "bank.rs").write_text(_program("hw-mutability-bank-deposit"))
    latin1 = "// café\nfn main() {}\n".encode("latin-1")
    (src / "latin1.rs").write_bytes(latin1)
    (src / "passwd.rs").symlink_to("/etc/passwd")
    os.mkfifo(src / "fifo.rs")
    os.mkfifo(src / "koan.json")
    skipped: list[tuple[str, str]] = []
    programs, _ = load_programs([src], evalsets=[], skipped=skipped)
    assert [p.id for p in programs] == ["bank"]
    assert dict(skipped) == {
        str(src / "fifo.rs"): "not a regular file: a FIFO",
        str(src / "folder.rs"): "not a regular file: a folder",
        str(src / "koan.json"): "not a regular file: a FIFO",
        str(src / "latin1.rs"): (
            f"not UTF-8 text: byte {latin1.index(0xE9)} is 0xe9 (save it as UTF-8)"
        ),
        str(src / "passwd.rs"): (
            "a symlink (only regular files are read: copy the file into the tree)"
        ),
    }
    # with nothing readable left, the one-line error says what was left out
    (src / "bank.rs").unlink()
    argv = ["koans", "mutate", "--from", str(src), "--family", "mutability", "--n", "1"]
    assert cli.main([*argv, "--seed", "1", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"5 left out, first {src / 'fifo.rs'}: not a regular file: a FIFO" in err


def test_mutate_from_walks_a_tree_deeper_than_the_recursion_limit(tmp_path):
    bottom = tmp_path / "programs"
    bottom.mkdir()
    for _ in range(sys.getrecursionlimit() + 100):
        bottom = bottom / "d"
        bottom.mkdir()
    (bottom / "bank.rs").write_text(_program("hw-mutability-bank-deposit"))
    try:
        programs, _ = load_programs([tmp_path / "programs"], evalsets=[])
        assert [p.code for p in programs] == [(bottom / "bank.rs").read_text()]
        assert len(programs[0].id) <= MAX_ID_LEN  # the slug of a path 1,100 folders long
    finally:  # shutil.rmtree recurses too: the tree is removed from the bottom up
        (bottom / "bank.rs").unlink()
        while bottom != tmp_path:
            bottom.rmdir()
            bottom = bottom.parent


# Worker threads tally words into a shared HashMap, printed as the map iterates: a HashMap's order
# comes from a key drawn per process, so every run of the correct program may print a different
# order, as with threads printing in the order they happen to run.
TALLY = """// Worker threads tally the words of each line into one shared map.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;

fn main() {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let mut handles = Vec::new();
    for line in ["the cat sat", "on the mat", "with a hat", "by the vat", "near a rat"] {
        let counts = Arc::clone(&counts);
        handles.push(thread::spawn(move || {
            for word in line.split_whitespace() {
                *counts.lock().unwrap().entry(word).or_insert(0) += 1;
            }
        }));
    }
    for handle in handles {
        handle.join().unwrap();
    }
    for (word, n) in counts.lock().unwrap().iter() {
        println!("{word}: {n}");
    }
}
"""
TALLY_SORTED = TALLY.replace(
    "    for (word, n) in counts.lock().unwrap().iter() {\n",
    "    let counts = counts.lock().unwrap();\n    let mut words: Vec<_> = counts.iter().collect();\n"
    "    words.sort();\n    for (word, n) in words {\n",
)


def test_a_program_whose_output_varies_between_runs_makes_no_mutant(tmp_path, capsys):
    pool = [Program("tally", TALLY, "Tally."), Program("tally-sorted", TALLY_SORTED, "Tally.")]
    stats = MutateStats()
    kept = mutate("concurrency", 2, seed=4, programs=pool, stats=stats, workers=2)
    assert len(kept) == 2 and {k.meta["parent"] for k in kept} == {"tally-sorted"}
    assert stats.unreproducible == {"tally": "its output differed between 3 runs"}

    # the command line says which program was left out and why, and writes nothing from it
    (tmp_path / "rs").mkdir()
    (tmp_path / "rs" / "tally.rs").write_text(TALLY)
    out = tmp_path / "out"
    argv = ["koans", "mutate", "--from", str(tmp_path / "rs"), "--family", "concurrency"]
    argv += ["--n", "1", "--seed", "3", "--out", str(out), "--workers", "2", "--evalsets"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "tally left out: its output differed between 3 runs, so no expected output" in err
    assert not list(out.rglob("*.json"))


def test_programs_split_by_side_and_a_renamed_copy_stays_on_its_side(tmp_path):
    from sleepy.koans.harvest import program_side
    from sleepy.koans.mutate import load_programs

    programs, _ = load_programs([CORPUS], evalsets=[])
    train, _ = load_programs([CORPUS], evalsets=[], side="train")
    held, _ = load_programs([CORPUS], evalsets=[], side="eval")
    assert train and held and len(train) + len(held) == len(programs)
    assert {p.id for p in train}.isdisjoint({p.id for p in held})
    one = held[0]
    (tmp_path / "renamed.rs").write_text(variation.rename(one.code, random.Random(3))[0])
    again, _ = load_programs([tmp_path], evalsets=[], side="eval")
    assert len(again) == 1 and program_side(again[0].code) == "eval"
    with pytest.raises(KoanError, match="side must be one of train, eval"):
        load_programs([CORPUS], evalsets=[], side="test")
