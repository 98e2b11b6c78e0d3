"""The agent loop: query the model, parse one action, execute it, append the observation; stop when
the sandbox's verdict passes, on a limit, or on an error that carries its reason. Every step is
saved to the episode store as it happens, so a killed run loses nothing it finished.

`KoanRun` is one koan's trajectory, stepped from outside, so that `run_koans` can step many in
lockstep with one batched generate() call per step; `solve` is the plain one-koan loop.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from omegaconf import II

from sleepy.adapters.router import diagnostic_core
from sleepy.config import ranged
from sleepy.day.hints import hints_for
from sleepy.day.protocol import TOOL_SCHEMAS, Action, FormatError, parse
from sleepy.day.seams import Checker, EpisodeSink
from sleepy.day.workspace import Observation, Workspace, code_window, focus_line
from sleepy.koan.model import Koan
from sleepy.llm import LLM, BackendUnreachable, Generation
from sleepy.prompts.edits import FILE, EditFormat
from sleepy.prompts.template import Hint, PromptTemplate, messages_hash

# Lines each side of the error a long program is shown with, widest first.
WINDOW_RADII = (48, 32, 20, 12, 6)


@dataclass
class Policy:
    """When an episode stops and how replies are sampled: the one place these defaults live (the
    `agent` config group is AgentConfig below, which extends this)."""

    max_attempts: int = ranged(3, ge=1)  # replies that try a fix (an edit or a submit)
    max_steps: int = ranged(6, ge=1)  # replies of any kind, format errors included
    token_budget: int = ranged(30_000, ge=1)  # tokens in + out over the whole episode
    temperature: float = ranged(0.0, ge=0, le=2)  # 0: greedy
    max_new_tokens: int = ranged(512, ge=1)  # per reply
    feedback_chars: int | None = ranged(None, ge=0)  # None: the sandbox's default cut
    hints: bool = False  # show earlier fixes of the same error as worked examples
    hints_k: int = ranged(2, ge=0)  # how many


@dataclass
class AgentConfig(Policy):
    """The `agent` config group (a structured config: types are checked when Hydra composes it):
    the policy, the model's own way of replying unless a preset changes it, and how many
    episodes run at once."""

    edit_format: str = II("model.edit_format")  # whole_file | search_replace | udiff
    protocol: str = II("model.protocol")  # edit | text | tools
    prompt_template: str = II("model.prompt_template")  # a file in sleepy/conf/prompts/
    max_new_tokens: int = ranged(II("model.max_new_tokens"), ge=1)
    feedback_chars: int | None = ranged(II("model.feedback_chars"), ge=0)
    hints: bool = II("model.hints")
    concurrency: int = ranged(
        32, ge=1
    )  # live episodes stepped together: one generate() call per step
    workers: int = ranged(2, ge=1)  # sandbox threads


class KoanRun:
    """One koan's episode. `start()`, then `prompt()` / `step(generation)` until `done`."""

    def __init__(
        self,
        koan: Koan,
        sandbox: Checker,
        template: PromptTemplate,
        edit_format: EditFormat,
        protocol: str = "edit",
        policy: Policy | None = None,
        store: EpisodeSink | None = None,
        fits: Callable[[list[dict]], bool] | None = None,
        **episode_fields: Any,
    ):
        self.koan, self.template, self.edit_format = koan, template, edit_format
        # does a prompt fit the model's context with room for the reply? None: no limit known
        self.fits = fits
        self.focus: int | None = None  # the line the last verdict points at
        self.view = "whole"  # what the last prompt showed of the code: whole, lines a-b of n, cut
        self.protocol, self.policy, self.store = protocol, policy or Policy(), store
        self.fields = episode_fields  # run_id, cycle, model_id, adapter for the store
        self.workspace = Workspace(koan, sandbox, edit_format, self.policy.feedback_chars)
        self.steps: list[dict] = []
        self.messages: list[dict] = []  # the conversation (text and tools protocols)
        self.hints: list[Hint] = []
        self.attempts = self.tokens_in = self.tokens_out = 0
        self.done, self.passed, self.outcome, self.error = False, False, "", None
        self.first_signature = self.final_signature = self.start_signature = None
        self.feedback = ""  # the sandbox's last feedback on the current code
        self.note = ""  # why the last reply was unusable (edit protocol)
        self.episode_id: str | None = None
        self.prompt_hash: str | None = None
        self._t0 = time.monotonic()

    # -- the loop's three moves -----------------------------------------------------------------

    def start(self) -> KoanRun:
        """Check the buggy program, fetch hints for its error, open the episode in the store."""
        v = self.workspace.verdict()
        self.start_signature = self.final_signature = v.signature
        self.feedback = self.workspace.feedback(v)
        self.focus = focus_line(v)
        if self.policy.hints:
            self.hints = hints_for(
                self.store,
                v.signature,
                self.policy.hints_k,
                self.edit_format,
                exclude_task=self.koan.id,
            )
        self.messages = self._opening()
        self.prompt_hash = messages_hash(self.messages)
        if self.store is not None:
            start = {
                "kind": "start",
                "code": self.koan.buggy_code,
                "feedback": self.feedback,
                "description": self.koan.description,
                "signature": _str(v.signature),
                "hints": [h.reply for h in self.hints],
                "template": self.template.name,
                "template_hash": self.template.hash,
                "protocol": self.protocol,
            }
            self.episode_id = self.store.start_episode(
                self.fields.get("run_id", ""),
                self.koan.id,
                trajectory=[start],
                family=self.koan.family,
                pattern=self.koan.pattern,
                edit_format=self.edit_format.name,
                prompt_hash=self.prompt_hash,
                error_signature=_str(v.signature),
                **{k: v for k, v in self.fields.items() if k != "run_id"},
            )
        if v.passed:  # nothing to fix: a broken koan, recorded as such
            self._finish(
                "already_passing",
                passed=False,
                status="error",
                error="the koan's buggy code already passes",
            )
        return self

    def prompt(self) -> list[dict]:
        """The messages for the next reply. The edit protocol opens a fresh, short prompt per
        attempt with the current code and feedback; the others continue the conversation."""
        return self._opening() if self.protocol == "edit" else list(self.messages)

    def generation_options(self) -> dict:
        opts = {
            "max_new_tokens": self.policy.max_new_tokens,
            "temperature": self.policy.temperature,
        }
        if self.protocol == "tools":
            opts["tools"] = TOOL_SCHEMAS
        return opts

    def step(self, generation: Generation) -> None:
        """Parse the reply into one action, execute it, record the step, decide whether to stop."""
        prompt = self.prompt()
        routed_on = _str(self.final_signature)  # what the router was given for this reply
        routed_text = self.feedback  # ... and the feedback beside it
        self.tokens_in += generation.tokens_in
        self.tokens_out += generation.tokens_out
        tool_calls = generation.tool_calls
        try:
            action = parse(self.protocol, generation.text, tool_calls)
            obs = self.workspace.execute(action)
        except FormatError as e:
            action, obs = Action("invalid"), Observation(f"format error: {e}", error=True)
        self.attempts += obs.attempt
        if obs.verdict is not None:
            self.final_signature = obs.verdict.signature
            if not obs.verdict.passed and self.first_signature is None:
                self.first_signature = obs.verdict.signature
            self.feedback, self.note = self.workspace.feedback(obs.verdict), ""
            self.focus = focus_line(obs.verdict) or self.focus
        elif obs.error:
            self.note = obs.text  # shown above the compiler's last word in the next fresh prompt
        self._converse(generation.text, tool_calls, action, obs)

        passed = bool(obs.verdict is not None and obs.verdict.passed)
        stop = (
            "passed"
            if passed
            else "max_attempts"
            if self.attempts >= self.policy.max_attempts
            else "max_steps"
            if len(self.steps) + 1 >= self.policy.max_steps
            else "token_budget"
            if self.tokens_in + self.tokens_out >= self.policy.token_budget
            else None
        )
        record = {
            "step": len(self.steps) + 1,
            "prompt": prompt,
            "prompt_view": self.view,
            "reply": generation.text,
            "tool_calls": tool_calls,
            "action": {"name": action.name, "args": action.args},
            "observation": obs.text,
            "error": obs.error,
            "code": self.workspace.code,
            "passed": passed if obs.verdict is not None else None,
            "signature": _str(obs.verdict.signature) if obs.verdict is not None else None,
            "tokens_in": generation.tokens_in,
            "tokens_out": generation.tokens_out,
            "finish_reason": generation.finish_reason,
            "stop": stop,
        }
        if generation.routed:  # a routing backend: which task adapter replied, how sure, and why
            record["adapter"] = generation.adapter
            record["route_confidence"] = generation.route_confidence
            record["route_signature"] = routed_on
            # the part of the feedback the router reads: a withdrawal asks the champion's
            # router with it where this query would have gone
            record["route_text"] = diagnostic_core(routed_text) if routed_text else None
        self.steps.append(record)
        if self.store is not None:
            self.store.record_step(
                self.episode_id,
                record,
                tokens_in=generation.tokens_in,
                tokens_out=generation.tokens_out,
            )
        if stop:
            self._finish(stop, passed=passed)

    def fail(self, reason: str) -> None:
        """End the episode on an error that is not the model's (a backend failure)."""
        self._finish("error", passed=False, status="error", error=reason)

    # -- results ------------------------------------------------------------------------------

    @property
    def steps_to_green(self) -> int | None:
        return len(self.steps) if self.passed else None

    @property
    def diff_unified(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.koan.buggy_code.splitlines(keepends=True),
                self.workspace.code.splitlines(keepends=True),
                f"a/{FILE}",
                f"b/{FILE}",
            )
        )

    @property
    def wall_clock_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def summary(self) -> dict:
        return {
            "task_id": self.koan.id,
            "family": self.koan.family,
            "pattern": self.koan.pattern,
            "passed": self.passed,
            "outcome": self.outcome,
            "error": self.error,
            "steps": len(self.steps),
            "steps_to_green": self.steps_to_green,
            "attempts": self.attempts,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "wall_clock_ms": self.wall_clock_ms,
            "error_signature": _str(self.start_signature),
            "first_error_signature": _str(self.first_signature),
            "final_error_signature": _str(self.final_signature),
        }

    # -- internals ----------------------------------------------------------------------------

    def _opening(self) -> list[dict]:
        """The opening messages. A program too long for the model's context is never cut
        silently: it is shown as a file viewer would, the lines around the error, narrower until
        the prompt fits; `view` says what was shown (and "cut" when even that did not fit, or the
        edit format rewrites the whole file, so a part of it cannot be shown)."""
        feedback = f"{self.note}\n{self.feedback}" if self.note else self.feedback

        def messages(code: str) -> list[dict]:
            return self.template.messages(
                self.koan, code, feedback, self.hints, self.edit_format.name, self.protocol
            )

        full = messages(self.workspace.code)
        self.view = "whole"
        if self.fits is None or self.fits(full):
            return full
        self.view = "cut"
        if self.edit_format.name == "whole_file":
            return full
        for radius in WINDOW_RADII:
            code, shown = code_window(self.workspace.code, self.focus, radius)
            windowed = messages(code)
            if self.fits(windowed):
                self.view = shown
                return windowed
        return full

    def _converse(
        self, text: str, tool_calls: list[dict], action: Action, obs: Observation
    ) -> None:
        if self.protocol == "edit":
            return
        if self.protocol == "tools" and action.call_id:
            call = {
                "id": action.call_id,
                "type": "function",
                "function": {"name": action.name, "arguments": _json(action.args)},
            }
            self.messages.append({"role": "assistant", "content": text, "tool_calls": [call]})
            self.messages.append(
                {"role": "tool", "tool_call_id": action.call_id, "content": obs.text}
            )
            return
        self.messages.append({"role": "assistant", "content": text})
        self.messages.append(
            {"role": "user", "content": self.template.render_observation(obs.text)}
        )

    def _finish(
        self, outcome: str, passed: bool, status: str = "done", error: str | None = None
    ) -> None:
        self.done, self.passed, self.outcome, self.error = True, passed, outcome, error
        if passed:
            self.final_signature = None
        if self.store is not None and self.episode_id is not None:
            self.store.finish_episode(
                self.episode_id,
                passed,
                status=status,
                error=error,
                steps_to_green=self.steps_to_green,
                diff_unified=self.diff_unified,
                wall_clock_ms=self.wall_clock_ms,
                first_error_signature=_str(self.first_signature),
                final_error_signature=_str(self.final_signature),
            )


