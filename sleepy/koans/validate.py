"""Koan validation: the buggy code fails exactly as declared, the fix passes, and the set is clean.

One koan is checked with `validate_koan`; a corpus and its frozen evalset with `validate_paths`,
which also finds duplicates, edited frozen koans and evalset koans that leaked into the corpus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sleepy.config import EVALSETS_DIR, KOANS_DIR
from sleepy.files import write_atomic
from sleepy.koan.model import Koan, KoanError, known_hashes, load_koan, parse_frozen
from sleepy.sandbox import Sandbox, run_batch
from sleepy.sandbox.harness import bug_in_tests
from sleepy.sandbox.text import printable

# the corpus and the frozen suite sleepy runs on (a checkout's own, or the copy a wheel carries)
DEFAULT_PATHS = (KOANS_DIR, EVALSETS_DIR / "frozen.json")
# statuses that say more about a loaded machine than about the koan: worth one more try
TRANSIENT = ("timeout", "killed", "memory")


def one_line(text: str, limit: int = 200) -> str:
    """`text` on one printable line of at most `limit` characters: reasons quote what programs
    print, and they are shown on a terminal."""
    text = " ".join(printable(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_error(result) -> str:
    e = result.errors[0]
    return one_line(f"{e.code or 'error'}: {e.message}")


def check_buggy(koan: Koan, sandbox) -> str | None:
    """None if `buggy_code` fails the way the koan says, else the reason it does not."""
    if bug_in_tests(koan.buggy_code, koan.correct_code):
        return (
            "buggy_code's tests differ from correct_code's: the bug must be in the code under test"
        )
    if koan.kind == "compile":
        declared = f"{koan.expected_code} error" if koan.expected_code else "error without a code"
        result = sandbox.check(koan.buggy_code, koan.edition)
        if not result.errors and "#[test]" in koan.buggy_code:
            # an error inside `#[cfg(test)]` code only shows when the test harness is built
            result = sandbox.test(koan.buggy_code, koan.edition)
        if not result.errors:
            if result.status not in ("ok", "compile_error"):
                return f"buggy_code: sandbox status {result.status} ({one_line(result.detail)})"
            return f"buggy_code compiles without errors (declared {declared})"
        matching = [e for e in result.errors if e.code == koan.expected_code]
        if not matching:
            codes = ", ".join(sorted({e.code for e in result.errors if e.code})) or "uncoded errors"
            return f"buggy_code fails with {codes}, not the declared {declared} ({_first_error(result)})"
        if not any(koan.expected_error in e.message for e in matching):
            return (
                f"buggy_code's {declared} says '{one_line(matching[0].message)}', "
                f"which does not contain expected_error '{koan.expected_error}'"
            )
        return None
    result = sandbox.test(koan.buggy_code, koan.edition)
    if result.errors:
        return f"buggy_code of a test koan must compile, but: {_first_error(result)}"
    if not result.failed_tests:
        if result.status == "ok":
            return f"buggy_code passes all its tests ({len(result.passed_tests)} passed)"
        return f"buggy_code: sandbox status {result.status} ({one_line(result.detail)}), not a failing test"
    if not any(koan.expected_error in msg for msg in result.failed_tests.values()):
        name, msg = next(iter(result.failed_tests.items()))
        return (
            f"no failing test's panic message contains expected_error '{koan.expected_error}' "
            f"({name}: {one_line(msg, 120)})"
        )
    return None


def check_correct(koan: Koan, sandbox) -> str | None:
    """None if `correct_code` passes the koan (the sandbox's verdict), else the reason."""
    if koan.has_main and koan.expected_stdout is None and not koan.stdout_varies:
        return "expected_stdout missing (fill it in with `sleepy koans validate --fill-stdout`)"
    verdict = sandbox.verdict(koan, koan.correct_code)
    if verdict.passed:
        return None
    return f"correct_code does not pass ({verdict.status}): {one_line(verdict.feedback(400))}"


# reading the clock: the output differs between runs even when two runs in a row agree
_CLOCK_RE = re.compile(r"\b(SystemTime|Instant)::now\b|\bchrono::|\bLocal::now\b|\bUtc::now\b")
RUNS = 3  # a correct program is run this many times to see whether its output varies


def stdout_varies(code: str, sandbox, edition: str = "2021") -> str | None:
    """Why the program's output cannot be compared (it reads the clock, or differed between
    runs), or None when its runs agree. Import keeps such a koan without an output check;
    mutate leaves it out. An `expected_stdout` taken from one run of it would fail some later
    validations and not others."""
    if _CLOCK_RE.search(code):
        return "it reads the clock"
    outputs = {sandbox.run(code, edition).stdout for _ in range(RUNS)}
    return f"its output differed between {RUNS} runs" if len(outputs) > 1 else None


def validate_koan(koan: Koan, sandbox) -> str | None:
    """None if the koan is sound, else a one-line reason naming what is wrong."""
    return check_buggy(koan, sandbox) or check_correct(koan, sandbox)


def fill_expected_stdout(koan: Koan, sandbox) -> Koan:
    """The koan with `expected_stdout` set to what `correct_code` prints, if it has a `main` and
    no `expected_stdout` yet. Unchanged if the program does not run cleanly: validation says why."""
    if not koan.has_main or koan.expected_stdout is not None or koan.stdout_varies:
        return koan
    result = sandbox.run(koan.correct_code, koan.edition)
    return replace(koan, expected_stdout=result.stdout) if result.status == "ok" else koan


def validate_candidate(koan: Koan, sandbox) -> tuple[Koan, str | None]:
    """Fill in `expected_stdout` and validate a fresh koan (generated or imported) in one pass.

    The correct code's verdict is taken once against an empty expected output: a pass or a
    `wrong_output` verdict means it compiled and passed its tests, and its stdout is the answer.
    That saves a build per koan, which matters when generating thousands.
    """
    reason = check_buggy(koan, sandbox)
    if reason:
        return koan, reason
    if koan.has_main and koan.expected_stdout is None and not koan.stdout_varies:
        verdict = sandbox.verdict(replace(koan, expected_stdout=""), koan.correct_code)
        if verdict.passed or verdict.status == "wrong_output":
            return replace(koan, expected_stdout=verdict.stdout), None
        return (
            koan,
            f"correct_code does not pass ({verdict.status}): {one_line(verdict.feedback(400))}",
        )
    return koan, check_correct(koan, sandbox)


# -- whole corpora -------------------------------------------------------------------------------


@dataclass
class Entry:
    """A koan as found on disk: where it came from and whether it belongs to a frozen evalset."""

    koan: Koan | None
    where: str
    in_evalset: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.koan.id if self.koan else self.where


@dataclass
class ValidationReport:
    entries: list[Entry]

    @property
    def total(self) -> int:
        return len(self.entries)

    @property
    def failed(self) -> list[dict]:
        return [{"id": e.id, "reason": "; ".join(e.reasons)} for e in self.entries if e.reasons]

    @property
    def ok(self) -> int:
        return self.total - len(self.failed)

    def to_json(self) -> dict:
        return {"total": self.total, "ok": self.ok, "failed": self.failed}


def _is_evalset(data) -> bool:
    return isinstance(data, dict) and "koans" in data


def collect(paths: Iterable[str | Path]) -> list[Entry]:
    """Every koan under `paths`, one Entry each; a file that does not load becomes an Entry with
    its load error, so one bad file does not hide the rest."""
    entries: list[Entry] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.rglob("*.json"))
        elif p.is_file():
            files = [p]
        else:
            entries.append(Entry(None, str(p), False, [f"{p}: no such koan file or folder"]))
            continue
        for f in files:
            try:
                data = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                msg = f"{f}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
                entries.append(Entry(None, str(f), False, [msg]))
                continue
            if not _is_evalset(data):
                try:
                    entries.append(Entry(load_koan(f), str(f), False))
                except KoanError as e:
                    entries.append(Entry(None, str(f), False, [str(e)]))
                continue
            items = data["koans"]
            if not isinstance(items, list):
                entries.append(Entry(None, str(f), True, [f"{f}: field 'koans': must be a list"]))
                continue
            for i, item in enumerate(items):
                where = f"{f}[{i}]"
                try:
                    entries.append(Entry(parse_frozen(item, where), where, True))
                except KoanError as e:
                    entries.append(Entry(None, where, True, [str(e)]))
    return entries


