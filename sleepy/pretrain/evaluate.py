"""Measure sleepy-tiny the way the agent uses it: greedy, at most 3 attempts, the sandbox's verdict.

    python -m sleepy.pretrain.evaluate            # writes sleepy/tiny/model/eval.json

Three suites: fresh generated koans of the known families (never seen in training), the frozen
evalset split into known and unknown families, and fresh generated koans of the unknown families.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sleepy.config import compose_config
from sleepy.day import run_day
from sleepy.koans import FAMILIES, load_evalset, save_evalset
from sleepy.koans.generate import generate
from sleepy.koans.model import known_hashes
from sleepy.tiny import MODEL_DIR


def _day(source: Path, out: Path, evalset: bool, max_attempts: int) -> dict:
    overrides = [
        f"paths.outputs={out}",
        f"paths.output_dir={out}",
        "tracking=none",
        "run_id=tiny-eval",
        f"agent.max_attempts={max_attempts}",
        "agent.temperature=0.0",
    ]
    overrides += [f"koans.evalset={source}"] if evalset else [f"koans.source={source}"]
    return run_day(compose_config("day", overrides)).metrics


def evaluate_tiny(
    known: list[str], per_family: int = 15, seed: int = 5000, max_attempts: int = 3
) -> dict:

    unknown = [f for f in FAMILIES if f not in known]
    exclude = set(known_hashes(Path("koans"), Path("evalsets")))
    hashes = MODEL_DIR / "train_hashes.txt"
    if hashes.exists():
        exclude |= set(hashes.read_text().split())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, fams in (("fresh_known", known), ("fresh_unknown", unknown)):
            koans = [
                k for f in fams for k in generate(f, per_family, seed=seed, exclude_hashes=exclude)
            ]
            path = save_evalset(koans, tmp / f"{name}.json")
            results[name] = _day(path, tmp / name, True, max_attempts)

        frozen = load_evalset(Path("evalsets/frozen.json"))
        for name, fams in (("frozen_known", known), ("frozen_unknown", unknown)):
            path = save_evalset([k for k in frozen if k.family in fams], tmp / f"{name}.json")
            results[name] = _day(path, tmp / name, True, max_attempts)
    return {
        name: {k: v for k, v in m.items() if not isinstance(v, str)} for name, m in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-family", type=int, default=15)
    p.add_argument("--seed", type=int, default=5000)
    p.add_argument("--out", default=str(MODEL_DIR / "eval.json"))
    args = p.parse_args(argv)
    training = json.loads((MODEL_DIR / "training.json").read_text())
    known = training["config"]["families"]
    results = evaluate_tiny(known, args.per_family, args.seed)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for name, m in results.items():
        print(
            f"{name:15s} pass rate {m.get('pass_rate', 0):.1%}  ({int(m.get('episodes', 0))} koans)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
