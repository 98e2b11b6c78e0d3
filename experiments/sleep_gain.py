"""Does one sleep teach a new family? A day on an unknown family, sleep on its failures, then the
base model and the adapter on fresh, held-out koans of the same patterns.

    python -m experiments.sleep_gain --family trait_bounds --n 24
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sleepy.config import compose_config


def sleep_gain(
    families: list[str],
    n: int,
    out: Path,
    seed: int = 0,
    uri: str | None = None,
    adapter_overrides: list[str] = (),
) -> dict:
    from sleepy.day import run_day
    from sleepy.koans import save_evalset
    from sleepy.koans.generate import generate
    from sleepy.koans.model import known_hashes
    from sleepy.sleep import run_sleep

    out.mkdir(parents=True, exist_ok=True)
    uri = uri or f"sqlite:///{out}/mlflow.db"
    track = [f"tracking.uri={uri}", "tracking.experiment=sleepy-sleep-gain"]
    exclude = set(known_hashes(Path("koans"), Path("evalsets")))
    seen = [k for f in families for k in generate(f, n, seed=seed + 1, exclude_hashes=exclude)]
    exclude |= {k.content_hash for k in seen}
    held_out = [k for f in families for k in generate(f, n, seed=seed + 2, exclude_hashes=exclude)]
    seen_path, held_path = (
        save_evalset(seen, out / "day_koans.json"),
        save_evalset(held_out, out / "held_out.json"),
    )

    day = run_day(
        compose_config(
            "day",
            [
                *track,
                f"paths.outputs={out}",
                f"paths.output_dir={out}/day",
                f"koans.evalset={seen_path}",
                "run_id=day",
            ],
        )
    )
    sleep = run_sleep(
        compose_config(
            "sleep",
            [
                *track,
                f"paths.outputs={out}",
                f"paths.output_dir={out}/sleep",
                f"curate.episodes={day.episodes_db}",
                "curate.run_id=day",
                f"seed={seed}",
                *adapter_overrides,
            ],
        )
    )
    before = run_day(
        compose_config(
            "day",
            [
                *track,
                f"paths.outputs={out}",
                f"paths.output_dir={out}/before",
                f"koans.evalset={held_path}",
                "run_id=before",
            ],
        )
    )
    after = run_day(
        compose_config(
            "day",
            [
                *track,
                f"paths.outputs={out}",
                f"paths.output_dir={out}/after",
                f"koans.evalset={held_path}",
                "run_id=after",
                f"backend.adapter={sleep.adapter_dir}",
            ],
        )
    )
    result = {
        "families": families,
        "koans_per_family": n,
        "day_pass_rate": day.metrics["pass_rate"],
        "training_rows": sleep.stats["rows"],
        "train_steps": sleep.metrics["steps"],
        "held_out_base": before.metrics["pass_rate"],
        "held_out_adapter": after.metrics["pass_rate"],
        "gain_points": 100 * (after.metrics["pass_rate"] - before.metrics["pass_rate"]),
        "per_family": {
            k: (before.metrics.get(k), after.metrics.get(k))
            for k in after.metrics
            if k.startswith("pass_rate.")
        },
    }
    (out / "sleep_gain.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", action="append", required=True)
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("overrides", nargs="*", help="sleep overrides, e.g. adapter.max_steps=200")
    a = p.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="sleep-gain-", dir="outputs"))
    r = sleep_gain(a.family, a.n, out, a.seed, adapter_overrides=a.overrides)
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
