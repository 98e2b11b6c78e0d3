"""Koans from real programs: one mistake injected per copy by a mutation operator, checked by rustc.

`mutate(family, n, seed, programs)` gives the same koans for the same seed and programs. Candidate
i applies the family's operator i mod len(operators) (those with a site in some program) to a
program drawn by its own Random(seed, family, operator, i), after
semantics-preserving variation (consistent renaming, new literals, items reordered, unrelated items
added), at one of the operator's sites. A candidate is kept only when the sandbox agrees with the
operator: the mutant's first error has one of its codes (or, for a test operator, the mutant
compiles and a test fails) while the varied original passes; the original's output becomes
`expected_stdout`, so an original whose output is not the same from run to run (thread order, a
HashMap's iteration order, the clock) makes no koan, and its program is not drawn again. Programs
that are evalset koans (by normalized form) are never used, and no mutant may share a content hash
or normalized form with an evalset koan.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from sleepy.koan.model import (
    FAMILIES,
    Koan,
    KoanError,
    capped_id,
    known_hashes,
    load_koan,
    load_koans,
    normalize_code,
    normalized_form,
    save_koan,
)
from sleepy.koan.syntax import Source
from sleepy.koans import variation
from sleepy.koans.generate import EVAL_SEEDS, MAX_BATCH, GenerateError, select_named
from sleepy.koans.harvest import SIDES, program_side
from sleepy.koans.operators import Operator, get_operator, operators
from sleepy.koans.sources import leading_comment, read_text, walk_files
from sleepy.koans.validate import TRANSIENT, one_line, shared_sandbox, stdout_varies
from sleepy.koans.variation import EVAL_ITEMS, TRAIN_ITEMS
from sleepy.sandbox.harness import bug_in_tests

# Koan sources whose fix is a program a person wrote: what mutants are made from.
PROGRAM_SOURCES = ("handwritten", "imported")
DEFAULT_EVALSETS = (Path("evalsets"),)
# how `settle` says an original's output is not reproducible (the reason follows)
UNREPRODUCIBLE = "original: output not reproducible: "


@dataclass(frozen=True)
class Program:
    """A correct program to inject mistakes into: a corpus koan's fix or a `.rs` file."""

    id: str  # the parent: a koan id or the file's path under the folder given
    code: str
    description: str
    edition: str = "2021"

    @property
    def has_tests(self) -> bool:
        return re.search(r"#\s*\[\s*test\s*\]", self.code) is not None


@dataclass
class MutateStats:
    drafted: int = 0
    no_site: int = 0
    duplicates: int = 0
    evalset_twins: int = 0
    validated: int = 0
    failures: Counter = field(default_factory=Counter)  # reason kind -> count
    by_operator: Counter = field(default_factory=Counter)  # operator -> mutants kept
    # parent program -> why its output is not reproducible (none of its mutants is kept)
    unreproducible: dict[str, str] = field(default_factory=dict)

    def unreproducible_note(self) -> str:
        """`; <program> left out: <why>, ...` for the programs whose output varies, or ""."""
        return "".join(
            f"; {p} left out: {why}, so no expected output"
            for p, why in self.unreproducible.items()
        )


def evalset_koans(paths: tuple | list = DEFAULT_EVALSETS) -> list[Koan]:
    """Every koan under the evalset paths: frozen evalset files and the koan files they are
    frozen from (evalsets/handwritten). Paths that do not exist hold none."""
    out: list[Koan] = []
    for p in map(Path, paths):
        files = sorted(p.rglob("*.json")) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            try:
                data = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise KoanError(f"{f}: not valid JSON (line {e.lineno}: {e.msg})") from None
            out.extend(
                load_koans(f) if isinstance(data, dict) and "koans" in data else [load_koan(f)]
            )
    return out


