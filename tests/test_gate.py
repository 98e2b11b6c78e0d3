"""The promotion gate on constructed metrics: every rule, the reasons it gives, and its config."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sleepy.config import ConfigError, compose_config
from sleepy.eval.gate import Gate

CHAMP = {"pass_rate": 0.50, "pass_rate.lifetimes": 0.50, "pass_rate.trait_bounds": 0.50}


def test_better_candidate_without_regressions_is_promoted():
    cand = {"pass_rate": 0.625, "pass_rate.lifetimes": 0.75, "pass_rate.trait_bounds": 0.50}
    d = Gate(min_gain=0.05).decide(cand, CHAMP, [])
    assert d.promote and d.verdict == "promote"
    assert d.reasons[0] == "pass rate 0.625 >= champion 0.500 + min_gain 0.05"
    assert "0 regressions <= max 0" in d.reasons
    assert d.tags() == {"gate.decision": "promote", "gate.reasons": "; ".join(d.reasons)}


def test_a_regression_blocks_even_a_higher_pass_rate():
    cand = {"pass_rate": 0.75, "pass_rate.lifetimes": 1.0, "pass_rate.trait_bounds": 0.50}
    d = Gate().decide(cand, CHAMP, ["ev-lifetimes-split"])
    assert not d.promote
    assert d.reasons[0] == "1 regression > max 0: ev-lifetimes-split"  # failed checks come first
    assert d.summary().startswith("reject: 1 regression > max 0")
    assert Gate(max_regressions=1).decide(cand, CHAMP, ["ev-lifetimes-split"]).promote


def test_not_enough_gain_is_rejected():
    cand = dict(CHAMP, pass_rate=0.52)
    d = Gate(min_gain=0.05).decide(cand, CHAMP, [])
    assert not d.promote and d.reasons[0] == "pass rate 0.520 < champion 0.500 + min_gain 0.05"
    assert Gate(min_gain=0.0, min_gain_koans=0).decide(dict(CHAMP), CHAMP, []).promote


def test_a_tie_learned_nothing_and_is_not_promoted():
    """The default gate wants at least one koan more than the champion: a 0.000 = 0.000 tie, or
    a rate that rounds to no koan, is rejected with the count in its reasons."""
    tie = Gate().decide(
        {"pass_rate": 0.0, "episodes": 20.0}, {"pass_rate": 0.0, "episodes": 20.0}, []
    )
    assert not tie.promote
    assert tie.reasons[0] == "+0 koans on the suite < min_gain_koans 1"
    learn = ({"pass_rate": 0.10, "episodes": 20.0}, {"pass_rate": 0.05, "episodes": 20.0})
    one = Gate().decide(dict(CHAMP), CHAMP, [], learn)
    assert one.promote and "+1 koan on the learning set >= min_gain_koans 1" in one.reasons
    assert not Gate(min_gain_koans=2).decide(dict(CHAMP), CHAMP, [], learn).promote
    # without the set's size any gain in the rate counts as one koan, and none as none
    assert not Gate().decide(dict(CHAMP), CHAMP, []).promote


def test_a_family_that_drops_too_far_is_named():
    cand = {"pass_rate": 0.60, "pass_rate.lifetimes": 1.0, "pass_rate.trait_bounds": 0.25}
    d = Gate(max_family_drop=0.2).decide(cand, CHAMP, [])
    assert not d.promote and d.reasons[0] == "family drop over max 0.2: trait_bounds -0.250"
    assert Gate(max_family_drop=0.3).decide(cand, CHAMP, []).promote
    # a family the candidate has no score for counts as zero
    assert not Gate().decide({"pass_rate": 0.9}, CHAMP, []).promote


def test_many_regressions_are_listed_briefly():
    lost = [f"k{i}" for i in range(8)]
    d = Gate(min_gain_koans=0).decide(dict(CHAMP), CHAMP, lost)
    assert d.reasons[0] == "8 regressions > max 0: k0, k1, k2, k3, k4 (+3 more)"


def test_the_gate_group_composes_to_a_gate_and_refuses_a_wrong_type():
    cfg = compose_config("eval", ["candidate=base", "gate.min_gain=0.02"])
    gate = OmegaConf.to_object(cfg.gate)
    assert gate == Gate(min_gain=0.02, min_gain_koans=1, max_regressions=0, max_family_drop=0.1)
    with pytest.raises(ConfigError, match=r"gate.max_regressions='many': must be an integer"):
        compose_config("eval", ["candidate=base", "gate.max_regressions=many"])


LEARN_CHAMP = {"pass_rate": 0.10, "pass_rate.trait_bounds": 0.10}


def test_a_frozen_regression_rejects_even_a_large_learning_gain():
    learned = {"pass_rate": 0.90, "pass_rate.trait_bounds": 0.90}
    d = Gate(min_gain=0.05).decide(dict(CHAMP), CHAMP, ["hw-borrow-1"], (learned, LEARN_CHAMP))
    assert not d.promote
    assert d.reasons[0] == "1 regression > max 0: hw-borrow-1"
    assert "learning-set pass rate 0.900 >= champion 0.100 + min_gain 0.05" in d.reasons
    assert Gate(min_gain=0.05).decide(dict(CHAMP), CHAMP, [], (learned, LEARN_CHAMP)).promote


def test_with_a_learning_set_the_gain_is_measured_there_not_on_the_frozen_suite():
    better_frozen = dict(CHAMP, pass_rate=0.9)
    d = Gate(min_gain=0.05).decide(better_frozen, CHAMP, [], (LEARN_CHAMP, LEARN_CHAMP))
    assert not d.promote
    assert d.reasons[0] == "learning-set pass rate 0.100 < champion 0.100 + min_gain 0.05"


def test_an_earlier_family_forgotten_on_the_learning_set_is_a_family_drop():
    champ = {"pass_rate": 0.5, "pass_rate.trait_bounds": 0.8, "pass_rate.lifetimes": 0.2}
    cand = {"pass_rate": 0.6, "pass_rate.trait_bounds": 0.4, "pass_rate.lifetimes": 0.8}
    d = Gate(max_family_drop=0.1).decide(dict(CHAMP), CHAMP, [], (cand, champ))
    assert not d.promote
    assert d.reasons[0] == "family drop over max 0.1: learning trait_bounds -0.400"


def test_the_learning_sets_new_programs_may_not_drop_though_the_whole_set_gains():
    champ = {"pass_rate": 0.4, "new_programs_pass_rate": 0.5, "instances_pass_rate": 0.35}
    cand = {"pass_rate": 0.7, "new_programs_pass_rate": 0.2, "instances_pass_rate": 0.9}
    d = Gate(max_family_drop=0.1).decide(dict(CHAMP), CHAMP, [], (cand, champ))
    assert not d.promote
    assert d.reasons[0] == "new programs 0.200 < champion 0.500 - max_family_drop 0.1"
    kept = dict(cand, new_programs_pass_rate=0.5)
    d = Gate(max_family_drop=0.1).decide(dict(CHAMP), CHAMP, [], (kept, champ))
    assert d.promote and "new programs 0.500 >= champion 0.500 - max_family_drop 0.1" in d.reasons


def test_the_eval_splits_the_learning_set_into_new_instances_and_new_programs():
    from dataclasses import replace

    from sleepy.eval import SetResult, split_new_programs
    from sleepy.koan import Koan

    base = Koan(id="x", family="mutability", description="d", buggy_code="b",
                correct_code="c", expected_error="e")  # fmt: skip
    koans = [
        replace(base, id="t1", meta={"learning": "template"}),
        replace(base, id="t2", meta={"learning": "template"}),
        replace(base, id="n1", meta={"learning": "new_program"}),
        replace(base, id="n2", meta={"learning": "new_program"}),
    ]
    rows = [
        {"koan_id": "t1", "candidate_passed": True, "champion_passed": False},
        {"koan_id": "t2", "candidate_passed": True, "champion_passed": False},
        {"koan_id": "n1", "candidate_passed": True, "champion_passed": True},
        {"koan_id": "n2", "candidate_passed": False, "champion_passed": False},
    ]
    learning = SetResult("learning", {"pass_rate": 0.75}, {"pass_rate": 0.25}, rows)
    split_new_programs(learning, koans)
    assert learning.metrics["instances_pass_rate"] == 1.0
    assert learning.metrics["new_programs_pass_rate"] == 0.5
    assert learning.champion_metrics["instances_pass_rate"] == 0.0
    assert learning.champion_metrics["new_programs_pass_rate"] == 0.5
    assert learning.metrics["new_programs_koans"] == 2.0
    without = SetResult("learning", {"pass_rate": 1.0}, {"pass_rate": 0.5}, rows[:2])
    split_new_programs(without, koans[:2])
    assert "new_programs_pass_rate" not in without.metrics


def test_the_closing_table_shows_new_programs_when_measured():
    from sleepy.report import cycles_markdown
    from sleepy.summary import summary_table

    row = {
        "cycle": 1, "families": ["mutability"], "learning_pass_rate": 0.8,
        "champion_learning_pass_rate": 0.1, "repeat_error_rate": 0.2,
        "champion_repeat_error_rate": 1.0, "regressions": 0, "promoted": 1.0,
        "learning_family": {"mutability": 0.8}, "champion_learning_family": {"mutability": 0.1},
        "decision": "promote: ...",
    }  # fmt: skip
    plain = cycles_markdown([row])
    assert "new programs" not in plain
    measured = dict(row, new_programs_pass_rate=0.25, champion_new_programs_pass_rate=0.0)
    text = cycles_markdown([measured])
    assert "| new programs before → after |" in text and "| 0% → 25% |" in text
    assert "new programs" in summary_table([measured], "t").headers