def check_collection(entries: list[Entry], corpus_hashes: set[str] = frozenset()) -> None:
    """Add reasons for duplicate ids and hashes, and for evalset koans that are also in the
    corpus (`corpus_hashes` adds corpus koans that were not loaded, e.g. koans/ when only the
    evalset is being validated)."""
    by_id: dict[str, Entry] = {}
    by_hash: dict[tuple[bool, str], Entry] = {}
    corpus_by_hash = {e.koan.content_hash: e for e in entries if e.koan and not e.in_evalset}
    for e in entries:
        if e.koan is None:
            continue
        first = by_id.setdefault(e.koan.id, e)
        if first is not e:
            e.reasons.append(f"duplicate id (also {first.where})")
        h = e.koan.content_hash
        first = by_hash.setdefault((e.in_evalset, h), e)
        if first is not e:
            e.reasons.append(f"duplicate content hash {h} (same code as {first.id})")
        if e.in_evalset and (h in corpus_by_hash or h in corpus_hashes):
            other = corpus_by_hash.get(h)
            e.reasons.append(
                f"evalset koan is also in the corpus (content hash {h}"
                + (f", {other.id})" if other else ")")
            )


_SANDBOX = None


def shared_sandbox():
    """One Sandbox for the batch workers of this process (its calls keep no shared state)."""
    global _SANDBOX
    if _SANDBOX is None:
        _SANDBOX = Sandbox()
    return _SANDBOX


