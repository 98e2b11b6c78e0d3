"""The agent: edit formats round-trip, prompt templates render, and the loop's control flow with a
scripted model (a test double for the loop only) against the real sandbox and a real SQLite store."""

from __future__ import annotations

import difflib
import json
import random

import pytest

from sleepy.day import PromptTemplate, get_edit_format
from sleepy.day.loop import KoanRun, Policy, run_koans, solve
from sleepy.day.protocol import FormatError, parse_text, parse_tool_calls
from sleepy.episodes import EpisodeStore
from sleepy.koan.model import FAMILIES, Koan
from sleepy.koans.generator import Vocab, patterns
from sleepy.llm import LLM, Generation
from sleepy.prompts.edits import EDIT_FORMATS, EditError
from sleepy.sandbox import Sandbox

BUGGY = """fn total_len(text: String) -> usize {
    text.len()
}

fn main() {
    let name = String::from("koan");
    let n = total_len(name);
    println!("{} {}", name, n);
}
"""
CORRECT = BUGGY.replace("total_len(name)", "total_len(name.clone())")
WRONG = BUGGY.replace("total_len(name)", "total_len(&name)")  # compiles no better: E0308

KOAN = Koan(
    id="moved-name",
    family="borrow_checker",
    description="`name` is used after a move.",
    buggy_code=BUGGY,
    correct_code=CORRECT,
    expected_error="borrow of moved value",
    expected_code="E0382",
    pattern="use_after_move",
    expected_stdout="koan 4\n",
)


class ScriptedModel(LLM):
    """Replies from a list, in order; records every prompt it was given."""

    model_id = "scripted"

    def __init__(self, replies):
        self.replies, self.prompts, self.opts = list(replies), [], []

    def generate(self, messages_batch, **opts):
        out = []
        for messages in messages_batch:
            self.prompts.append(messages)
            self.opts.append(opts)
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            text, calls = (reply, []) if isinstance(reply, str) else reply
            out.append(
                Generation(text, tokens_in=100 + len(self.prompts), tokens_out=10, tool_calls=calls)
            )
        return out


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox()


@pytest.fixture
def store(tmp_path):
    with EpisodeStore(tmp_path / "episodes.sqlite") as s:
        yield s


def drafts(per_pattern: int = 3):
    out = []
    for family in FAMILIES:
        for p in patterns(family):
            out += [p.make(Vocab(random.Random(seed))) for seed in range(per_pattern)]
    return out


# -- edit formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EDIT_FORMATS))
def test_render_then_apply_round_trips_on_generated_drafts(name):
    fmt = get_edit_format(name)
    cases = drafts()
    assert len(cases) > 20
    for d in cases:
        for old, new in ((d.buggy_code, d.correct_code), (d.correct_code, d.buggy_code)):
            assert fmt.apply(old, fmt.render(old, new)) == new


def test_search_replace_renders_only_the_changed_lines():
    reply = get_edit_format("search_replace").render(BUGGY, CORRECT)
    assert reply == (
        "<<<<<<< SEARCH\n    let n = total_len(name);\n=======\n"
        "    let n = total_len(name.clone());\n>>>>>>> REPLACE\n"
    )


def test_search_replace_adds_context_until_the_search_text_is_unique():
    old = "fn main() {\n    let a = 1;\n    let x = 0;\n    let b = 2;\n    let x = 0;\n}\n"
    new = old.replace("let b = 2;\n    let x = 0;", "let b = 2;\n    let x = 5;")
    fmt = get_edit_format("search_replace")
    reply = fmt.render(old, new)
    assert "let b = 2;" in reply.split("=======")[0]
    assert fmt.apply(old, reply) == new


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("just prose", "no SEARCH/REPLACE block"),
        ("<<<<<<< SEARCH\n    let q = 1;\n=======\n    let q = 2;\n>>>>>>> REPLACE\n", "not found"),
        ("<<<<<<< SEARCH\n}\n=======\n};\n>>>>>>> REPLACE\n", "matches 2 places"),
        ("<<<<<<< SEARCH\n    text.len()\n=======\n    text.len()\n", "not closed"),
        ("<<<<<<< SEARCH\n    text.len()\n>>>>>>> REPLACE\n", "no ======= divider"),
    ],
)
def test_search_replace_errors_are_one_line_reasons(reply, reason):
    with pytest.raises(EditError) as e:
        get_edit_format("search_replace").apply(BUGGY, reply)
    assert reason in str(e.value) and "\n" not in str(e.value)


def test_search_replace_tolerates_wrong_indentation():
    reply = "<<<<<<< SEARCH\nlet n = total_len(name);\n=======\nlet n = total_len(name.clone());\n>>>>>>> REPLACE"
    assert get_edit_format("search_replace").apply(BUGGY, reply) == CORRECT


