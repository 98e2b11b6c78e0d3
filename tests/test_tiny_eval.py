"""sleepy-tiny's evaluator measures new programs: mutants of eval-side programs only (real
mutator, real rustc, the real model), none a renamed copy of anything it trained on."""

from __future__ import annotations

from pathlib import Path

from sleepy.koans.harvest import program_side
from sleepy.koans.mutate import load_programs
from sleepy.pretrain.evaluate import evaluate_tiny


def test_new_program_mutants_come_from_eval_side_programs_only(tmp_path):
    programs, _ = load_programs([Path("koans")])
    folder = tmp_path / "harvest"
    folder.mkdir()
    for p in programs:  # both sides, as a harvest folder holds them
        (folder / f"{p.id}.rs").write_text(p.code)
    result = evaluate_tiny(
        ["mutability"], per_family=0, mutants_per_family=3, new_programs=folder,
        only=["mutants_new_programs_known"],
    )  # fmt: skip
    assert list(result) == ["mutants_new_programs_known"]
    suite = result["mutants_new_programs_known"]
    assert 1 <= suite["episodes"] <= 3 and 0.0 <= suite["pass_rate"] <= 1.0
    # the same folder without its eval-side programs has nothing new to measure
    for p in programs:
        if program_side(p.code) == "eval":
            (folder / f"{p.id}.rs").unlink()
    result = evaluate_tiny(
        ["mutability"], per_family=0, mutants_per_family=3, new_programs=folder,
        only=["mutants_new_programs_known"],
    )  # fmt: skip
    assert result == {}
