"""The learning set: what the lineage's days failed on, as programs it has never trained on.

For every template pattern a day of the lineage failed, K fresh programs with the same mistake,
drawn from the generator's reserved evaluation seeds (never used for training) with unrelated items
from the evaluation pool, and kept only if no training row of the lineage has the same content hash
or the same normalized form (names and literals abstracted). When real programs are given, a
failed hand-written, imported or mutated koan is measured the same way on real programs instead:
K mutants made by its operator in other programs, drawn with the same reserved seeds and
evaluation pool. A failed koan with neither counts through the frozen suite's koans of its
family: transfer.

The set grows with the lineage: each cycle keeps the previous cycle's koans (so an earlier family
is re-measured on the same programs) and adds the new patterns' ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from omegaconf import DictConfig

from sleepy.episodes import EpisodeStore
from sleepy.koan import Koan, KoanError, load_evalset, save_evalset
from sleepy.koan.model import evalset_path, twin_of
from sleepy.koans.generate import EVAL_SEEDS, GenerateError, default_exclude_hashes, generate
from sleepy.koans.generator import patterns as template_patterns
from sleepy.koans.mutate import (
    PROGRAM_SOURCES,
    Program,
    load_programs,
    mutate,
    operator_for,
    parent_of,
)
from sleepy.sleep import koans_for


class LearningSetError(RuntimeError):
    """A learning set that cannot be built; the message says what to change."""


@dataclass
class LearningSet:
    koans: list[Koan]
    patterns: list[str] = field(default_factory=list)  # family/pattern measured by fresh programs
    mutants: list[str] = field(default_factory=list)  # family/operator measured by fresh mutants
    transfer: list[str] = field(default_factory=list)  # families measured by frozen koans
    # family/operator measured in new programs: eval-side programs people wrote, never trained on
    new_programs: list[str] = field(default_factory=list)
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
    programs: list[Program] | None = None,
    new_programs: list[Program] | None = None,
) -> LearningSet:
    """The learning set for these failures, disjoint from every training koan (hash and form).

    `programs` (the corpus's real programs, evalset programs left out: `sleepy.koans.mutate.
    load_programs`) turns on mutants for failures that templates do not cover. `new_programs`
    (eval-side programs, `load_programs(side="eval")`) adds, for every failure whose mistake an
    operator makes, K mutants of those programs: the same mistake in a program never seen, which
    new draws of a seen program cannot measure (`learning: new_program`).
    """
    if k < 1:
        raise LearningSetError(f"eval.learning_k must be >= 1, got {k}")
    train = list(training)
    hashes = {t.content_hash for t in train}
    out = LearningSet([])

    is_twin = twin_of(train)

    def fresh(kn: Koan) -> bool:
        return not is_twin(kn)

    previous = list(previous)
    keep = [kn for kn in previous if fresh(kn) or kn.meta.get("learning") == "transfer"]
    out.renamed_twins += len(previous) - len(keep)
    have = {(kn.family, kn.pattern) for kn in keep if kn.meta.get("learning") == "template"}
    have_mutants = {(kn.family, kn.pattern) for kn in keep if kn.meta.get("learning") == "mutant"}
    have_transfer = {kn.family for kn in keep if kn.meta.get("learning") == "transfer"}
    have_new = {(kn.family, kn.pattern) for kn in keep if kn.meta.get("learning") == "new_program"}
    out.koans.extend(keep)

    wanted, mutants, transfer, new_ops = set(), {}, set(), set()
    for kn in failed:
        if new_programs:
            new_op = operator_for(kn)
            if new_op is not None:
                new_ops.add((new_op.family, new_op.name))
        # a mistake in a real program is measured on real programs, a template's on its template
        op = None
        if programs is not None and kn.source in (*PROGRAM_SOURCES, "mutated"):
            op = operator_for(kn)
        if op is not None:
            mutants.setdefault((op.family, op.name), set()).add(parent_of(kn))
        elif kn.pattern and kn.pattern in _templates(kn.family):
            wanted.add((kn.family, kn.pattern))
        else:
            transfer.add(kn.family)
    exclude = hashes | default_exclude_hashes()

    def draw(what: str, draws_of: Callable[[int], list[Koan]], learning: str) -> None:
        # double the draw until k of them are no training program renamed
        found: list[Koan] = []
        n = k
        while len(found) < k:
            try:
                draws = draws_of(n)
            except GenerateError as e:
                raise LearningSetError(f"learning set for {what}: {e}") from None
            found = [d for d in draws if fresh(d)]
            if len(found) < k:
                if n >= 8 * k:
                    raise LearningSetError(
                        f"learning set for {what}: only {len(found)} of {k} programs "
                        f"are not a training program renamed; lower eval.learning_k"
                    )
                n *= 2
        out.renamed_twins += len(draws) - len(found)
        out.koans.extend(replace(d, meta={**d.meta, "learning": learning}) for d in found[:k])

    for family, pattern in sorted(wanted - have):
        draw(
            f"{family}/{pattern}",
            lambda n, f=family, p=pattern: generate(
                f,
                n,
                seed=EVAL_SEEDS.start + seed,
                patterns=[p],
                exclude_hashes=set(exclude),
                purpose="eval",
            ),
            "template",
        )
    for (family, name), parents in sorted(mutants.items()):
        if (family, name) in have_mutants:
            continue
        others = [p for p in programs if p.id not in parents]
        draw(
            f"{family}/{name} (mutants)",
            lambda n, f=family, o=name, pool=others: mutate(
                f,
                n,
                seed=EVAL_SEEDS.start + seed,
                programs=pool,
                operator_names=[o],
                exclude_hashes=set(exclude),
                purpose="eval",
            ),
            "mutant",
        )
    pool = list(new_programs or [])
    for family, name in sorted(new_ops - have_new):
        # as many as the eval-side programs give, up to k: a mistake few programs have a place
        # for is measured on fewer, and one none has a place for is not measured this way
        try:
            draws = mutate(
                family, k, seed=EVAL_SEEDS.start + seed, programs=pool, operator_names=[name],
                exclude_hashes=set(exclude), purpose="eval", allow_fewer=True,
            )  # fmt: skip
        except GenerateError:
            continue
        found = [d for d in draws if fresh(d)]
        out.renamed_twins += len(draws) - len(found)
        out.koans.extend(replace(d, meta={**d.meta, "learning": "new_program"}) for d in found)
    for family in sorted(transfer - have_transfer):
        out.koans.extend(
            replace(f, meta={**f.meta, "learning": "transfer"})
            for f in frozen
            if f.family == family
        )
    out.patterns = sorted(
        {f"{kn.family}/{kn.pattern}" for kn in out.koans if kn.meta.get("learning") == "template"}
    )
    out.mutants = sorted(
        {f"{kn.family}/{kn.pattern}" for kn in out.koans if kn.meta.get("learning") == "mutant"}
    )
    out.transfer = sorted({kn.family for kn in out.koans if kn.meta.get("learning") == "transfer"})
    out.new_programs = sorted(
        {
            f"{kn.family}/{kn.pattern}"
            for kn in out.koans
            if kn.meta.get("learning") == "new_program"
        }
    )
    return out


def learning_set_for(
    cfg: DictConfig,
    days: list[dict],
    sleeps: list[dict],
    previous: str | None,
    path: Path,
    name: str,
) -> dict:
    """A cycle's learning set: the lineage's day failures so far (`days`: each day's episode
    database and run id) as fresh programs, disjoint from every koan its sleeps trained on
    (`sleeps`: each sleep's training koans), growing the previous cycle's set; saved at `path`
    as the evalset `name`. Returns what state.json records of it."""
    failed, training = [], []
    for day, slp in zip(days, sleeps, strict=True):
        with EpisodeStore(day["db"], create=False) as store:
            known = koans_for(store, [str(cfg.paths.koans)])
            ids = {e.task_id for e in store.episodes(run_id=day["run_id"], passed=False)}
        failed += [known[t] for t in sorted(ids) if t in known]
        training += load_evalset(slp["training_koans"])
    frozen = evalset_path(str(cfg.evalset), str(cfg.paths.evalsets))
    programs = None
    real = [k for k in failed if k.source in ("handwritten", "imported", "mutated")]
    if cfg.learning_set.mutants and real:
        # the corpus's real programs, every evalset program left out
        try:
            programs, _ = load_programs([cfg.paths.koans], evalsets=[cfg.paths.evalsets, frozen])
        except KoanError as e:
            raise LearningSetError(
                f"learning_set.mutants: {e} (the day failed {real[0].id}); set "
                "learning_set.mutants=false to measure it through templates or transfer"
            ) from None
    new_programs = None
    if cfg.learning_set.programs:
        where = cfg.learning_set.programs
        try:  # the eval side of a harvest: programs no sleep of the lineage ever trains on
            new_programs, _ = load_programs([where], evalsets=[cfg.paths.evalsets], side="eval")
        except KoanError as e:
            raise LearningSetError(
                f"learning_set.programs={where}: {e}; make one with `sleepy koans harvest`"
            ) from None
    built = build_learning_set(
        failed,
        training,
        load_evalset(frozen),
        load_evalset(previous) if previous else (),
        k=int(cfg.learning_set.k),
        seed=int(cfg.seed),
        programs=programs,
        new_programs=new_programs,
    )
    save_evalset(built.koans, path, name=name)
    return {
        "path": str(path),
        "koans": len(built.koans),
        "patterns": built.patterns,
        "mutants": built.mutants,
        "transfer": built.transfer,
        "new_programs": built.new_programs,
        "renamed_twins_dropped": built.renamed_twins,
    }