def _str(signature) -> str | None:
    return None if signature is None else str(signature)


def _json(args: dict) -> str:
    import json

    return json.dumps(args, ensure_ascii=False)


def solve(
    koan: Koan,
    llm: LLM,
    sandbox: Checker,
    template: PromptTemplate,
    edit_format: EditFormat,
    protocol: str = "edit",
    policy: Policy | None = None,
    store: EpisodeSink | None = None,
    **episode_fields: Any,
) -> KoanRun:
    """One koan, start to finish: the loop in its plainest form."""
    fits = prompt_fits(llm, policy or Policy())
    run = KoanRun(
        koan, sandbox, template, edit_format, protocol, policy, store, fits, **episode_fields
    ).start()
    while not run.done:
        try:
            generation = llm.generate([run.prompt()], **options_for(llm, [run]))[0]
        except Exception as e:
            if isinstance(e, BackendUnreachable):
                run.fail(str(e))
                raise
            run.fail(f"{type(e).__name__}: {e}".splitlines()[0])
            break
        run.step(generation)
    return run


def run_koans(
    koans: Iterable[Koan],
    make_run: Callable[[Koan], KoanRun],
    llm: LLM,
    concurrency: int = 8,
    workers: int = 2,
    on_done: Callable[[KoanRun], None] | None = None,
) -> list[KoanRun]:
    """Many koans in lockstep: up to `concurrency` live episodes, one generate() call per step for
    all of them (batched by hf, concurrent requests over HTTP); a finished one makes room for the
    next koan. Sandbox calls of one step run on `workers` threads."""
    if concurrency < 1:  # no room for any episode: the loop would spin forever
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    pending: list[Koan] = list(koans)[::-1]
    live: list[KoanRun] = []
    finished: list[KoanRun] = []

    def done(run: KoanRun) -> None:
        finished.append(run)
        if on_done is not None:
            on_done(run)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            while pending or live:
                fresh = []
                while pending and len(live) + len(fresh) < concurrency:
                    fresh.append(make_run(pending.pop()))
                for run in pool.map(KoanRun.start, fresh):
                    (done if run.done else live.append)(run)
                if not live:
                    continue
                batch = live
                options = options_for(llm, batch)
                try:
                    generations = llm.generate([r.prompt() for r in batch], **options)
                except Exception as e:
                    reason = f"{type(e).__name__}: {e}".splitlines()[0]
                    for run in batch:
                        run.fail(reason)
                        done(run)
                    if isinstance(e, BackendUnreachable):
                        raise
                    live = []
                    continue
                list(
                    pool.map(
                        lambda pair: pair[0].step(pair[1]), zip(batch, generations, strict=True)
                    )
                )
                live = []
                for run in batch:
                    (done if run.done else live.append)(run)
        except KeyboardInterrupt:  # stopped (sleepy.stop): wait only for the steps under way
            pool.shutdown(cancel_futures=True)
            raise
    return finished


