"""Koans from two trees of Rust files, an exercise and its solution at the same relative path.

The sandbox decides what kind of koan each pair is: a compile error in the buggy file makes a
compile koan (its code and message become `expected_code` and `expected_error`; an error rustc
gives no code for, a parse or macro error, is keyed by its normalized message), a failing test
makes a test koan. The family comes from `--family`, else a folder named after one, else the error
itself (its code and message) or the folder's topic, and the report says which and why. A fixed
program whose output differs between runs is imported without an output check
(`stdout_varies`). Every koan is validated as `sleepy koans validate` would before it is written;
pairs that cannot be koans are skipped with the reason, and so are files that are not regular UTF-8
files (a symlink, a FIFO, a folder named `x.rs`: see sleepy.koans.sources).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from sleepy.koan.model import (
    FAMILIES,
    MAX_ID_LEN,
    Koan,
    KoanError,
    capped_id,
    known_hashes,
    save_koan,
)
from sleepy.koans.sources import leading_comment, read_text, read_under, walk_files
from sleepy.koans.validate import (
    one_line,
    shared_sandbox,
    stdout_varies,
    validate_candidate,
    validate_koan,
)
from sleepy.sandbox import run_batch
from sleepy.sandbox.signatures import normalize_message


@dataclass
class ImportReport:
    koans: list[Koan] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    families: dict[str, str] = field(default_factory=dict)  # relative path -> why that family

    def skipped_by_reason(self) -> Counter:
        """How many pairs were skipped for each kind of reason (the reason's lead words)."""
        return Counter(reason_kind(r) for _, r in self.skipped)


def reason_kind(reason: str) -> str:
    """`fixed file does not pass (compile_error): ...` -> `fixed file does not pass`."""
    return re.split(r"[:(]", reason, maxsplit=1)[0].strip()


@dataclass(frozen=True)
class Pair:
    rel: str
    family: str | None  # None: inferred from the buggy file's error
    buggy_code: str
    fixed_code: str
    why: str = ""  # how the family was chosen


# -- which family ----------------------------------------------------------------------------------

# What an error's message says about the kind of mistake, strongest first. A message rule beats the
# code: E0277 is a missing trait bound, but "cannot be sent between threads safely" is concurrency.
MESSAGE_RULES: tuple[tuple[str, str], ...] = (
    (r"between threads safely|may outlive the current function|MutexGuard|\bArc<|\bMutex<", "concurrency"),
    (r"`\?` operator|expected `(Result|Option)<|found `(Result|Option)<|\bunwrap\b", "result_handling"),
    (r"lifetime|does not live long enough|dropped while borrowed", "lifetimes"),
    (r"cannot assign twice to immutable|not declared as mutable|behind a `&` reference", "mutability"),
    (
        r"moved value|cannot borrow .* (more than once|because it is also borrowed)|cannot move out"
        r"|referencing data owned by the current function",
        "borrow_checker",
    ),
    (r"closure|iterator|\bFn(Mut|Once)?\b|collect", "closures_iterators"),
    (r"trait bound|doesn't implement|cannot be applied to type|cannot be formatted", "trait_bounds"),
    (r"mismatched types", "type_mismatch"),
)  # fmt: skip

# Topic folders of public exercise sets, by the family whose mistakes they teach.
TOPICS: dict[str, str] = {
    "move_semantics": "borrow_checker",
    "ownership": "borrow_checker",
    "borrowing": "borrow_checker",
    "references": "borrow_checker",
    "variables": "mutability",
    "mutability": "mutability",
    "lifetimes": "lifetimes",
    "traits": "trait_bounds",
    "generics": "trait_bounds",
    "error_handling": "result_handling",
    "errors": "result_handling",
    "options": "result_handling",
    "results": "result_handling",
    "threads": "concurrency",
    "concurrency": "concurrency",
    "smart_pointers": "concurrency",
    "iterators": "closures_iterators",
    "closures": "closures_iterators",
    "primitive_types": "type_mismatch",
    "functions": "type_mismatch",
    "conversions": "type_mismatch",
    "strings": "type_mismatch",
    "types": "type_mismatch",
    "if": "type_mismatch",
}


def _code_families() -> dict[str, str]:
    """rustc code -> the family whose generator patterns use it most (ties: FAMILIES order)."""
    from sleepy.koans.generator import patterns

    counts: dict[str, Counter] = {}
    for family in FAMILIES:
        for p in patterns(family):
            if p.expected_code:
                counts.setdefault(p.expected_code, Counter())[family] += 1
    return {code: max(c, key=lambda f: (c[f], -FAMILIES.index(f))) for code, c in counts.items()}


def infer_family(rel: str, code: str | None, message: str) -> tuple[str | None, str]:
    """The family a pair's error points to, and why: its message, its code, or its folder's topic.
    (None, why not) when none of them says."""
    short = one_line(message, 80)
    for pattern, family in MESSAGE_RULES:
        if re.search(pattern, message):
            return family, f"from the error message '{short}'"
    if code and code in (codes := _code_families()):
        return codes[code], f"from {code} ('{short}')"
    for part in Path(rel).parts[:-1]:
        topic = part.lower().strip("0123456789_-")
        if topic in TOPICS:
            return TOPICS[topic], f"from the folder '{part}' (the error '{short}' names none)"
    return None, f"the error ({code or 'no code'}: '{short}') and the folders name no family"


def family_for(rel: Path, family: str | None) -> tuple[str | None, str]:
    """The family --family or the first folder gives, with why; (None, "") to infer it later."""
    if family is not None:
        if family not in FAMILIES:
            raise KoanError(f"--family: '{family}' is not one of {list(FAMILIES)}")
        return family, "from --family"
    if len(rel.parts) > 1 and rel.parts[0] in FAMILIES:
        return rel.parts[0], f"from the folder '{rel.parts[0]}'"
    return None, ""


# -- one pair ---------------------------------------------------------------------------------------


def koan_from_pair(pair: Pair, sandbox) -> tuple[Koan | None, str | None, str]:
    """(the koan this pair makes, validated, None, why its family) or (None, why not, "")."""
    checked = sandbox.check(pair.buggy_code)
    if not checked.errors and "#[test]" in pair.buggy_code:
        checked = sandbox.test(pair.buggy_code)
    if checked.errors:
        error = checked.errors[0]
        kind, code, expected = "compile", error.code, error.message
        what = f"{code or 'error'} {error.message}"
        # keyed by the error: its code, or its normalized message when rustc gives no code
        key = code.lower() if code else "error_" + _slug(normalize_message(error.message))[:48]
    else:
        # with tests, `checked` already is the test run
        if not checked.failed_tests:
            return (
                None,
                (
                    "buggy file already passes: it compiles and no test fails "
                    "(a koan needs a compile error or a failing test)"
                ),
                "",
            )
        name, message = next(iter(checked.failed_tests.items()))
        first_line = next((x.strip() for x in message.splitlines() if x.strip()), "")
        if not first_line:
            return None, f"test {name} fails without a panic message to match", ""
        kind, code, expected, key = "test", None, first_line, "failing_test"
        what = f"test {name} fails: {first_line}"
    family, why = pair.family, pair.why
    if family is None:
        family, why = infer_family(pair.rel, code, expected)
        if family is None:
            return None, f"no family: {why}; pass --family", ""
    # room for "imp-", "-" and the 8-character content hash within MAX_ID_LEN
    slug = capped_id(_slug(pair.rel.removesuffix(".rs")), MAX_ID_LEN - 13)
    description = leading_comment(pair.buggy_code) or f"Imported from {pair.rel}: {what}"
    try:
        koan = Koan.from_dict(
            {
                "id": "imp",
                "family": family,
                "description": description,
                "buggy_code": pair.buggy_code,
                "correct_code": pair.fixed_code,
                "expected_error": expected.strip().splitlines()[0],
                "kind": kind,
                "expected_code": code,
                "pattern": f"rustc_{key}" if kind == "compile" else key,
                "source": "imported",
                "meta": {"imported_from": pair.rel, "family_from": why},
            },
            where=pair.rel,
        )
    except KoanError as e:
        return None, str(e), ""
    koan = Koan.from_dict(koan.to_dict() | {"id": f"imp-{slug}-{koan.content_hash[:8]}"}, pair.rel)
    if koan.has_main and (varies := stdout_varies(koan.correct_code, sandbox, koan.edition)):
        koan = replace(koan, stdout_varies=True, meta=koan.meta | {"stdout_varies": varies})
    koan, reason = validate_candidate(koan, sandbox)
    # then exactly what `sleepy koans validate` will check, before anything is written
    reason = reason or validate_koan(koan, sandbox)
    if reason:
        return None, reason.replace("correct_code", "fixed file", 1), ""
    return koan, None, why


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _import_one(pair: Pair) -> tuple[Koan | None, str | None, str]:
    return koan_from_pair(pair, shared_sandbox())


def import_pairs(
    buggy_dir: str | Path,
    fixed_dir: str | Path,
    out: str | Path | None = None,
    family: str | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Koans from matching `.rs` files under `buggy_dir` and `fixed_dir`, validated, then saved
    under `out` (a koan whose code is already there is skipped)."""

    buggy_dir, fixed_dir = Path(buggy_dir), Path(fixed_dir)
    for d, flag in ((buggy_dir, "--buggy-dir"), (fixed_dir, "--fixed-dir")):
        if not d.is_dir():
            raise KoanError(f"{flag}: {d} is not a folder")
    report = ImportReport()
    pairs = []
    files, report.skipped = walk_files(buggy_dir, (".rs",))
    for path in files:
        rel = path.relative_to(buggy_dir)
        buggy, why_not = read_text(path)
        if buggy is None:
            report.skipped.append((str(rel), why_not))
            continue
        fixed, why_not = read_under(fixed_dir, str(rel))
        if fixed is None:
            if why_not == "does not exist":
                why_not = f"no fixed file: {fixed_dir / rel} does not exist"
            else:
                why_not = f"fixed file {why_not}"
            report.skipped.append((str(rel), why_not))
            continue
        chosen, why = family_for(rel, family)
        pairs.append(Pair(str(rel), chosen, buggy, fixed, why))
    if not pairs and not report.skipped:
        raise KoanError(f"--buggy-dir: no .rs files under {buggy_dir}")
    seen = known_hashes(out) if out is not None else set()
    for pair, (koan, reason, why) in zip(
        pairs, run_batch(_import_one, pairs, workers=workers, desc="importing"), strict=True
    ):
        if koan is None:
            report.skipped.append((pair.rel, reason))
        elif koan.content_hash in seen:
            report.skipped.append((pair.rel, "same code as another koan (imported or in --out)"))
        else:
            seen.add(koan.content_hash)
            report.koans.append(koan)
            report.families[pair.rel] = why
    for koan in report.koans if out is not None else ():
        save_koan(koan, out)
    return report
