"""The learning set: what the lineage's days failed on, as programs it has never trained on.

For every template pattern a day of the lineage failed, K fresh programs with the same mistake,
drawn from the generator's reserved evaluation seeds (never used for training) with unrelated items
from the evaluation pool, and kept only if no training row of the lineage has the same content hash
or the same normalized form (names and literals abstracted). A failed koan whose pattern has no
template (hand-written, imported) counts through the frozen suite's koans of its family: transfer.

The set grows with the lineage: each cycle keeps the previous cycle's koans (so an earlier family
is re-measured on the same programs) and adds the new patterns' ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sleepy.koans import Koan
from sleepy.koans.generate import EVAL_SEEDS, GenerateError, default_exclude_hashes, generate
from sleepy.koans.generator import patterns as template_patterns


class LearningSetError(RuntimeError):
    """A learning set that cannot be built; the message says what to change."""


@dataclass
class LearningSet:
    koans: list[Koan]
    patterns: list[str] = field(default_factory=list)  # family/pattern measured by fresh programs
    transfer: list[str] = field(default_factory=list)  # families measured by frozen koans
    renamed_twins: int = 0  # draws dropped: a training program with other names and values


def _templates(family: str) -> set[str]:
    return {p.name for p in template_patterns(family)}


def build_learning_set(
    failed: Iterable[Koan],
    training: Iterable[Koan],
    frozen: Iterable[Koan],
    previous: Iterable[Koan] = (),
    k: int = 6,
    seed: int = 0,
) -> LearningSet:
    """The learning set for these failures, disjoint from every training koan (hash and form)."""
    if k < 1:
        raise LearningSetError(f"eval.learning_k must be >= 1, got {k}")
    train = list(training)
    hashes = {t.content_hash for t in train}
    forms = {t.normalized_hash for t in train}
    out = LearningSet([])

    def fresh(kn: Koan) -> bool:
        return kn.content_hash not in hashes and kn.normalized_hash not in forms

    previous = list(previous)
    keep = [kn for kn in previous if fresh(kn) or kn.meta.get("learning") == "transfer"]
    out.renamed_twins += len(previous) - len(keep)
    have = {(kn.family, kn.pattern) for kn in keep if kn.meta.get("learning") == "template"}
    have_transfer = {kn.family for kn in keep if kn.meta.get("learning") == "transfer"}
    out.koans.extend(keep)

    wanted, transfer = set(), set()
    for kn in failed:
        if kn.pattern and kn.pattern in _templates(kn.family):
            wanted.add((kn.family, kn.pattern))
        else:
            transfer.add(kn.family)
    exclude = hashes | default_exclude_hashes()
    for family, pattern in sorted(wanted - have):
        found: list[Koan] = []
        n = k
        while len(found) < k:
            try:
                draws = generate(
                    family,
                    n,
                    seed=EVAL_SEEDS.start + seed,
                    patterns=[pattern],
                    exclude_hashes=set(exclude),
                    purpose="eval",
                )
            except GenerateError as e:
                raise LearningSetError(f"learning set for {family}/{pattern}: {e}") from None
            found = [d for d in draws if fresh(d)]
            if len(found) < k:
                if n >= 8 * k:
                    raise LearningSetError(
                        f"learning set for {family}/{pattern}: only {len(found)} of {k} programs "
                        f"are not a training program renamed; lower eval.learning_k"
                    )
                n *= 2
        out.renamed_twins += len(draws) - len(found)
        out.koans.extend(replace(d, meta={**d.meta, "learning": "template"}) for d in found[:k])
    for family in sorted(transfer - have_transfer):
        out.koans.extend(
            replace(f, meta={**f.meta, "learning": "transfer"})
            for f in frozen
            if f.family == family
        )
    out.patterns = sorted(
        {f"{kn.family}/{kn.pattern}" for kn in out.koans if kn.meta.get("learning") == "template"}
    )
    out.transfer = sorted({kn.family for kn in out.koans if kn.meta.get("learning") == "transfer"})
    return out