def test_udiff_ignores_wrong_line_numbers_and_whole_file_takes_the_fenced_code():
    diff = (
        get_edit_format("udiff")
        .render(BUGGY, CORRECT)
        .replace("@@ -4,6 +4,6 @@", "@@ -40,6 +40,6 @@")
    )
    assert get_edit_format("udiff").apply(BUGGY, diff) == CORRECT
    reply = f"Here is the fix:\n```rust\n{CORRECT}```\nDone."
    assert get_edit_format("whole_file").apply(BUGGY, reply) == CORRECT
    with pytest.raises(EditError, match="no ```rust code block"):
        get_edit_format("whole_file").apply(BUGGY, "no code here")


def test_unknown_edit_format_names_the_choices():
    with pytest.raises(ValueError, match="search_replace"):
        get_edit_format("patchy")


# -- prompts and protocols ------------------------------------------------------------------------


def test_tiny_prompt_is_compact_description_code_feedback():
    msgs = PromptTemplate.load("tiny").messages(
        KOAN, BUGGY, "error[E0382]: borrow of moved value", [], "search_replace"
    )
    assert [m["role"] for m in msgs] == ["user"]
    assert msgs[0]["content"] == f"{KOAN.description}\n{BUGGY}error[E0382]: borrow of moved value"


@pytest.mark.parametrize("name", ["default", "tiny"])
@pytest.mark.parametrize("protocol", ["edit", "text", "tools"])
def test_every_template_renders_every_format_and_protocol(name, protocol):
    tpl = PromptTemplate.load(name)
    for fmt in EDIT_FORMATS:
        msgs = tpl.messages(KOAN, BUGGY, "some error", [], fmt, protocol)
        assert BUGGY.strip() in msgs[-1]["content"] and KOAN.description in msgs[-1]["content"]
        if name == "default" and protocol == "edit":
            assert {
                "whole_file": "```rust",
                "search_replace": "<<<<<<< SEARCH",
                "udiff": "+++ b/src/main.rs",
                "lines": "@@ 3",
            }[fmt] in msgs[0]["content"]


def test_missing_template_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: .*tiny"):
        PromptTemplate.load("nope")


def test_text_protocol_wants_exactly_one_action():
    assert parse_text("```search\nname\n```").args == {"pattern": "name"}
    assert (
        parse_text("```write_file src/main.rs\nfn main() {}\n```").args["content"]
        == "fn main() {}\n"
    )
    with pytest.raises(FormatError, match="no action"):
        parse_text("I think the bug is on line 7.")
    with pytest.raises(FormatError, match="2 actions"):
        parse_text("```run_check\n```\n```submit\n```")
    call = parse_tool_calls(
        '<tool_call>{"name": "search", "arguments": {"pattern": "x"}}</tool_call>', []
    )
    assert (call.name, call.args) == ("search", {"pattern": "x"})


# -- the loop -------------------------------------------------------------------------------------


def sr(old: str, new: str) -> str:
    return get_edit_format("search_replace").render(old, new)


def test_wrong_patch_then_feedback_then_pass_records_every_field(sandbox, store):
    model = ScriptedModel([sr(BUGGY, WRONG), sr(WRONG, CORRECT)])
    run = solve(
        KOAN,
        model,
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        "edit",
        Policy(max_attempts=3),
        store,
        run_id="r1",
        cycle=2,
        model_id="scripted",
        adapter="sleepy-fixer/3",
    )
    assert run.passed and run.steps_to_green == 2

    # the failed check's diagnostic came back as the observation and opens the second prompt
    first, second = run.steps
    assert first["passed"] is False and first["signature"].startswith("E0308")
    assert "error[E0308]" in first["observation"] and "total_len(&name)" in first["observation"]
    assert "error[E0308]" in model.prompts[1][0]["content"]
    assert "total_len(&name)" in model.prompts[1][0]["content"]  # the new code, fresh prompt
    assert "error[E0382]" in model.prompts[0][0]["content"]

    [ep] = store.episodes(run_id="r1")
    assert (ep.task_id, ep.run_id, ep.cycle, ep.family, ep.pattern) == (
        "moved-name",
        "r1",
        2,
        "borrow_checker",
        "use_after_move",
    )
    assert (ep.model_id, ep.adapter, ep.edit_format) == (
        "scripted",
        "sleepy-fixer/3",
        "search_replace",
    )
    assert ep.passed and ep.status == "done" and ep.steps == 2 and ep.steps_to_green == 2
    assert ep.error_signature.startswith("E0382") and ep.first_error_signature.startswith("E0308")
    assert ep.final_error_signature is None and ep.error is None
    assert ep.diff_unified == "".join(
        difflib.unified_diff(
            BUGGY.splitlines(True), CORRECT.splitlines(True), "a/src/main.rs", "b/src/main.rs"
        )
    )
    assert (ep.tokens_in, ep.tokens_out) == (101 + 102, 20)
    assert ep.prompt_hash == run.prompt_hash and len(ep.prompt_hash) == 16
    assert ep.wall_clock_ms > 0
    start, *steps = ep.trajectory
    assert start["kind"] == "start" and start["code"] == BUGGY
    assert [s["reply"] for s in steps] == [sr(BUGGY, WRONG), sr(WRONG, CORRECT)]
    assert steps[-1]["code"] == CORRECT and steps[-1]["stop"] == "passed"
    assert steps[0]["prompt"] == model.prompts[0]


