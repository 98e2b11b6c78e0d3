"""The eval's learning set: reserved seeds, disjoint from training by hash and normalized form,
transfer through the frozen suite, and stable across cycles. Real generation, validated by rustc."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from sleepy.eval.learning import build_learning_set
from sleepy.koan import load_evalset
from sleepy.koan.model import normalized_form
from sleepy.koans.generate import EVAL_SEEDS, GenerateError, generate
from sleepy.koans.variation import EVAL_ITEMS, TRAIN_ITEMS


def test_normalized_form_sees_through_names_literals_comments_and_layout():
    a = 'fn area(w: u32, h: u32) -> u32 {\n    w * h // area\n}\nfn main() { println!("{}", area(2, 3)); }'
    b = 'fn size(x: u32,y: u32)->u32 { x*y }\n/* other */ fn main() { println!("{} m", size(7, 9)); }'
    assert normalized_form(a) == normalized_form(b)
    swapped = a.replace("w * h", "h * w")  # a different program, not a renaming
    assert normalized_form(swapped) != normalized_form(a)


def test_training_can_never_draw_from_the_reserved_eval_seeds():
    with pytest.raises(GenerateError, match="reserved for evaluation"):
        generate("trait_bounds", 1, seed=EVAL_SEEDS.start, validate=False)
    with pytest.raises(GenerateError, match="reserved for evaluation"):
        generate("trait_bounds", 1, seed=3, validate=False, purpose="eval")


def test_the_two_variation_pools_share_no_item():
    assert not set(TRAIN_ITEMS) & set(EVAL_ITEMS)


def _failed(family: str, pattern: str):
    return generate(family, 1, seed=11, patterns=[pattern], validate=False)[0]


def test_learning_set_is_fresh_programs_of_the_failed_patterns_disjoint_from_training():
    failed = [_failed("trait_bounds", "missing_derive_debug")]
    # training as curation makes it: the failure plus 16 varied drafts of its pattern
    training = failed + generate(
        "trait_bounds", 16, seed=0, patterns=["missing_derive_debug"], validate=False, vary=True
    )
    built = build_learning_set(failed, training, frozen=[], k=4, seed=0)
    assert len(built.koans) == 4 and built.patterns == ["trait_bounds/missing_derive_debug"]
    for kn in built.koans:
        assert kn.pattern == "missing_derive_debug" and kn.meta["seed"] in EVAL_SEEDS
        assert kn.expected_stdout is not None  # validated: it ran
    hashes = {t.content_hash for t in training}
    forms = {t.normalized_hash for t in training}
    assert not {kn.content_hash for kn in built.koans} & hashes
    assert not {kn.normalized_hash for kn in built.koans} & forms


def test_a_renamed_training_copy_is_dropped_from_the_learning_set():
    failed = [_failed("trait_bounds", "missing_derive_debug")]
    first = build_learning_set(failed, [], frozen=[], k=3, seed=0)
    # a later sleep trains on a renamed copy of one learning koan: it must leave the set
    twin = first.koans[0]
    name = re.search(r"struct (\w+)", twin.buggy_code).group(1)
    rename = lambda code: re.sub(rf"\b{name}\b", "RenamedThing", code)  # noqa: E731
    renamed = replace(
        twin, buggy_code=rename(twin.buggy_code), correct_code=rename(twin.correct_code)
    )
    assert renamed.content_hash != twin.content_hash
    built = build_learning_set([], [renamed], frozen=[], previous=first.koans, k=3, seed=0)
    assert twin.id not in {kn.id for kn in built.koans}
    assert len(built.koans) == 2 and built.renamed_twins == 1


def test_failures_without_a_template_count_through_the_frozen_koans_of_their_family():
    frozen = load_evalset("evalsets/frozen.json")
    handwritten = replace(_failed("lifetimes", "missing_lifetime_in_return"), pattern="my_own")
    built = build_learning_set([handwritten], [], frozen=frozen, k=2, seed=0)
    assert built.transfer == ["lifetimes"] and built.patterns == []
    assert {kn.id for kn in built.koans} == {f.id for f in frozen if f.family == "lifetimes"}
    assert all(kn.meta["learning"] == "transfer" for kn in built.koans)


def test_the_set_grows_and_keeps_earlier_koans_for_re_measurement():
    first = build_learning_set(
        [_failed("trait_bounds", "missing_derive_debug")], [], frozen=[], k=2, seed=0
    )
    second = build_learning_set(
        [_failed("lifetimes", "missing_lifetime_in_return")],
        [],
        frozen=[],
        previous=first.koans,
        k=2,
        seed=0,
    )
    assert [kn.id for kn in second.koans[:2]] == [kn.id for kn in first.koans]
    assert {kn.family for kn in second.koans} == {"trait_bounds", "lifetimes"}
    again = build_learning_set(
        [_failed("trait_bounds", "missing_derive_debug")], [], frozen=[], k=2, seed=0
    )
    assert [kn.id for kn in again.koans] == [kn.id for kn in first.koans]  # seeded


def test_new_programs_measure_the_same_mistake_in_eval_side_programs_only(tmp_path):
    from pathlib import Path

    from sleepy.koans.harvest import program_side
    from sleepy.koans.mutate import load_programs

    failed = [_failed("mutability", "push_to_immutable_collection")]
    corpus, _ = load_programs([Path("koans")])
    held, _ = load_programs([Path("koans")], side="eval")
    built = build_learning_set(failed, [], frozen=[], k=3, seed=0, new_programs=held)
    new = [kn for kn in built.koans if kn.meta.get("learning") == "new_program"]
    assert new and built.new_programs
    eval_ids = {p.id for p in held}
    assert {kn.meta["parent"] for kn in new} <= eval_ids
    assert all(program_side(next(p.code for p in corpus if p.id == kn.meta["parent"])) == "eval"
               for kn in new)  # fmt: skip
    assert all(kn.meta["seed"] in EVAL_SEEDS for kn in new)
    # the template draws are still there beside them
    assert any(kn.meta.get("learning") == "template" for kn in built.koans)
