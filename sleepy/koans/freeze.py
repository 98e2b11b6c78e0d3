"""Assembles the frozen evaluation set: hand-written evalset koans plus generated ones per family,
validated, disjoint from the training corpus, stored with their content hashes."""

from __future__ import annotations

from pathlib import Path

from sleepy.koan.model import FAMILIES, Koan, known_hashes, load_koans, save_evalset
from sleepy.koans.generate import generate
from sleepy.koans.validate import shared_sandbox, validate_candidate
from sleepy.sandbox import run_batch


class FreezeError(RuntimeError):
    """The evalset cannot be frozen as asked; the message says which koans and why."""


def _prepare(koan: Koan) -> tuple[Koan, str | None]:
    return validate_candidate(koan, shared_sandbox())


def freeze(
    out: str | Path = "evalsets/frozen.json",
    handwritten_dir: str | Path = "evalsets/handwritten",
    koans_dir: str | Path = "koans",
    generated_per_family: int = 0,
    seed: int = 1000,
    families: list[str] | None = None,
    workers: int | None = None,
) -> list[Koan]:
    """Write the frozen evalset to `out` and return its koans.

    Hand-written koans come from `handwritten_dir/<family>/*.json` (their missing
    `expected_stdout` is filled in); `generated_per_family` more per family are generated with
    `seed`, which should differ from the corpus seed. Every koan must validate and none may share
    a content hash with a koan in `koans_dir`.
    """

    families = list(families or FAMILIES)
    handwritten_dir = Path(handwritten_dir)
    hand = load_koans(handwritten_dir) if handwritten_dir.is_dir() else []
    hand = [k for k in hand if k.family in families]
    problems = []
    results = run_batch(_prepare, hand, workers=workers, desc="validating hand-written evalset")
    hand = []
    for koan, reason in results:
        if reason:
            problems.append(f"{koan.id}: {reason}")
        hand.append(koan)
    corpus = known_hashes(koans_dir)
    seen: dict[str, str] = {}
    for k in hand:
        if k.content_hash in corpus:
            problems.append(
                f"{k.id}: same code as a koan in {koans_dir}/ (content hash {k.content_hash})"
            )
        if k.content_hash in seen:
            problems.append(f"{k.id}: same code as {seen[k.content_hash]}")
        seen.setdefault(k.content_hash, k.id)
    if problems:
        raise FreezeError(
            f"{len(problems)} hand-written evalset koan(s) unusable: " + " | ".join(problems)
        )

    koans = list(hand)
    if generated_per_family > 0:
        exclude = corpus | set(seen)
        for family in families:
            fresh = generate(
                family, generated_per_family, seed, exclude_hashes=exclude, workers=workers
            )
            exclude |= {k.content_hash for k in fresh}
            koans.extend(fresh)
    ids: set[str] = set()
    for k in koans:
        if k.id in ids:
            raise FreezeError(f"{k.id}: two evalset koans share this id; rename one")
        ids.add(k.id)
    koans.sort(key=lambda k: (FAMILIES.index(k.family), k.source != "handwritten", k.id))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_evalset(koans, out, name=out.stem)
    return koans