class RoutingModel(ScriptedModel):
    """A scripted model that says it routes: it reports a task per signature it is given."""

    supports_routing = True

    def generate(self, messages_batch, **opts):
        out = super().generate(messages_batch, **opts)
        for g, sig in zip(out, opts["signatures"], strict=True):
            g.routed, g.adapter = True, ("borrow" if sig and sig.startswith("E0382") else None)
        return out


def test_a_routing_backend_gets_each_runs_current_error_signature(sandbox, store):
    from sleepy.episodes import metrics_of

    model = RoutingModel([sr(BUGGY, WRONG), sr(WRONG, CORRECT)])
    run = solve(
        KOAN,
        model,
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        "edit",
        Policy(max_attempts=3),
        store,
        run_id="routed",
    )
    assert run.passed
    # first the buggy code's E0382, then the wrong patch's E0308: the router sees the error at hand
    sigs = [o["signatures"] for o in model.opts]
    assert [s[0].split()[0] for s in sigs] == ["E0382", "E0308"]
    assert [s["adapter"] for s in run.steps] == ["borrow", None]
    [ep] = store.episodes(run_id="routed")
    assert [s.get("adapter") for s in ep.trajectory[1:]] == ["borrow", None]
    assert metrics_of([ep])["routed_rate"] == 0.5
    # a backend that does not route is never sent signatures
    plain = ScriptedModel([sr(BUGGY, CORRECT)])
    fmt = get_edit_format("search_replace")
    alone = solve(KOAN, plain, sandbox, PromptTemplate.load("tiny"), fmt)
    assert "signatures" not in plain.opts[0] and "adapter" not in alone.steps[-1]


class ConfidentRoutingModel(ScriptedModel):
    """A scripted model that routes and says how sure its router was."""

    supports_routing = True

    def generate(self, messages_batch, **opts):
        out = super().generate(messages_batch, **opts)
        for g in out:
            g.routed, g.adapter, g.route_confidence = True, "c2", 0.87
        return out


def test_each_routed_step_records_the_route_its_confidence_and_what_it_was_routed_on(
    sandbox, store
):
    model = ConfidentRoutingModel([sr(BUGGY, WRONG), sr(WRONG, CORRECT)])
    fmt = get_edit_format("search_replace")
    run = solve(KOAN, model, sandbox, PromptTemplate.load("tiny"), fmt, store=store, run_id="rc")
    assert run.passed
    # the router is given the feedback the agent is shown, beside the signature
    first, second = model.opts
    assert first["route_texts"][0].startswith("error[E0382]")
    assert second["route_texts"][0].startswith("error[E0308]")
    [ep] = store.episodes(run_id="rc")
    start, *steps = ep.trajectory
    assert [(s["adapter"], s["route_confidence"]) for s in steps] == [("c2", 0.87)] * 2
    # each step names the signature its route was chosen on: the error at hand before the reply
    assert steps[0]["route_signature"] == start["signature"]
    assert steps[1]["route_signature"] == steps[0]["signature"]


def test_a_reply_that_breaks_the_format_is_a_step_with_the_error_as_observation(sandbox, store):
    model = ScriptedModel(["the fix is to clone it", sr(BUGGY, CORRECT)])
    run = solve(
        KOAN,
        model,
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        store=store,
        run_id="r2",
    )
    assert run.passed and run.steps_to_green == 2
    assert "no SEARCH/REPLACE block found" in run.steps[0]["observation"]
    second = model.prompts[1][0]["content"]
    assert "no SEARCH/REPLACE block found" in second and "error[E0382]" in second
    assert store.episodes(run_id="r2")[0].steps == 2


def test_limits_stop_the_loop_with_their_reason(sandbox, store):
    wrong = sr(BUGGY, WRONG)
    run = solve(
        KOAN,
        ScriptedModel([wrong] * 5),
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        policy=Policy(max_attempts=2),
        store=store,
        run_id="r3",
    )
    # the second identical reply no longer applies (the code already changed): an edit error
    assert not run.passed and run.outcome == "max_attempts" and len(run.steps) == 2
    run = solve(
        KOAN,
        ScriptedModel(["nothing"] * 5),
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        policy=Policy(token_budget=150),
        store=store,
        run_id="r3",
    )
    assert run.outcome == "token_budget" and len(run.steps) == 2
    [a, b] = store.episodes(run_id="r3")
    assert not a.passed and a.final_error_signature.startswith("E0308") and a.steps_to_green is None


