"""sleepy-tiny v2's parts: line-anchored edits (render and apply agree, bad replies are explained),
numbered programs in the prompt, and a recipe that trains on templates and validated mutants."""

from __future__ import annotations

import json

import pytest
from support import tiny_recipe

from sleepy.koan import load_koans
from sleepy.prompts.edits import EditError, get_edit_format
from sleepy.prompts.template import PromptTemplate

BUGGY = 'fn main() {\n    let v = Vec::new();\n    v.push(1);\n    println!("{:?}", v);\n}\n'
FIXED = BUGGY.replace("let v", "let mut v")


def test_line_edits_render_and_apply_every_corpus_fix():
    fmt = get_edit_format("lines")
    for k in load_koans("koans", "evalsets/frozen.json"):
        assert fmt.apply(k.buggy_code, fmt.render(k.buggy_code, k.correct_code)) == k.correct_code


def test_a_line_edit_names_the_line_and_gives_its_new_text():
    fmt = get_edit_format("lines")
    assert fmt.render(BUGGY, FIXED) == "@@ 2\n    let mut v = Vec::new();\n"
    assert fmt.apply(BUGGY, "@@ 2-3\n    let mut v = vec![1];\n") == BUGGY.replace(
        "    let v = Vec::new();\n    v.push(1);\n", "    let mut v = vec![1];\n"
    )
    assert fmt.apply(BUGGY, "@@ 3\n") == BUGGY.replace("    v.push(1);\n", "")  # a deletion


@pytest.mark.parametrize(
    "reply, why",
    [
        ("let mut v = Vec::new();", "no `@@ N` line edit"),
        ("@@ 9\nx", "has lines 1-5"),
        ("@@ 2-3\na\n@@ 3\nb", "overlaps"),
        ("@@ 2\n    let v = Vec::new();\n", "change nothing"),
    ],
)
def test_bad_line_edits_say_what_to_fix(reply, why):
    with pytest.raises(EditError, match=why):
        get_edit_format("lines").apply(BUGGY, reply)


def test_the_lines_prompt_numbers_the_program_as_rustc_does():
    koan = load_koans("koans/mutability/hw-mutability-task-queue.json")[0]
    (msg,) = PromptTemplate.load("tiny_lines").messages(koan, BUGGY, "error", [], "lines")
    assert "\n2 |     let v = Vec::new();\n3 |     v.push(1);\n" in msg["content"]


def test_v2_recipe_trains_on_templates_and_mutants(tmp_path):
    from sleepy.pretrain.train import train_tiny

    cfg = tiny_recipe(
        "tiny_v2",
        tmp_path,
        "families=[mutability]",
        "per_family=6",
        "mutants.per_family=3",
        "edit_format=lines",
        "template=tiny_lines",
        "train.steps=3",
        "train.curriculum_steps=2",
        "train.batch_size=4",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
    )
    summary = train_tiny(cfg)
    assert summary["template_koans"] == 6 and summary["mutant_koans"] == 3
    assert summary["examples"] == 9
    assert any(p.startswith("mutability/drop_") for p in summary["patterns"])  # operators
    hashes = (tmp_path / "model" / "train_hashes.txt").read_text().split()
    assert len(hashes) == 9
    saved = json.loads((tmp_path / "model" / "training.json").read_text())
    assert saved["config"]["edit_format"] == "lines"
