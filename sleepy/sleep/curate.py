"""Curate a day's failures into an SFT set: select, deduplicate, cluster by error signature, pair.

Prompts are built with the agent's own template and edit format, so the adapter learns exactly the
replies the agent parses; completions are the koan's fix (or the agent's own later fix) in that format.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sleepy.koan import Koan, KoanError, load_evalset
from sleepy.koans.generate import GenerateError, generate
from sleepy.prompts.edits import get_edit_format
from sleepy.prompts.template import PromptTemplate
from sleepy.sandbox import Sandbox, run_batch
from sleepy.sandbox.signatures import SIGNATURE_TOKENS


class CurationError(ValueError):
    """The episodes cannot be curated as given; one line saying what to add."""


class NothingToLearn(CurationError):
    """The episodes hold no failure to train on (and no replay was asked for)."""


class LeakageError(ValueError):
    """An evalset koan was about to enter a training set."""


@dataclass
class CuratedSet:
    dataset: object  # datasets.Dataset: prompt/completion (conversational) + koan_id, family, ...
    clusters: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    koans: list[Koan] = field(default_factory=list)  # the koan behind each row, for disjointness


def cluster_failures(signatures: list[str], diagnostics: list[str], distance: float) -> list[int]:
    """Cluster ids: TF-IDF of signature + diagnostics, agglomerated by cosine distance.

    The signature carries the error class; the diagnostics separate mistakes that share a code
    (E0308 for a missing `as` and for a missing `Ok(..)`).
    """
    if len(signatures) < 2:
        return [0] * len(signatures)
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [f"{s} {s} {d}" for s, d in zip(signatures, diagnostics, strict=True)]
    x = TfidfVectorizer(token_pattern=SIGNATURE_TOKENS, sublinear_tf=True).fit_transform(docs)
    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
    )
    return [int(c) for c in model.fit_predict(x.toarray())]


def _evalset_index(evalset_paths: list[str | Path]) -> dict[str, str]:
    """Every evalset koan under each key it could be matched by: id, code, normalized code.

    Fails closed: a path that does not exist or does not load is an error, never a guard that
    quietly checks nothing.
    """
    if not evalset_paths:
        raise LeakageError(
            "curate.evalset_paths is empty: the leakage guard needs the frozen evalset(s)"
        )
    index: dict[str, str] = {}
    for p in evalset_paths:
        try:
            koans = load_evalset(p)
        except KoanError as e:
            raise LeakageError(
                f"curate.evalset_paths: {str(e).splitlines()[0]} (the leakage guard cannot run "
                "without it)"
            ) from None
        for k in koans:
            for key in (f"id:{k.id}", f"code:{k.content_hash}", f"form:{k.normalized_hash}"):
                index.setdefault(key, k.id)
    return index


def evalset_match(koan: Koan, index: dict[str, str]) -> tuple[str, str] | None:
    """(how, evalset koan id) when this koan is an evalset koan: by "id", by "code", or by
    "form" (the same program with names or literals changed); else None."""
    for how, key in (
        ("id", koan.id),
        ("code", koan.content_hash),
        ("form", koan.normalized_hash),
    ):
        if f"{how}:{key}" in index:
            return how, index[f"{how}:{key}"]
    return None


def guard_leakage(koans: list[Koan], evalset_paths: list[str | Path]) -> list[Koan]:
    """Raise LeakageError for an evalset koan itself (the day ran on the evalset: a setup
    mistake); return the koans without renamed copies of evalset koans, which corpora and
    generators produce by chance and which must not be trained on either."""
    index = _evalset_index(evalset_paths)
    kept = []
    for k in koans:
        match = evalset_match(k, index)
        if match is None:
            kept.append(k)
        elif match[0] != "form":
            raise LeakageError(
                f"koan {k.id} is in the frozen evalset and must never be trained on: "
                f"drop it from the day's koans"
            )
    return kept


def curate(
    episodes,
    koans: dict[str, Koan],
    template: str,
    edit_format: str,
    *,
    replay_ratio: float = 0.0,
    augment_k: int = 0,
    seed: int = 0,
    evalset_paths: list[str | Path],
    cluster_distance: float,
    sandbox: Sandbox | None = None,
) -> CuratedSet:
    """Episodes (finished) -> a conversational prompt/completion `datasets.Dataset` with stats.

    A failure's prompt shows the feedback its episode recorded at the start; `sandbox` (default:
    one with the default limits) judges only the koans no episode recorded: augmented variants.
    """
    from datasets import Dataset

    rng = random.Random(seed)
    by_task: dict[str, list] = {}
    for ep in episodes:
        by_task.setdefault(ep.task_id, []).append(ep)
    missing = sorted(t for t in by_task if t not in koans)
    if missing:
        raise CurationError(
            f"{len(missing)} episode koans not found (e.g. {missing[0]}): "
            f"add their folder to curate.koan_paths"
        )

    # Failures, deduplicated: the same koan failing with the same final signature counts once.
    failures, seen = [], set()
    for task, eps in by_task.items():
        for e in eps:
            if e.passed:
                continue
            key = (task, e.final_error_signature or e.error_signature)
            if key not in seen:
                seen.add(key)
                failures.append(e)
    successes = [e for eps in by_task.values() for e in eps if e.passed]
    n_replay = min(len(successes), int(round(replay_ratio * len(failures))))
    replay = rng.sample(successes, n_replay) if n_replay else []
    # One training row per koan: several failed attempts of one koan teach the same fix.
    chosen: dict[str, tuple[object, str]] = {}
    for e in failures:
        chosen.setdefault(e.task_id, (e, "failure"))
    for e in replay:
        chosen.setdefault(e.task_id, (e, "replay"))

    train_koans = guard_leakage([koans[t] for t in chosen], evalset_paths)
    evalset_variants = len(chosen) - len(train_koans)
    extra: list[tuple[Koan, str]] = []
    if augment_k > 0:
        index = _evalset_index(evalset_paths)
        for pattern_key in sorted({(k.family, k.pattern) for k in train_koans if k.pattern}):
            family, pattern = pattern_key
            try:
                fresh = generate(
                    family, augment_k, seed=seed, patterns=[pattern], validate=False, vary=True
                )
            except GenerateError:  # a hand-written pattern with no template: nothing to vary
                continue
            kept = [k for k in fresh if evalset_match(k, index) is None]
            evalset_variants += len(fresh) - len(kept)
            extra.extend((k, "augment") for k in kept)
        fresh = same_mistake_new_program(
            train_koans, list(koans.values()), augment_k, seed, evalset_paths
        )
        kept = [k for k in fresh if evalset_match(k, index) is None]
        evalset_variants += len(fresh) - len(kept)
        extra.extend((k, "augment") for k in kept)

    # What the sandbox says about each buggy program: the day stored it when the episode started
    # (the feedback the agent was first shown). Only koans with no such record behind them, the
    # augmented variants, go through the sandbox here.
    all_koans = train_koans + [k for k, _ in extra]
    judged: list[tuple[str, str] | None] = []  # (feedback, signature); None: stored by nobody
    for koan in train_koans:
        ep = chosen[koan.id][0]
        judged.append(
            (ep.start_feedback, ep.error_signature or "") if ep.start_feedback is not None else None
        )
    judged += [None] * len(extra)
    todo = [i for i, j in enumerate(judged) if j is None]
    if todo:
        checker = sandbox or Sandbox()
        verdicts = run_batch(
            lambda i: checker.verdict(all_koans[i], all_koans[i].buggy_code), todo, desc="curating"
        )
        for i, v in zip(todo, verdicts, strict=True):
            judged[i] = ("", "") if v.passed else (v.feedback(), str(v.signature or ""))
    prompt = PromptTemplate.load(template)
    fmt = get_edit_format(edit_format)
    rows, used = [], []
    for i, (koan, (feedback, judged_signature)) in enumerate(zip(all_koans, judged, strict=True)):
        if i < len(train_koans):
            ep, role = chosen[koan.id]
            fixed = _agent_fix(by_task[koan.id], koan)
            signature = ep.error_signature or judged_signature
        else:
            role, fixed, signature = (
                extra[i - len(train_koans)][1],
                koan.correct_code,
                judged_signature,
            )
        if not feedback:  # the buggy program passes: it teaches nothing
            continue
        messages = prompt.messages(koan, koan.buggy_code, feedback, [], edit_format)
        used.append(koan)
        rows.append(
            {
                "prompt": messages,
                "completion": [
                    {"role": "assistant", "content": fmt.render(koan.buggy_code, fixed)}
                ],
                "koan_id": koan.id,
                "family": koan.family,
                "pattern": koan.pattern or "",
                "signature": signature,
                "role": role,
                "feedback": feedback,
            }
        )
    if not rows:
        raise NothingToLearn(
            "nothing to learn: the episodes hold no failures (and no replay was asked for): "
            "every koan passed; give a day with failures, or curate.replay_ratio > 0"
        )
    fail_rows = [r for r in rows if r["role"] == "failure"]
    ids = cluster_failures(
        [r["signature"] for r in fail_rows], [r["feedback"] for r in fail_rows], cluster_distance
    )
    for r, c in zip(fail_rows, ids, strict=True):
        r["cluster"] = c
    for r in rows:
        r.setdefault("cluster", -1)
    clusters = []
    for c in sorted(set(ids)):
        members = [r for r, i in zip(fail_rows, ids, strict=True) if i == c]
        top = Counter(r["signature"] for r in members).most_common(3)
        clusters.append(
            {
                "cluster": c,
                "size": len(members),
                "top_signatures": [s for s, _ in top],
                "families": sorted({r["family"] for r in members}),
            }
        )
    stats = {
        "episodes": sum(len(v) for v in by_task.values()),
        "failures": len(failures),
        "rows": len(rows),
        "failure_rows": len(fail_rows),
        "replay_rows": sum(r["role"] == "replay" for r in rows),
        "augment_rows": sum(r["role"] == "augment" for r in rows),
        "augment_mutant_rows": sum(
            r["role"] == "augment" and k.source == "mutated"
            for r, k in zip(rows, used, strict=True)
        ),
        "evalset_variants_dropped": evalset_variants,
        "clusters": len(clusters),
    }
    return CuratedSet(Dataset.from_list(rows), clusters, stats, used)


def same_mistake_new_program(
    failed: list[Koan], pool: list[Koan], k: int, seed: int, evalset_paths: list[str | Path]
) -> list[Koan]:
    """For the failed hand-written, imported and mutated koans: up to `k` mutants per mistake
    (the operator that makes it, `operator_for`), made in the pool's other programs.

    Templates vary only what they were written for; this is how a mistake found in a program a
    person wrote gets variants. The failed koans' own programs are left out, and so is every
    evalset program (by normalized form).
    """
    from sleepy.koans.generate import GenerateError
    from sleepy.koans.mutate import (
        PROGRAM_SOURCES,
        mutate,
        operator_for,
        parent_of,
        programs_of,
        without_evalset_programs,
    )

    by_operator: dict[tuple[str, str], set[str]] = {}
    for koan in failed:
        if koan.source in (*PROGRAM_SOURCES, "mutated"):
            op = operator_for(koan)
            if op is not None:
                by_operator.setdefault((op.family, op.name), set()).add(parent_of(koan))
    if not by_operator:
        return []
    programs = without_evalset_programs(programs_of(pool), evalset_paths)
    out: list[Koan] = []
    for (family, name), parents in sorted(by_operator.items()):
        others = [p for p in programs if p.id not in parents]
        try:
            out += mutate(
                family,
                k,
                seed,
                others,
                operator_names=[name],
                evalsets=evalset_paths,
                allow_fewer=True,
            )
        except GenerateError:  # no other program has a site for this operator
            continue
    return out


def _agent_fix(eps, koan: Koan) -> str:
    """The agent's own passing code for this koan when it found one later, else the koan's fix."""
    for e in eps:
        if e.passed:
            for step in reversed(e.trajectory):
                code = step.get("code") if isinstance(step, dict) else None
                if code:
                    return code
    return koan.correct_code