def load_programs(
    paths: list[str | Path],
    evalsets: tuple | list = DEFAULT_EVALSETS,
    skipped: list[tuple[str, str]] | None = None,
    side: str | None = None,
) -> tuple[list[Program], int]:
    """Correct programs under `paths` (koan files or folders: their hand-written and imported
    fixes; `.rs` files or folders of them) and how many were left out as evalset programs.
    Files that cannot be read (symlinks, FIFOs, not UTF-8) are added to `skipped` with why.
    `side` ("train" or "eval", `harvest.program_side`) keeps only that side's programs: mutants
    of eval-side programs measure, they are never trained on."""
    if side not in (None, *SIDES):
        raise KoanError(f"side must be one of {', '.join(SIDES)}, not '{side}'")
    found: list[Program] = []
    skipped = [] if skipped is None else skipped
    for p in map(Path, paths):
        if not p.exists():
            raise KoanError(f"--from: {p}: no such file or folder")
        if p.is_dir():
            files, left_out = walk_files(p, (".rs", ".json"))
            skipped.extend((str(p / rel), why) for rel, why in left_out)
            named = [(f, str(f.relative_to(p))) for f in files]
        else:  # a file named on the command line is read as named, through a symlink too
            named = [(p.resolve(), p.name)]
        for f, rel in named:
            if not rel.endswith((".rs", ".json")):
                continue
            text, why_not = read_text(f)
            if text is None:
                skipped.append((str(p / rel) if p.is_dir() else str(p), why_not))
            elif rel.endswith(".rs"):
                slug = re.sub(r"[^a-z0-9]+", "-", rel.removesuffix(".rs").lower()).strip("-")
                slug = capped_id(slug)  # a mutant's parent: shown and grouped by like an id
                about = leading_comment(text) or f"The program in {rel}; fix it."
                found.append(Program(slug, text, about))
            else:
                found.extend(programs_of(load_koans(f)))
    if not found:
        left_out = f"; {len(skipped)} left out, first {skipped[0][0]}: {skipped[0][1]}"
        raise KoanError(
            f"--from: no programs under {', '.join(map(str, paths))} (hand-written or imported "
            "koans, or .rs files)" + (left_out if skipped else "")
        )
    kept = without_evalset_programs(found, evalsets)
    if side is not None:
        kept = [p for p in kept if program_side(p.code) == side]
    return kept, len(found) - len(without_evalset_programs(found, evalsets))


def programs_of(koans) -> list[Program]:
    """The fixes of the hand-written and imported koans among `koans`."""
    return [
        Program(k.id, k.correct_code, k.description, k.edition)
        for k in koans
        if k.source in PROGRAM_SOURCES
    ]


def without_evalset_programs(programs: list[Program], evalsets) -> list[Program]:
    """The programs that are no evalset koan's program, by normalized form (a renamed copy of an
    evalset program is that program)."""
    forms = {
        normalized_form(code)
        for k in evalset_koans(evalsets)
        for code in (k.correct_code, k.buggy_code)
    }
    return [p for p in programs if normalized_form(p.code) not in forms]


def operator_for(koan: Koan) -> Operator | None:
    """The operator that makes this koan's mistake, to make it again in other programs.

    A mutant names its operator. For a hand-written or imported koan, it is the operator that turns
    its fix into its broken code (layout and comments aside), looked for in its own family first;
    failing that, the first operator of its family that fails the same way (its error code, or a
    failing test); None when its family has none.
    """
    if koan.source == "mutated":
        return get_operator(koan.family, koan.meta.get("operator", koan.pattern))
    src, target = Source(koan.correct_code), normalize_code(koan.buggy_code)
    families = [koan.family, *(f for f in FAMILIES if f != koan.family)]
    for op in (op for f in families for op in operators(f)):
        if op.kind == koan.kind and any(
            normalize_code(src.apply(site)) == target for site in op.sites(src)
        ):
            return op
    return next(
        (
            op
            for op in operators(koan.family)
            if op.kind == koan.kind and (op.kind == "test" or koan.expected_code in op.codes)
        ),
        None,
    )


def parent_of(koan: Koan) -> str:
    """The program a koan was made from: a mutant's parent, else the koan itself."""
    return koan.meta.get("parent", koan.id) if koan.source == "mutated" else koan.id


def select_operators(family: str, names: list[str] | None = None) -> list[Operator]:
    found = operators(family) if family in FAMILIES else []
    return select_named(
        family, found, names, "operator", "mutation operators (sleepy/koans/operators.py)"
    )


def _site_programs(op: Operator, programs: list[Program]) -> list[Program]:
    return [
        p for p in programs if (op.kind == "compile" or p.has_tests) and op.sites(Source(p.code))
    ]


