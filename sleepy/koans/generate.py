"""Fresh koans from a family's templates: drafted from a seed, validated with rustc, deduplicated.

`generate(family, n, seed)` gives the same koans for the same seed, and keeps clear of every koan
already in koans/ and evalsets/ (by normalized content hash), so generated training data never
overlaps the frozen evaluation set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from sleepy.config import EVALSETS_DIR, KOANS_DIR
from sleepy.koan.model import FAMILIES, Koan, KoanError, known_hashes, save_koan
from sleepy.koans import generator, variation
from sleepy.koans.generator import Pattern, Vocab
from sleepy.koans.validate import (
    TRANSIENT,
    fill_expected_stdout,
    shared_sandbox,
    validate_candidate,
)
from sleepy.koans.variation import EVAL_ITEMS, TRAIN_ITEMS
from sleepy.sandbox import run_batch

# What generated koans keep clear of: the corpus and frozen suite sleepy runs on (a checkout's, or
# the copy a wheel carries), and koans/ and evalsets/ of the working directory when it has its own.
DEFAULT_EXCLUDE = (KOANS_DIR, EVALSETS_DIR, Path("koans"), Path("evalsets"))


def default_exclude_hashes() -> set[str]:
    """The content hashes of every koan under DEFAULT_EXCLUDE (each folder read once)."""
    return known_hashes(*dict.fromkeys(p.resolve() for p in DEFAULT_EXCLUDE if p.exists()))


# Seeds reserved for evaluation (the eval's learning sets): training data is never drawn from them,
# so a learning-set koan is never a training koan's twin by construction.
EVAL_SEEDS = range(1_000_000_000, 2_000_000_000)
# A pattern whose first few validated drafts all fail is broken, not unlucky.
NEVER_VALIDATES_AFTER = 4
MAX_BATCH = 512


class GenerateError(RuntimeError):
    """Generation cannot deliver: a template is broken or the templates do not vary enough."""


@dataclass
class PatternStats:
    drafted: int = 0
    duplicates: int = 0
    validated: int = 0
    valid: int = 0
    failures: list[str] = field(default_factory=list)


def draft(pattern: Pattern, seed: int, index: int, items: tuple[str, ...] = ()) -> Koan:
    """Candidate `index` of a seeded run: its own Random, so any candidate can be redrawn alone.

    With `items` (a pool of sleepy.koans.variation), 0-2 of them are added to the program (1-2 for
    the eval pool, whose programs must all be new).
    """
    rng = random.Random(f"{seed}:{pattern.family}:{index}")
    try:
        d = pattern.make(Vocab(rng))
        if items:
            lo = 1 if items is EVAL_ITEMS else 0
            d = variation.vary(d, items, rng, rng.randint(lo, 2))
        koan = Koan(
            id="gen-x",
            family=pattern.family,
            description=d.description,
            buggy_code=d.buggy_code,
            correct_code=d.correct_code,
            expected_error=d.expected_error,
            kind=pattern.kind,
            expected_code=pattern.expected_code,
            pattern=pattern.name,
            source="generated",
        )
        data = koan.to_dict() | {
            "id": f"gen-{pattern.family}-{pattern.name}-{koan.content_hash[:8]}"
        }
        data["meta"] = {"seed": seed, "index": index}
        # through the loader's checks, so a template cannot produce a koan the loader would reject
        return Koan.from_dict(data, where=f"pattern {pattern.family}/{pattern.name}")
    except KoanError as e:
        raise GenerateError(f"{e} — a template bug") from None
    except Exception as e:
        raise GenerateError(
            f"pattern {pattern.family}/{pattern.name} raised {type(e).__name__}: {e} — a template bug"
        ) from e


def select_named(family: str, found: list, names: list[str] | None, kind: str, none: str) -> list:
    """The family's templates (or mutation operators) `found`, narrowed to `names`: a one-line
    GenerateError for an unknown family, a family with none (`none` says where they live) or an
    unknown name."""
    if family not in FAMILIES:
        raise GenerateError(f"unknown family '{family}' (one of {', '.join(FAMILIES)})")
    if not found:
        raise GenerateError(f"family '{family}' has no {none}")
    if names:
        known = {x.name for x in found}
        missing = [n for n in names if n not in known]
        if missing:
            raise GenerateError(
                f"family '{family}' has no {kind} '{missing[0]}' (has: {', '.join(sorted(known))})"
            )
        found = [x for x in found if x.name in names]
    return found


def select_patterns(family: str, names: list[str] | None = None) -> list[Pattern]:
    found = generator.patterns(family) if family in FAMILIES else []
    return select_named(
        family, found, names, "pattern", f"templates yet (sleepy/koans/families/{family}.py)"
    )


def _prepare(koan: Koan) -> tuple[Koan, str | None]:
    result = validate_candidate(koan, shared_sandbox())
    if result[1] and any(f"({s})" in result[1] or f"status {s}" in result[1] for s in TRANSIENT):
        # a dropped candidate would change which koans a seed gives: retry a busy-machine failure
        result = validate_candidate(koan, shared_sandbox())
    return result


def _prepare_unvalidated(koan: Koan) -> tuple[Koan, str | None]:
    return fill_expected_stdout(koan, shared_sandbox()), None


def generate(
    family: str,
    n: int,
    seed: int,
    out: Path | None = None,
    exclude_hashes: set[str] | None = None,
    workers: int | None = None,
    validate: bool = True,
    patterns: list[str] | None = None,
    purpose: str = "train",
    vary: bool = False,
) -> list[Koan]:
    """`n` distinct, valid koans of `family`, the same ones for the same seed.

    `purpose="eval"` draws from the reserved EVAL_SEEDS and only from them; anything else (training
    data, augmentation, the corpus) may not touch them.

    Candidate i uses pattern i mod len(patterns) and its own Random(seed, family, i); the result
    is the first n candidates that are new (hash not excluded nor seen) and valid, so batch sizes
    and worker counts do not change it. `exclude_hashes=None` excludes everything in koans/ and
    evalsets/. Writes koans to `out/<family>/<id>.json` when `out` is given.
    """

    if n < 0:
        raise GenerateError(f"n must be >= 0, got {n}")
    if (seed in EVAL_SEEDS) != (purpose == "eval"):
        raise GenerateError(
            f"seed {seed} with purpose '{purpose}': seeds {EVAL_SEEDS.start}..{EVAL_SEEDS.stop - 1} "
            "are reserved for evaluation and only for it"
        )
    items = EVAL_ITEMS if purpose == "eval" else TRAIN_ITEMS if vary else ()
    pats = select_patterns(family, patterns)
    seen = set(default_exclude_hashes() if exclude_hashes is None else exclude_hashes)
    stats = {p.name: PatternStats() for p in pats}
    cap = 50 * n + 200  # drafts, before giving up on finding n distinct ones
    accepted: list[Koan] = []
    index = 0
    prepare = _prepare if validate else _prepare_unvalidated
    while len(accepted) < n and index < cap:
        # over-draw a little: some candidates fail, and a second batch costs a progress bar
        want = min(MAX_BATCH, int((n - len(accepted)) * 1.15) + 2)
        batch: list[Koan] = []
        while len(batch) < want and index < cap:
            p = pats[index % len(pats)]
            koan = draft(p, seed, index, items)
            index += 1
            stats[p.name].drafted += 1
            if koan.content_hash in seen:
                stats[p.name].duplicates += 1
                continue
            seen.add(koan.content_hash)
            batch.append(koan)
        if not batch:
            continue
        results = run_batch(prepare, batch, workers=workers, desc=f"generating {family}")
        for koan, reason in results:
            s = stats[koan.pattern]
            s.validated += 1
            if reason:
                s.failures.append(reason)
            else:
                s.valid += 1
                accepted.append(koan)
        for name, s in stats.items():
            if s.valid == 0 and s.validated >= NEVER_VALIDATES_AFTER:
                raise GenerateError(
                    f"pattern {family}/{name} never validates ({s.validated} tries), a template bug: "
                    f"{s.failures[0]}"
                )
    accepted.sort(key=lambda k: k.meta["index"])
    accepted = accepted[:n]
    if len(accepted) < n:
        detail = ", ".join(
            f"{name}: {s.valid} valid, {s.duplicates} duplicates" for name, s in stats.items()
        )
        raise GenerateError(
            f"{family}: only {len(accepted)} of {n} distinct valid koans after {index} drafts "
            f"({detail}); the templates do not vary enough: add vocabulary or patterns"
        )
    if out is not None:
        for koan in accepted:
            save_koan(koan, out)
    return accepted
