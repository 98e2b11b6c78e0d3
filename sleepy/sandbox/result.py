"""What the sandbox reports: rustc diagnostics, test outcomes, the verdict on a candidate fix."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from sleepy.sandbox.signatures import ErrorSignature

STATUSES = (
    "ok", "compile_error", "test_failed", "runtime_error", "wrong_output",
    "timeout", "memory", "killed", "output_truncated", "denied",
)  # fmt: skip


@dataclass
class Diagnostic:
    level: str  # "error" | "warning" | "error: internal compiler error" | ...
    code: str | None  # "E0382", or None for errors without a code (syntax, linker)
    message: str
    line: int | None  # of the primary span
    column: int | None
    labels: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    rendered: str = ""  # rustc's human text, paths shown as src/main.rs


@dataclass
class SandboxResult:
    status: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    passed_tests: list[str] = field(default_factory=list)
    failed_tests: dict[str, str] = field(default_factory=dict)  # test name -> panic message
    stdout: str = ""
    stderr: str = ""
    wall_time: float = 0.0
    isolation: str = ""
    detail: str = ""  # one line saying why, for statuses other than ok
    compiled: list[str] = field(default_factory=list)  # cargo mode: targets rebuilt this call

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level.startswith("error")]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    passed: bool
    status: str
    signature: ErrorSignature | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    failed_tests: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    wall_time: float = 0.0
    passed_tests: list[str] = field(default_factory=list)
    expected_stdout: str | None = None
    stderr: str = ""
    detail: str = ""
    isolation: str = ""
    # the koan's tests that never reported a pass: the harness exited first, or they were gone
    missing_tests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level.startswith("error")]

    def feedback(self, max_chars: int = 1500) -> str:
        """What the model is shown: rustc's errors, failing tests, or the output mismatch."""
        if self.passed:
            return ""
        if self.status == "compile_error":
            parts = [d.rendered.strip() or d.message for d in self.errors]
            text = "\n\n".join(parts)
        elif self.status == "test_failed":
            parts = [f"test {name} failed:\n{msg}" for name, msg in self.failed_tests.items()]
            if self.missing_tests:
                parts.append("the koan's tests that did not run: " + ", ".join(self.missing_tests))
            text = "\n\n".join(parts) or self.detail
        elif self.status == "wrong_output":
            text = f"expected output:\n{self.expected_stdout}\ngot:\n{self.stdout}"
        elif self.status == "runtime_error":
            text = f"the program failed when run:\n{self.stderr.strip() or self.detail}"
        else:
            text = f"{self.status}: {self.detail}"
        if len(text) > max_chars:
            text = text[: max_chars - 20].rstrip() + "\n... (truncated)"
        return text

    def to_dict(self) -> dict:
        d = asdict(self)
        d["signature"] = str(self.signature) if self.signature else None
        d["signature_hash"] = self.signature.hash if self.signature else None
        return d


def parse_diagnostics(stderr: str) -> tuple[list[Diagnostic], str]:
    """rustc `--error-format=json` lines -> diagnostics, plus any non-JSON text (linker noise)."""
    diags, other = [], []
    for line in stderr.splitlines():
        if not line.startswith("{"):
            if line.strip():
                other.append(line)
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            other.append(line)
            continue
        diag = diagnostic_from_json(d)
        if diag is not None:
            diags.append(diag)
    return diags, "\n".join(other)


def diagnostic_from_json(d: dict) -> Diagnostic | None:
    if d.get("$message_type", "diagnostic") != "diagnostic" or "message" not in d:
        return None
    level, message = d.get("level", ""), d["message"]
    # rustc's closing summary lines are not diagnostics about the program
    if level in ("failure-note", "note", "help") or re.match(r"aborting due to", message):
        return None
    if level == "warning" and re.match(r"\d+ warnings? emitted", message):
        return None
    spans = d.get("spans") or []
    primary = next((s for s in spans if s.get("is_primary")), spans[0] if spans else None)
    suggestions = []
    for child in d.get("children") or []:
        for s in child.get("spans") or []:
            if s.get("suggested_replacement") is not None:
                suggestions.append(f"{child['message']}: `{s['suggested_replacement']}`")
        if child.get("level") == "help" and not child.get("spans"):
            suggestions.append(child["message"])
    return Diagnostic(
        level=level,
        code=(d.get("code") or {}).get("code"),
        message=message,
        line=primary["line_start"] if primary else None,
        column=primary["column_start"] if primary else None,
        labels=[s["label"] for s in spans if s.get("label")],
        suggestions=suggestions,
        rendered=d.get("rendered") or message,
    )


_TEST_LINE = re.compile(r"^test (\S+)(?: - should panic)? \.\.\. (ok|FAILED|ignored.*)$", re.M)
_SECTION = re.compile(r"^---- (\S+) stdout ----$", re.M)
_PANIC = re.compile(r"panicked at [^\n]*:\n(.*?)(?:\nnote: |\Z)", re.S)


_SUMMARY = re.compile(
    r"^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored;", re.M
)


def harness_summary(stdout: str) -> tuple[int, int, int] | None:
    """libtest's closing line as (passed, failed, ignored); None when the harness never wrote it
    (a test ended the process: `process::exit`, an abort), which no passing run does."""
    found = _SUMMARY.findall(stdout)
    if not found:
        return None
    passed, failed, ignored = (int(x) for x in found[-1])
    return passed, failed, ignored


def parse_test_output(stdout: str) -> tuple[list[str], dict[str, str]]:
    """libtest's plain output -> (passed test names, {failed test name: panic message})."""
    passed, failed = [], {}
    for name, outcome in _TEST_LINE.findall(stdout):
        if outcome == "ok":
            passed.append(name)
        elif outcome == "FAILED":
            failed[name] = ""
    sections = list(_SECTION.finditer(stdout))
    for i, m in enumerate(sections):
        end = (
            sections[i + 1].start()
            if i + 1 < len(sections)
            else stdout.find("\nfailures:\n", m.end())
        )
        body = stdout[m.end() : end if end != -1 else len(stdout)].strip("\n")
        panic = _PANIC.search(body)
        msg = panic.group(1).strip() if panic else body.strip()
        if m.group(1) in failed or not failed:
            failed[m.group(1)] = msg or "test failed"
    return passed, failed