def draft(
    op: Operator,
    programs: list[Program],
    seed: int,
    index: int,
    items: tuple[str, ...] = (),
    vary: bool = True,
) -> Koan | None:
    """Candidate `index` of a seeded run (its own Random), or None when the drawn program has no
    site for `op` once varied. Its expected code and error are filled in by `settle`."""
    rng = random.Random(f"{seed}:{op.family}:{op.name}:{index}")
    program = rng.choice(programs)
    code, description, done = program.code, program.description, []
    if vary:
        if rng.random() < 0.7:
            code, description = variation.rename(code, rng, description)
            done.append("renamed")
        if rng.random() < 0.5:
            changed = variation.change_literals(code, rng)
            if changed != code:
                code, done = changed, [*done, "literals"]
        if rng.random() < 0.5:
            reordered = variation.reorder_items(code, rng)
            if reordered != code:
                code, done = reordered, [*done, "reordered"]
    src = Source(code)
    sites = op.sites(src)
    if not sites:
        return None
    buggy = src.apply(rng.choice(sites))
    k = 0
    if items:
        k = rng.randint(1 if items is EVAL_ITEMS else 0, 2)
    koan = Koan(
        id="mut-x",
        family=op.family,
        description=description,
        buggy_code=buggy,
        correct_code=code,
        expected_error="",
        kind=op.kind,
        pattern=op.name,
        source="mutated",
        edition=program.edition,
    )
    if k:
        koan = variation.vary(koan, items, rng, k)
        done.append(f"items:{k}")
    return replace(
        koan,
        id=f"mut-{op.family}-{op.name}-{koan.content_hash[:8]}",
        meta={
            "operator": op.name,
            "parent": program.id,
            "seed": seed,
            "index": index,
            "variation": done,
        },
    )


def settle(koan: Koan, sandbox) -> tuple[Koan, str | None]:
    """Ask the sandbox whether the mutant fails as its operator says and the original passes;
    the koan with its expected code, error and output filled in, or a one-line reason."""
    op = get_operator(koan.family, koan.pattern)
    if bug_in_tests(koan.buggy_code, koan.correct_code):  # the verdict would undo the mutation
        return koan, "mutant: the mutation is inside the program's tests"
    if koan.kind == "compile":
        result = sandbox.check(koan.buggy_code, koan.edition)
        if not result.errors and "#[test]" in koan.buggy_code:
            result = sandbox.test(koan.buggy_code, koan.edition)
        if not result.errors:
            return koan, f"mutant: status {result.status}, no compile error"
        first = result.errors[0]
        if first.code not in op.codes:
            return koan, f"mutant: first error {first.code or 'uncoded'}, not {'/'.join(op.codes)}"
        koan = replace(koan, expected_code=first.code, expected_error=first.message)
    else:
        result = sandbox.test(koan.buggy_code, koan.edition)
        if result.errors:
            return koan, f"mutant: does not compile ({result.errors[0].code or 'uncoded'})"
        if not result.failed_tests:
            return koan, f"mutant: status {result.status}, no failing test"
        message = next(iter(result.failed_tests.values()))
        first_line = next((x.strip() for x in message.splitlines() if x.strip()), "")
        if not first_line:
            return koan, "mutant: a test fails without a panic message"
        koan = replace(koan, expected_error=first_line)
    verdict = sandbox.verdict(replace(koan, expected_stdout=""), koan.correct_code)
    if not (verdict.passed or verdict.status == "wrong_output"):
        return koan, f"original: {verdict.status} ({one_line(verdict.feedback(200), 120)})"
    if koan.has_main:
        if varies := stdout_varies(koan.correct_code, sandbox, koan.edition):
            return koan, UNREPRODUCIBLE + varies
        koan = replace(koan, expected_stdout=verdict.stdout)
    # through the loader's checks: a mutant the loader would reject is an operator bug
    return Koan.from_dict(koan.to_dict(), where=f"operator {koan.family}/{koan.pattern}"), None


def _settle(koan: Koan) -> tuple[Koan, str | None]:
    result = settle(koan, shared_sandbox())
    if result[1] and any(s in result[1] for s in TRANSIENT):
        result = settle(koan, shared_sandbox())  # a busy machine, not the mutant
    return result


