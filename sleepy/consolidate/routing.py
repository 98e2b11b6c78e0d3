"""The router a Share bundle carries: router.json (tasks -> signatures, families, the examples each
learned from) and, for the learned router, router_model.json (sleepy.adapters.router).

The learned router's classes are the bundle's tasks and the base model. A task's examples are the
koans its sleep trained on (failures and their augmented variants, not replayed successes); the
base model's are koans of families no task learned, from the corpus (consolidation.route_koans),
never from an evalset.
"""

from __future__ import annotations

import json
from pathlib import Path

from sleepy.adapters.router import MODEL_FILE, RouterModel
from sleepy.koan import load_koans
from sleepy.koans.mutate import evalset_koans
from sleepy.koans.route import route_example


def base_examples(
    corpus: list[str | Path], learned: set[str], evalsets: list[str | Path] = ()
) -> list[dict]:
    """Examples for the base model: the corpus's koans of families no task learned, minus any
    koan an evalset holds (by id, program, or the program with names changed)."""
    frozen: set[str] = set()
    for k in evalset_koans(evalsets):
        frozen |= {k.id, k.content_hash, k.normalized_hash}
    koans = [k for p in corpus if Path(p).exists() for k in load_koans(p)]
    return [
        route_example(k)
        for k in koans
        if k.family not in learned and not {k.id, k.content_hash, k.normalized_hash} & frozen
    ]


def task_examples(entry: dict) -> list[dict]:
    """A task's examples; a task from before the learned router has only its signatures."""
    return entry.get("examples") or [
        {"koan_id": None, "family": None, "signature": s, "text": s}
        for s in entry.get("signatures", [])
    ]


def write_router(
    bundle: Path,
    tasks: dict[str, dict],
    kind: str,
    distance: float,
    confidence: float,
    base: list[dict],
    withdrawn: list[dict] = (),
) -> dict:
    """Write router.json (and router_model.json for the learned router); returns the table.
    `tasks`: name -> {signatures, families, examples}, oldest first."""
    table = {
        "router": kind,
        "tasks": tasks,
        "fallback": "base",
        "distance": distance,
        "confidence": confidence,
        "base_examples": len(base),
        "withdrawn": list(withdrawn),
    }
    if kind == "learned":
        examples = [(e["signature"], e["text"], None) for e in base]
        for name, entry in tasks.items():
            examples += [(e["signature"], e["text"], name) for e in task_examples(entry)]
        if len({label for _, _, label in examples}) >= 2:
            RouterModel.fit(examples).save(bundle / MODEL_FILE)
        else:  # one task and no koan of another family: nothing to tell apart, say so
            table["router"] = "signature"
            table["learned_router_skipped"] = (
                "one route only (one task, no base examples): give consolidation.route_koans "
                "a corpus with families no task learned"
            )
    (bundle / "router.json").write_text(json.dumps(table, indent=2))
    return table
