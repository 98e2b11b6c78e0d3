"""A program longer than the model's context is never cut silently: the agent shows the lines
around the error, as a file viewer does, and the episode says what it showed. Real sleepy-tiny
(hf backend), real sandbox, real SQLite store."""

from __future__ import annotations

import pytest

from sleepy.day import PromptTemplate, get_edit_format
from sleepy.day.loop import Policy, solve
from sleepy.day.workspace import code_window
from sleepy.episodes import EpisodeStore
from sleepy.episodes.metrics import metrics_of
from sleepy.koan.model import Koan
from sleepy.sandbox import Sandbox

# sixty helper functions, then the mistake at the end: a prompt cut from the left loses the start
HELPERS = "".join(f"fn helper_{i}(x: i32) -> i32 {{\n    x * {i} + 1\n}}\n\n" for i in range(60))
BUGGY = (
    HELPERS
    + """fn main() {
    let names = vec![String::from("ada")];
    let moved = names;
    println!("{} {}", names.len(), moved.len() + helper_3(1) as usize);
}
"""
)
KOAN = Koan(
    id="long-moved", family="borrow_checker", description="`names` is used after a move.",
    buggy_code=BUGGY, correct_code=BUGGY.replace("= names;", "= names.clone();"),
    expected_error="borrow of moved value", expected_code="E0382", expected_stdout="1 5\n",
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    return HFBackend(MODEL_DIR, model_id="sleepy-tiny", max_new_tokens=32)


def test_a_window_keeps_the_lines_verbatim_and_says_what_is_left_out():
    text, shown = code_window(BUGGY, 242, 3)
    lines = text.splitlines()
    assert lines[0] == "// ... lines 1-238 not shown ..." and shown == "lines 239-245 of 245"
    assert lines[1:] == BUGGY.splitlines()[238:245]


@pytest.mark.parametrize("edit_format", ["search_replace", "whole_file"])
def test_a_program_too_long_for_the_context_is_shown_around_its_error(tiny, tmp_path, edit_format):
    policy = Policy(max_attempts=1, max_steps=1, max_new_tokens=32)
    fmt = get_edit_format(edit_format)
    whole = PromptTemplate.load("tiny").messages(KOAN, BUGGY, "", [], fmt.name, "edit")
    assert tiny.prompt_tokens(whole) + 32 > tiny.context  # the program does not fit as it is
    with EpisodeStore(tmp_path / "e.sqlite") as store:
        run = solve(KOAN, tiny, Sandbox(), PromptTemplate.load("tiny"), fmt, policy=policy,
                    store=store, run_id="long")  # fmt: skip
        (episode,) = store.episodes(run_id="long")
    step = episode.trajectory[-1]
    if edit_format == "whole_file":
        # a reply that rewrites the whole file cannot be given a part of it: said, not hidden
        assert step["prompt_view"] == "cut"
    else:
        assert step["prompt_view"].startswith("lines ") and step["prompt_view"].endswith("of 245")
        shown = step["prompt"][-1]["content"]
        assert "let moved = names;" in shown and "not shown ..." in shown
        assert tiny.prompt_tokens(step["prompt"]) + 32 <= tiny.context
    metrics = metrics_of([episode])
    assert metrics["prompts_windowed"] + metrics["prompts_cut"] == 1
    assert run.done


def test_a_program_that_fits_is_shown_whole(tiny, tmp_path):
    short = Koan(
        id="short", family="borrow_checker", description="d", expected_error="borrow of moved",
        buggy_code=BUGGY[len(HELPERS) :], correct_code=KOAN.correct_code[len(HELPERS) :],
        expected_code="E0382",
    )  # fmt: skip
    with EpisodeStore(tmp_path / "e.sqlite") as store:
        solve(short, tiny, Sandbox(), PromptTemplate.load("tiny"),
              get_edit_format("search_replace"), policy=Policy(max_attempts=1, max_steps=1),
              store=store, run_id="short")  # fmt: skip
        (episode,) = store.episodes(run_id="short")
    assert episode.trajectory[-1]["prompt_view"] == "whole"
    assert metrics_of([episode])["prompts_windowed"] == 0