def test_backend_failure_ends_the_episode_with_its_reason(sandbox, store):
    run = solve(
        KOAN,
        ScriptedModel([RuntimeError("server said 500\nmore")]),
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        store=store,
        run_id="r4",
    )
    assert run.outcome == "error"
    [ep] = store.episodes(run_id="r4")
    assert ep.status == "error" and ep.error == "RuntimeError: server said 500"


def test_text_protocol_check_then_patch(sandbox, store):
    patch = get_edit_format("udiff").render(BUGGY, CORRECT)
    model = ScriptedModel(["Let me compile it.\n```run_check\n```", f"```apply_patch\n{patch}```"])
    run = solve(
        KOAN,
        model,
        sandbox,
        PromptTemplate.load("default"),
        get_edit_format("udiff"),
        "text",
        store=store,
        run_id="r5",
    )
    assert run.passed and run.steps_to_green == 2
    assert "E0382" in run.steps[0]["observation"]
    roles = [m["role"] for m in model.prompts[1]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "E0382" in model.prompts[1][-1]["content"]


def test_tools_protocol_answers_each_call_with_a_tool_message(sandbox, store):
    search = {"id": "c1", "name": "search", "arguments": json.dumps({"pattern": "total_len(name)"})}
    write = {
        "id": "c2",
        "name": "write_file",
        "arguments": {"path": "src/main.rs", "content": CORRECT},
    }
    model = ScriptedModel([("", [search]), ("", [write])])
    run = solve(
        KOAN,
        model,
        sandbox,
        PromptTemplate.load("default"),
        get_edit_format("whole_file"),
        "tools",
        store=store,
        run_id="r6",
    )
    assert run.passed and run.steps_to_green == 2
    assert model.opts[0]["tools"][0]["function"]["name"] == "open_file"
    tool_msg = model.prompts[1][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "c1"
    assert "let n = total_len(name);" in tool_msg["content"]


def test_hint_memory_shows_an_earlier_fix_of_the_same_error(sandbox, store):
    solve(
        KOAN,
        ScriptedModel([sr(BUGGY, CORRECT)]),
        sandbox,
        PromptTemplate.load("tiny"),
        get_edit_format("search_replace"),
        store=store,
        run_id="r7",
    )
    other = Koan(
        **{
            **KOAN.__dict__,
            "id": "moved-word",
            "buggy_code": BUGGY.replace("name", "word"),
            "correct_code": CORRECT.replace("name", "word"),
        }
    )
    model = ScriptedModel([sr(other.buggy_code, other.correct_code)])
    run = solve(
        other,
        model,
        sandbox,
        PromptTemplate.load("default"),
        get_edit_format("search_replace"),
        policy=Policy(hints=True, hints_k=2),
        store=store,
        run_id="r7",
    )
    assert run.passed
    prompt = model.prompts[0][-1]["content"]
    assert "Earlier fixes of the same error" in prompt and "total_len(name.clone())" in prompt
    # a koan never gets its own earlier fix as a hint
    again = KoanRun(
        KOAN,
        sandbox,
        PromptTemplate.load("default"),
        get_edit_format("search_replace"),
        policy=Policy(hints=True),
        store=store,
        run_id="r8",
    ).start()
    assert [h.reply for h in again.hints] == [sr(other.buggy_code, other.correct_code).strip()]


def test_lockstep_steps_every_live_koan_with_one_generate_call(sandbox):
    class Batched(ScriptedModel):
        def __init__(self):
            super().__init__([])
            self.calls = []

        def generate(self, messages_batch, **opts):
            self.calls.append(len(messages_batch))
            self.replies = [
                sr(BUGGY, CORRECT) if "total_len(name)" in m[0]["content"] else "junk"
                for m in messages_batch
            ]
            return super().generate(messages_batch, **opts)

    stuck = Koan(
        **{**KOAN.__dict__, "id": "stuck", "buggy_code": BUGGY.replace("(name)", "(name )")}
    )
    model = Batched()
    runs = run_koans(
        [KOAN, stuck],
        lambda k: KoanRun(
            k,
            sandbox,
            PromptTemplate.load("tiny"),
            get_edit_format("search_replace"),
            policy=Policy(max_attempts=9, max_steps=3),
        ),
        model,
    )
    assert model.calls == [2, 1, 1]
    assert {r.koan.id: (r.passed, r.outcome) for r in runs} == {
        "moved-name": (True, "passed"),
        "stuck": (False, "max_steps"),
    }
