"""Koans from two trees of Rust files, an exercise and its solution at the same relative path.

The sandbox decides what kind of koan each pair is: a compile error in the buggy file makes a
compile koan (its code and message become `expected_code` and `expected_error`), a failing test
makes a test koan. Pairs that cannot be koans are skipped with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sleepy.koans.model import FAMILIES, Koan, KoanError, save_koan
from sleepy.koans.validate import one_line, shared_sandbox, validate_candidate
from sleepy.sandbox import run_batch


@dataclass
class ImportReport:
    koans: list[Koan] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


@dataclass(frozen=True)
class Pair:
    rel: str
    family: str
    buggy_code: str
    fixed_code: str


def family_for(rel: Path, family: str | None) -> str:
    if family is not None:
        if family not in FAMILIES:
            raise KoanError(f"--family: '{family}' is not one of {list(FAMILIES)}")
        return family
    if len(rel.parts) > 1 and rel.parts[0] in FAMILIES:
        return rel.parts[0]
    raise KoanError(
        f"{rel}: no family: pass --family, or put the file under a folder named after one "
        f"of {list(FAMILIES)}"
    )


def _description(code: str, rel: str, what: str) -> str:
    # a leading comment block in the exercise says what it is about better than we can
    lines = []
    for line in code.splitlines():
        s = line.strip()
        if s.startswith("//"):
            lines.append(s.lstrip("/!").strip())
        elif s or lines:
            break
    text = " ".join(x for x in lines if x)
    return text or f"Imported from {rel}: {what}"


def koan_from_pair(pair: Pair, sandbox) -> tuple[Koan | None, str | None]:
    """The koan this pair makes, validated, or (None, why it cannot be one)."""
    checked = sandbox.check(pair.buggy_code)
    if not checked.errors and "#[test]" in pair.buggy_code:
        checked = sandbox.test(pair.buggy_code)
    if checked.errors:
        error = checked.errors[0]
        if not error.code:
            return None, f"buggy file's first error has no rustc code: {one_line(error.message)}"
        kind, code, expected = "compile", error.code, error.message
        what = f"{code} {error.message}"
    else:
        # with tests, `checked` already is the test run
        if not checked.failed_tests:
            return None, (
                "buggy file already passes: it compiles and no test fails "
                "(a koan needs a compile error or a failing test)"
            )
        name, message = next(iter(checked.failed_tests.items()))
        first_line = next((x.strip() for x in message.splitlines() if x.strip()), "")
        if not first_line:
            return None, f"test {name} fails without a panic message to match"
        kind, code, expected = "test", None, first_line
        what = f"test {name} fails: {first_line}"
    slug = re.sub(r"[^a-z0-9]+", "-", pair.rel.removesuffix(".rs").lower()).strip("-")
    pattern = f"rustc_{code.lower()}" if code else "failing_test"
    try:
        koan = Koan.from_dict(
            {
                "id": "imp",
                "family": pair.family,
                "description": _description(pair.buggy_code, pair.rel, what),
                "buggy_code": pair.buggy_code,
                "correct_code": pair.fixed_code,
                "expected_error": expected,
                "kind": kind,
                "expected_code": code,
                "pattern": pattern,
                "source": "imported",
                "meta": {"imported_from": pair.rel},
            },
            where=pair.rel,
        )
    except KoanError as e:
        return None, str(e)
    koan = Koan.from_dict(koan.to_dict() | {"id": f"imp-{slug}-{koan.content_hash[:8]}"}, pair.rel)
    koan, reason = validate_candidate(koan, sandbox)
    if reason:
        return None, reason.replace("correct_code", "fixed file", 1)
    return koan, None


def _import_one(pair: Pair) -> tuple[Koan | None, str | None]:
    return koan_from_pair(pair, shared_sandbox())


def import_pairs(
    buggy_dir: str | Path,
    fixed_dir: str | Path,
    out: str | Path | None = None,
    family: str | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Koans from matching `.rs` files under `buggy_dir` and `fixed_dir`, saved under `out`."""

    buggy_dir, fixed_dir = Path(buggy_dir), Path(fixed_dir)
    for d, flag in ((buggy_dir, "--buggy-dir"), (fixed_dir, "--fixed-dir")):
        if not d.is_dir():
            raise KoanError(f"{flag}: {d} is not a folder")
    report = ImportReport()
    pairs = []
    for path in sorted(buggy_dir.rglob("*.rs")):
        rel = path.relative_to(buggy_dir)
        fixed = fixed_dir / rel
        if not fixed.is_file():
            report.skipped.append((str(rel), f"no fixed file at {fixed}"))
            continue
        pairs.append(Pair(str(rel), family_for(rel, family), path.read_text(), fixed.read_text()))
    if not pairs and not report.skipped:
        raise KoanError(f"--buggy-dir: no .rs files under {buggy_dir}")
    seen: set[str] = set()
    for pair, (koan, reason) in zip(
        pairs, run_batch(_import_one, pairs, workers=workers, desc="importing"), strict=True
    ):
        if koan is None:
            report.skipped.append((pair.rel, reason))
        elif koan.content_hash in seen:
            report.skipped.append((pair.rel, "same code as another imported pair"))
        else:
            seen.add(koan.content_hash)
            report.koans.append(koan)
            if out is not None:
                save_koan(koan, out)
    return report