def prompt_fits(llm: LLM, policy: Policy) -> Callable[[list[dict]], bool] | None:
    """Whether a prompt leaves the model room for a reply (`KoanRun.fits`); None when the
    backend does not say how long its context is."""
    if not llm.context:
        return None

    def fits(messages: list[dict]) -> bool:
        n = llm.prompt_tokens(messages)
        return n is None or n + policy.max_new_tokens <= llm.context

    return fits


def options_for(llm: LLM, runs: list[KoanRun]) -> dict:
    """One generate() call's options; a routing backend also gets each run's current error
    signature and the feedback the agent is shown (rustc's message and the lines it quotes),
    from which it picks the task adapter that learned that kind of mistake."""
    options = runs[0].generation_options()
    if llm.supports_routing:
        options["signatures"] = [_str(r.final_signature) for r in runs]
        options["route_texts"] = [r.feedback or None for r in runs]
    return options


def policy_from(cfg: Any) -> Policy:
    """A Policy from a config node (unknown keys are ignored: the node holds more than policy)."""
    keys = Policy.__dataclass_fields__
    return Policy(**{k: cfg[k] for k in keys if k in cfg and cfg[k] is not None})


__all__: Sequence[str] = ["KoanRun", "Policy", "policy_from", "run_koans", "solve"]