def _validate_one(koan: Koan) -> str | None:
    return validate_koan(koan, shared_sandbox())


def _fill_one(koan: Koan) -> Koan:
    return fill_expected_stdout(koan, shared_sandbox())


def validate_paths(
    paths: Iterable[str | Path] = DEFAULT_PATHS,
    corpus_dir: str | Path | None = "koans",
    workers: int | None = None,
) -> ValidationReport:
    """Validate every koan under `paths` with rustc, in parallel, plus the set-wide checks."""

    paths = [Path(p) for p in paths]
    entries = collect(paths)
    corpus_hashes: set[str] = set()
    if corpus_dir is not None and any(e.in_evalset for e in entries):
        corpus_dir = Path(corpus_dir)
        if not any(p.resolve() == corpus_dir.resolve() for p in paths):
            corpus_hashes = known_hashes(corpus_dir)
    check_collection(entries, corpus_hashes)
    loaded = [e for e in entries if e.koan is not None]
    reasons = run_batch(
        _validate_one, [e.koan for e in loaded], workers=workers, desc="validating koans"
    )
    for e, reason in zip(loaded, reasons, strict=True):
        if reason:
            e.reasons.insert(0, reason)
    return ValidationReport(entries)


def fill_stdout_files(paths: Iterable[str | Path], workers: int | None = None) -> list[Path]:
    """Write `expected_stdout` into koan files (not evalsets: those are frozen) that lack it.
    Returns the files changed."""
    todo = [
        e
        for e in collect(paths)
        if e.koan is not None
        and not e.in_evalset
        and e.koan.has_main
        and e.koan.expected_stdout is None
    ]
    filled = run_batch(_fill_one, [e.koan for e in todo], workers=workers, desc="running main")
    changed = []
    for e, koan in zip(todo, filled, strict=True):
        if koan.expected_stdout is None:
            continue
        path = Path(e.where)
        data = json.loads(path.read_text())
        data["expected_stdout"] = koan.expected_stdout
        write_atomic(path, json.dumps(data, indent=2) + "\n")  # a failed write keeps the koan
        changed.append(path)
    return changed


def family_of(entry: Entry) -> str:
    if entry.koan:
        return entry.koan.family
    m = re.search(r"(?:^|/)([a-z_]+)/[^/]+\.json$", entry.where)
    return m.group(1) if m else "?"
