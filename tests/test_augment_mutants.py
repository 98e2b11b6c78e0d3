"""Sleep and eval use the mutation operators: a failed hand-written koan gets "same mistake, new
program" training variants, and the eval's learning set measures it on mutants drawn with the
reserved seeds. Real rustc validates every mutant."""

from pathlib import Path

import pytest

from sleepy.config import compose_config
from sleepy.episodes import EpisodeStore
from sleepy.eval.learning import build_learning_set
from sleepy.koan import load_koans
from sleepy.koans.generate import EVAL_SEEDS
from sleepy.koans.mutate import load_programs, mutate, operator_for
from sleepy.koans.variation import EVAL_ITEMS
from sleepy.sleep.curate import curate

ROOT = Path(__file__).resolve().parents[1]
FROZEN = [str(ROOT / "evalsets" / "frozen.json")]
FAILED = ["hw-mutability-task-queue", "hw-type_mismatch-average-rating"]


@pytest.fixture(scope="module")
def corpus():
    return {k.id: k for k in load_koans(ROOT / "koans")}


def test_operator_for_finds_the_operator_that_makes_a_handwritten_mistake(corpus):
    assert operator_for(corpus["hw-mutability-task-queue"]).name == "drop_let_mut"
    assert operator_for(corpus["hw-type_mismatch-average-rating"]).name == "drop_cast"
    assert operator_for(corpus["hw-lifetimes-http-reason"]).name == "drop_static_lifetime"


def test_failed_handwritten_koans_get_mutants_of_other_programs(corpus, tmp_path):
    db = tmp_path / "episodes.sqlite"
    with EpisodeStore(db) as store:
        for kid in FAILED:
            k = corpus[kid]
            eid = store.start_episode(
                "day1", kid, attempt_idx=0, family=k.family, pattern=k.pattern,
                error_signature=f"{k.expected_code} sig", edit_format="search_replace",
            )  # fmt: skip
            store.finish_episode(eid, passed=False, final_error_signature=f"{k.expected_code} sig")
        eps = store.episodes()
    distance = compose_config("sleep").curate.cluster_distance
    cur = curate(
        eps, corpus, "tiny", "search_replace", augment_k=2, evalset_paths=FROZEN,
        cluster_distance=distance,
    )  # fmt: skip
    mutants = [k for k in cur.koans if k.source == "mutated"]
    assert cur.stats["augment_mutant_rows"] == len(mutants) >= 3
    assert {k.pattern for k in mutants} == {"drop_let_mut", "drop_cast"}
    for k in mutants:
        assert k.meta["parent"] not in FAILED  # the same mistake in another program
    rows = [r for r in cur.dataset if r["koan_id"] in {k.id for k in mutants}]
    assert rows and all(r["role"] == "augment" for r in rows)


def test_the_learning_set_measures_a_handwritten_failure_on_fresh_mutants():
    programs, dropped = load_programs([ROOT / "koans" / "mutability"], evalsets=FROZEN)
    failed = [k for k in load_koans(ROOT / "koans" / "mutability") if k.id == FAILED[0]]
    training = mutate("mutability", 3, 0, programs, operator_names=["drop_let_mut"])
    built = build_learning_set(failed, training, frozen=[], k=2, seed=0, programs=programs)
    assert built.mutants == ["mutability/drop_let_mut"] and built.transfer == []
    assert len(built.koans) == 2
    hashes = {t.content_hash for t in training}
    forms = {t.normalized_hash for t in training}
    for kn in built.koans:
        assert kn.source == "mutated" and kn.meta["learning"] == "mutant"
        assert kn.meta["seed"] in EVAL_SEEDS and kn.meta["parent"] != FAILED[0]
        assert any(item in kn.correct_code for item in EVAL_ITEMS)  # the eval's item pool
        assert kn.content_hash not in hashes and kn.normalized_hash not in forms
    # without programs, it is measured on the template its pattern names, as before
    built = build_learning_set(failed, training, frozen=[], k=2, seed=0)
    assert built.patterns == [f"mutability/{failed[0].pattern}"] and built.mutants == []
