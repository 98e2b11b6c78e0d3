"""The agent's environment: the koan's crate (one file, src/main.rs, held in memory) and the
actions on it. Every check goes to the stateless sandbox with the current code."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sleepy.day.protocol import Action, FormatError
from sleepy.day.seams import Checker
from sleepy.koan.model import Koan
from sleepy.prompts.edits import FILE, EditError, EditFormat, UnifiedDiff, WholeFile
from sleepy.sandbox import Verdict
from sleepy.sandbox.harness import koan_tests, with_koan_tests


def focus_line(verdict: Verdict) -> int | None:
    """The line of the program a verdict points at: its first error's, else the first
    `src/main.rs:LINE` its feedback names (a panic's location), else None."""
    if verdict.errors and verdict.errors[0].line:
        return verdict.errors[0].line
    m = re.search(rf"{re.escape(FILE)}:(\d+)", verdict.feedback())
    return int(m.group(1)) if m else None


def code_window(code: str, line: int | None, radius: int) -> tuple[str, str]:
    """What a file viewer shows of a long program: `radius` lines each side of `line` (the top
    when None), verbatim so an edit can quote them, and a line saying what is left out. Returns
    (the text, what was shown: "lines a-b of n")."""
    lines = code.splitlines()
    n = len(lines)
    centre = min(max(line or 1, 1), max(n, 1))
    lo, hi = max(1, centre - radius), min(n, centre + radius)
    out = [f"// ... lines 1-{lo - 1} not shown ..."] if lo > 1 else []
    out += lines[lo - 1 : hi]
    out += [f"// ... lines {hi + 1}-{n} not shown ..."] if hi < n else []
    return "\n".join(out) + "\n", f"lines {lo}-{hi} of {n}"


@dataclass
class Observation:
    text: str
    verdict: Verdict | None = None  # the sandbox's verdict when the action ran it
    attempt: bool = (
        False  # the action tried a fix (an edit or a submit): counts toward max_attempts
    )
    error: bool = False  # the reply or its edit was unusable (format or edit error)


class Workspace:
    """`execute(action) -> Observation`; the code changes only through the edit actions."""

    def __init__(
        self,
        koan: Koan,
        sandbox: Checker,
        edit_format: EditFormat,
        feedback_chars: int | None = None,
        max_output: int = 3000,
    ):
        self.koan, self.sandbox, self.edit_format = koan, sandbox, edit_format
        self.code = koan.buggy_code
        self.feedback_chars, self.max_output = feedback_chars, max_output

    def execute(self, action: Action) -> Observation:
        run = getattr(self, f"do_{action.name}", None)
        if run is None:
            return Observation(f"unknown action '{action.name}'", error=True)
        try:
            return run(**action.args)
        except TypeError as e:  # a tool call with missing or unknown arguments
            return Observation(f"bad arguments for {action.name}: {e}", error=True)
        except (EditError, FormatError) as e:
            return Observation(f"edit not applied: {e}", attempt=True, error=True)

    def verdict(self):
        return self.sandbox.verdict(self.koan, self.code)

    def feedback(self, verdict) -> str:
        if verdict.passed:
            return ""
        return (
            verdict.feedback()
            if self.feedback_chars is None
            else verdict.feedback(self.feedback_chars)
        )

    def _after_edit(self, new_code: str) -> Observation:
        self.code = new_code
        v = self.verdict()
        text = (
            "The fix passes: it compiles, the tests pass and the output is right."
            if v.passed
            else self.feedback(v)
        )
        return Observation(text, verdict=v, attempt=True)

    # -- actions ------------------------------------------------------------------------------

    def do_edit(self, reply: str) -> Observation:
        return self._after_edit(self.edit_format.apply(self.code, reply))

    def do_apply_patch(self, patch: str) -> Observation:
        return self._after_edit(UnifiedDiff().apply(self.code, patch))

    def do_write_file(self, content: str, path: str = FILE) -> Observation:
        if path.strip().lstrip("./") != FILE:
            return Observation(f"cannot write {path}: the crate has only {FILE}", error=True)
        if "```" in content:  # a model that fenced the content inside the action
            content = WholeFile().apply(self.code, content)
        return self._after_edit(content)

    def do_open_file(self, path: str = FILE) -> Observation:
        if path.strip().lstrip("./") not in (FILE, "main.rs"):
            return Observation(f"no such file: {path} (the crate has only {FILE})", error=True)
        lines = self.code.splitlines()
        return Observation("\n".join(f"{i:4} | {s}" for i, s in enumerate(lines, 1)))

    def do_search(self, pattern: str) -> Observation:
        try:
            rx = re.compile(pattern)
        except re.error:
            rx = re.compile(re.escape(pattern))
        hits = [
            f"{i:4} | {s}"
            for i, s in enumerate(self.code.splitlines(), 1)
            if pattern in s or rx.search(s)
        ]
        return Observation("\n".join(hits) if hits else f"no line of {FILE} matches `{pattern}`")

    def do_run_check(self) -> Observation:
        r = self.sandbox.check(self.code, self.koan.edition)
        if r.errors:
            return Observation(self._clip("\n".join(d.rendered for d in r.errors)))
        if r.status not in ("ok", "compile_error"):
            return Observation(f"check: {r.status}\n{self._clip(r.stderr)}")
        warnings = len(r.diagnostics) - len(r.errors)
        return Observation(
            "compiles without errors" + (f" ({warnings} warnings)" if warnings else "")
        )

    def do_run_tests(self) -> Observation:
        # the koan's tests, as the verdict runs them, not whatever the code's test module holds
        tests = koan_tests(self.koan.correct_code)
        r = self.sandbox.test(with_koan_tests(self.code, tests), self.koan.edition)
        if r.errors:
            return Observation(self._clip("\n".join(d.rendered for d in r.errors)))
        head = f"{len(r.passed_tests)} passed, {len(r.failed_tests)} failed ({r.status})"
        fails = "\n".join(f"{name}: {msg}" for name, msg in r.failed_tests.items())
        missing = [n for n in tests.names if n not in r.passed_tests and n not in r.failed_tests]
        if missing:
            fails += "\ndid not run: " + ", ".join(missing)
        return Observation(self._clip(f"{head}\n{fails}".strip()))

    def do_submit(self) -> Observation:
        v = self.verdict()
        text = (
            "Submitted: the fix passes."
            if v.passed
            else "Submitted, but the verdict fails:\n" + self.feedback(v)
        )
        return Observation(text, verdict=v, attempt=True)

    def _clip(self, text: str) -> str:
        return text if len(text) <= self.max_output else text[: self.max_output] + "\n[... cut]"
