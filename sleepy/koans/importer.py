"""Koans from two trees of Rust files, an exercise and its solution at the same relative path.

The sandbox decides what kind of koan each pair is: a compile error in the buggy file makes a
compile koan (its code and message become `expected_code` and `expected_error`; an error rustc
gives no code for, a parse or macro error, is keyed by its normalized message), a failing test
makes a test koan. The family comes from `--family`, else a first folder named after one, else
the rules that point at one: the error's message (or, when no message rule matches, its code) and
the folders' topics. They must agree: a pair they disagree on is skipped as ambiguous, and one
nothing points at (a parse error outside a topic folder) as having no family. The koan's meta records the evidence
(`family_evidence`: each rule and the exact token it matched) and the report says it. A fixed
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
    evidence: tuple[Evidence, ...] = ()  # the rules that chose it


# -- which family ----------------------------------------------------------------------------------

# What an error's message says about the kind of mistake. A message names the mistake more precisely
# than its code: E0277 is any missing trait, "cannot be sent between threads safely" is concurrency.
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

# rustc codes the generator's patterns never use, by the family whose mistake they are.
CODES: dict[str, str] = {
    "E0046": "trait_bounds",  # not all trait items implemented
    "E0053": "trait_bounds",  # a method's signature differs from the trait's
    "E0407": "trait_bounds",  # a method that is not a member of the trait
}

# Topic folders of public exercise sets, by the family whose mistakes they teach. A topic whose
# exercises teach several families' mistakes is not here: `smart_pointers` (Box, Rc, RefCell, Arc:
# ownership, mutability and threads), `variables` (let, mut, shadowing, const) and `conversions`
# (`as` casts, From/TryFrom/AsRef impls) leave the family to the error.
TOPICS: dict[str, str] = {
    "move_semantics": "borrow_checker",
    "ownership": "borrow_checker",
    "borrowing": "borrow_checker",
    "references": "borrow_checker",
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
    "iterators": "closures_iterators",
    "closures": "closures_iterators",
    "primitive_types": "type_mismatch",
    "functions": "type_mismatch",
    "strings": "type_mismatch",
    "types": "type_mismatch",
    "if": "type_mismatch",
}


@dataclass(frozen=True)
class Evidence:
    """One rule that points at a family: `rule` is "message", "code", "folder" or "--family",
    `token` the exact text it matched (a piece of the message, the code, the folder's name)."""

    rule: str
    token: str
    family: str

    def __str__(self) -> str:
        return {
            "message": f"the error message's '{self.token}'",
            "code": f"the error code {self.token}",
            "folder": f"the folder '{self.token}'",
        }.get(self.rule, self.rule)

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "token": self.token}


def _code_families() -> dict[str, str]:
    """rustc code -> the family whose generator patterns use it most (ties: FAMILIES order), and
    the codes of CODES."""
    from sleepy.koans.generator import patterns

    counts: dict[str, Counter] = {}
    for family in FAMILIES:
        for p in patterns(family):
            if p.expected_code:
                counts.setdefault(p.expected_code, Counter())[family] += 1
    used = {code: max(c, key=lambda f: (c[f], -FAMILIES.index(f))) for code, c in counts.items()}
    return used | CODES


def family_evidence(rel: str, code: str | None, message: str) -> list[Evidence]:
    """Every rule that points at a family for this error in this file: the message rules that
    match, else its code (a code is what many mistakes share; a message rule says which one, so
    a code that disagrees with the message is left out), and each folder named after a topic."""
    found = [
        Evidence("message", m.group(0), family)
        for pattern, family in MESSAGE_RULES
        if (m := re.search(pattern, message))
    ]
    if code and code in (codes := _code_families()):
        if not found or codes[code] in {e.family for e in found}:
            found.append(Evidence("code", code, codes[code]))
    for part in Path(rel).parts[:-1]:
        topic = part.lower().strip("0123456789_-")
        if topic in TOPICS:
            found.append(Evidence("folder", part, TOPICS[topic]))
    return found


def infer_family(
    rel: str, code: str | None, message: str
) -> tuple[str | None, list[Evidence], str]:
    """The family a pair's error and folders point to, the evidence, and why; (None, evidence,
    why not) when nothing points at a family, or two rules point at different ones."""
    short = one_line(message, 80)
    evidence = family_evidence(rel, code, message)
    families = list(dict.fromkeys(e.family for e in evidence))
    if not families:
        return (
            None,
            [],
            f"no family: the error ({code or 'no code'}: '{short}') and the folders name none",
        )
    if len(families) > 1:
        said = ", ".join(f"{e} says {e.family}" for e in evidence)
        return None, evidence, f"ambiguous family: {said}"
    said = [str(e) for e in evidence]
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
    return families[0], evidence, f"from {listed}"


def family_for(rel: Path, family: str | None) -> tuple[str | None, list[Evidence], str]:
    """The family --family or the first folder gives, its evidence and why; (None, [], "") to
    infer it from the error later."""
    if family is not None:
        if family not in FAMILIES:
            raise KoanError(f"--family: '{family}' is not one of {list(FAMILIES)}")
        return family, [Evidence("--family", family, family)], "from --family"
    if len(rel.parts) > 1 and rel.parts[0] in FAMILIES:
        first = Evidence("folder", rel.parts[0], rel.parts[0])
        return first.family, [first], f"from {first}"
    return None, [], ""


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
    family, evidence, why = pair.family, list(pair.evidence), pair.why
    if family is None:
        family, evidence, why = infer_family(pair.rel, code, expected)
        if family is None:
            return None, f"{why}; pass --family", ""
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
                "meta": {
                    "imported_from": pair.rel,
                    "family_from": why,
                    "family_evidence": [e.to_dict() for e in evidence],
                },
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
        chosen, evidence, why = family_for(rel, family)
        pairs.append(Pair(str(rel), chosen, buggy, fixed, why, tuple(evidence)))
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