def mutate(
    family: str,
    n: int,
    seed: int,
    programs: list[Program],
    out: Path | None = None,
    exclude_hashes: set[str] | None = None,
    evalsets: tuple | list = DEFAULT_EVALSETS,
    operator_names: list[str] | None = None,
    purpose: str = "train",
    vary: bool = True,
    workers: int | None = None,
    stats: MutateStats | None = None,
    allow_fewer: bool = False,
) -> list[Koan]:
    """`n` distinct validated mutants of `family`'s operators, the same ones for the same seed.

    `purpose="eval"` uses the reserved EVAL_SEEDS (and only it may) and the evaluation pool of
    unrelated items; training adds items from the training pool. `exclude_hashes=None` keeps clear
    of every koan in koans/ and evalsets/. Writes `out/<family>/<id>.json` when `out` is given.
    With `allow_fewer`, returns what it found instead of failing when the programs give fewer.
    """
    from sleepy.sandbox import run_batch

    if n < 0:
        raise GenerateError(f"n must be >= 0, got {n}")
    if (seed in EVAL_SEEDS) != (purpose == "eval"):
        raise GenerateError(
            f"seed {seed} with purpose '{purpose}': seeds {EVAL_SEEDS.start}..{EVAL_SEEDS.stop - 1} "
            "are reserved for evaluation and only for it"
        )
    stats = stats if stats is not None else MutateStats()
    if n == 0:
        return []
    ops = select_operators(family, operator_names)
    pools = {o.name: _site_programs(o, programs) for o in ops}
    ops = [o for o in ops if pools[o.name]]
    if not ops:
        raise GenerateError(
            f"{family}: no program among the {len(programs)} given has a site for any of its "
            "operators; give more programs (--from)"
        )
    items = EVAL_ITEMS if purpose == "eval" else TRAIN_ITEMS if vary else ()
    seen = set(known_hashes("koans", "evalsets") if exclude_hashes is None else exclude_hashes)
    forms = {k.normalized_hash for k in evalset_koans(evalsets)}
    cap = 40 * n + 200
    accepted: list[Koan] = []
    index = 0
    while len(accepted) < n and index < cap:
        want = min(MAX_BATCH, int((n - len(accepted)) * 1.5) + 2)
        batch: list[Koan] = []
        while len(batch) < want and index < cap:
            op = ops[index % len(ops)]
            koan = draft(op, pools[op.name], seed, index, items, vary)
            index += 1
            stats.drafted += 1
            if koan is None:
                stats.no_site += 1
                continue
            if koan.meta["parent"] in stats.unreproducible:
                continue
            if koan.content_hash in seen:
                stats.duplicates += 1
                continue
            if koan.normalized_hash in forms:
                stats.evalset_twins += 1
                continue
            seen.add(koan.content_hash)
            batch.append(koan)
        if not batch:
            continue
        for koan, reason in run_batch(_settle, batch, workers=workers, desc=f"mutating {family}"):
            stats.validated += 1
            if reason and reason.startswith(UNREPRODUCIBLE):
                stats.unreproducible[koan.meta["parent"]] = reason.removeprefix(UNREPRODUCIBLE)
            if reason:
                stats.failures[reason.split(" (")[0]] += 1
            else:
                accepted.append(koan)
    accepted.sort(key=lambda k: k.meta["index"])
    accepted = accepted[:n]
    stats.by_operator.update(k.pattern for k in accepted)
    if len(accepted) < n and not allow_fewer:
        raise GenerateError(
            f"{family}: only {len(accepted)} of {n} valid mutants after {index} drafts "
            f"({stats.validated} checked, {stats.duplicates} duplicates{stats.unreproducible_note()}); "
            "give more programs (--from) or ask for fewer"
        )
    if out is not None:
        for koan in accepted:
            save_koan(koan, out)
    return accepted


def mutate_families(
    families: list[str],
    n: int,
    seed: int,
    programs: list[Program],
    exclude_hashes: set[str] | None = None,
    purpose: str = "train",
    allow_fewer: bool = False,
    workers: int | None = None,
) -> list[Koan]:
    """`mutate` for each family in turn, `n` each, none a repeat of another family's mutant or
    of `exclude_hashes` (None: every koan in koans/ and evalsets/)."""
    seen = set(known_hashes("koans", "evalsets") if exclude_hashes is None else exclude_hashes)
    out: list[Koan] = []
    for family in families:
        got = mutate(
            family, n, seed, programs, exclude_hashes=seen, purpose=purpose,
            allow_fewer=allow_fewer, workers=workers,
        )  # fmt: skip
        seen |= {k.content_hash for k in got}
        out += got
    return out
