"""Route accuracy of the learned router against signature routing, with no model.

Three families are learned (a task each, trained on generated koans of training seeds); held-out
koans of all eight families (eval seeds) are routed: a koan of a learned family should reach its
task, every other koan the base model. The routers learn from what a koan stores (its expected
error and the lines its fix changes); the held-out koans are compiled in the sandbox and routed on
the verdict's signature and the feedback the agent is shown, as at inference (`--no-rustc`: on
what they store, nothing compiled).

    python -m benchmarks.routing [--learned trait_bounds result_handling lifetimes] [--n 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sleepy.adapters.router import Router
from sleepy.consolidate.routing import base_examples, write_router
from sleepy.koan import FAMILIES
from sleepy.koans.generate import EVAL_SEEDS, generate
from sleepy.koans.route import route_example

LEARNED = ("trait_bounds", "result_handling", "lifetimes")
TRAIN_SEED, EVAL_SEED = 7, EVAL_SEEDS.start + 7


def bench_routing(
    learned: tuple[str, ...] = LEARNED,
    n_train: int = 40,
    n_eval: int = 20,
    corpus: str = "koans",
    evalsets: str = "evalsets",
    confidence: float = 0.5,
    distance: float = 0.3,
    rustc: bool = True,
) -> dict:
    """{router: {accuracy, other_family_to_task, ...}} for the learned router (with rustc's text
    and without it) and the signature router."""
    tasks = {
        f"t_{fam}": {
            "families": [fam],
            "examples": [
                route_example(k) for k in generate(fam, n_train, TRAIN_SEED, validate=False)
            ],
        }
        for fam in learned
    }
    for entry in tasks.values():
        entry["signatures"] = sorted({e["signature"] for e in entry["examples"]})
    base = base_examples([corpus], set(learned), [evalsets])
    koans = [
        k
        for fam in FAMILIES
        for k in generate(fam, n_eval, EVAL_SEED, validate=False, purpose="eval")
    ]
    held_out = [route_example(k) for k in koans]
    if rustc:  # what the router is given at inference: the verdict's signature and feedback
        from sleepy.sandbox import Sandbox, run_batch

        sandbox = Sandbox()
        verdicts = run_batch(lambda k: sandbox.verdict(k, k.buggy_code), koans, desc="compiling")
        for e, v in zip(held_out, verdicts, strict=True):
            e["signature"], e["text"] = str(v.signature or ""), v.feedback()
    want = {fam: f"t_{fam}" for fam in learned}
    results = {}
    # learned_signature_only: the learned router given no text, as a serve client without
    # error_text gets it
    for name, kind, with_text in (
        ("learned", "learned", True),
        ("learned_signature_only", "learned", False),
        ("signature", "signature", False),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp)
            for task in tasks:  # the router checks each task has an adapter folder
                (bundle / "tasks" / task).mkdir(parents=True)
                (bundle / "tasks" / task / "adapter_config.json").write_text("{}")
            write_router(bundle, tasks, kind, distance, confidence, base)
            router = Router(bundle)
            routed = [
                router.route(e["signature"], e["text"] if with_text else None) for e in held_out
            ]
        right = sum(r == want.get(e["family"]) for r, e in zip(routed, held_out, strict=True))
        others = [r for r, e in zip(routed, held_out, strict=True) if e["family"] not in want]
        wrong_task = sum(
            r is not None and r != want[e["family"]]
            for r, e in zip(routed, held_out, strict=True)
            if e["family"] in want
        )
        results[name] = {
            "accuracy": round(right / len(held_out), 3),
            "other_family_to_task": round(sum(r is not None for r in others) / len(others), 3),
            "learned_family_to_own_task": round(
                sum(
                    r == want.get(e["family"])
                    for r, e in zip(routed, held_out, strict=True)
                    if e["family"] in want
                )
                / (len(held_out) - len(others)),
                3,
            ),  # fmt: skip
            "learned_family_to_other_task": wrong_task,
            "koans": len(held_out),
            "other_family_koans": len(others),
        }
    results["setup"] = {
        "learned": list(learned),
        "train_koans_per_task": n_train,
        "base_examples": len(base),
        "confidence": confidence,
        "distance": distance,
        "held_out_routed_on": "the sandbox's verdict" if rustc else "what each koan stores",
    }
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learned", nargs="+", default=list(LEARNED), choices=FAMILIES)
    p.add_argument("--n", type=int, default=40, help="training koans per learned family")
    p.add_argument("--eval", type=int, default=20, help="held-out koans per family")
    p.add_argument("--confidence", type=float, default=0.5)
    p.add_argument("--no-rustc", action="store_true", help="route on what koans store")
    args = p.parse_args()
    out = bench_routing(
        tuple(args.learned), args.n, args.eval, confidence=args.confidence, rustc=not args.no_rustc
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
