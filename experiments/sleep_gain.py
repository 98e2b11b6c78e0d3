"""Does one sleep teach a new family? A day on an unknown family, sleep on its failures, then the
base model and the adapter on two held-out suites: fresh template koans of the same patterns, and
the family's hand-written koans of the frozen evalset (programs a person wrote, never trained on).

    python -m experiments.sleep_gain --family trait_bounds --n 24
    python -m experiments.sleep_gain --family trait_bounds --n 24 --mutants 24

`--mutants N` adds N mistakes injected into the corpus's real programs (`sleepy koans mutate`,
training seeds, no evalset program) to the day, beside the N template koans. `--programs DIR` (a
`sleepy koans harvest` folder) takes those from its train-side programs instead, and adds a third
held-out suite, `new_programs`: the family's mistakes in its eval-side programs.

    python -m experiments.sleep_gain --family trait_bounds --n 24 --mutants 24 --programs DIR
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
    mutants: int = 0,
    programs: Path | None = None,
) -> dict:
    from sleepy.day import run_day
    from sleepy.koan import load_evalset, save_evalset
    from sleepy.koan.model import known_hashes, without_twins
    from sleepy.koans.generate import EVAL_SEEDS, generate
    from sleepy.koans.mutate import load_programs, mutate_families
    from sleepy.sleep import run_sleep

    out.mkdir(parents=True, exist_ok=True)
    uri = uri or f"sqlite:///{out}/mlflow.db"
    track = [f"tracking.uri={uri}", "tracking.experiment=sleepy-sleep-gain"]
    exclude = set(known_hashes(Path("koans"), Path("evalsets")))
    seen = [k for f in families for k in generate(f, n, seed=seed + 1, exclude_hashes=exclude)]
    if mutants:
        # the corpus's programs, or the train side of a harvest (evalset programs left out)
        pool, _ = (
            load_programs([programs], side="train") if programs else load_programs([Path("koans")])
        )
        seen += mutate_families(families, mutants, seed + 1, pool, exclude)
    exclude |= {k.content_hash for k in seen}
    drawn = [k for f in families for k in generate(f, n, seed=seed + 2, exclude_hashes=exclude)]
    held_out = without_twins(drawn, seen)  # not the day's programs renamed either
    handwritten = [
        k
        for k in load_evalset(Path("evalsets/frozen.json"))
        if k.family in families and k.source == "handwritten"
    ]
    if programs:
        # new programs: the same mistakes in eval-side programs people wrote, never trained on
        held, _ = load_programs([programs], side="eval")
        new = mutate_families(families, n, EVAL_SEEDS.start + seed, held, exclude, "eval", True)
    seen_path = save_evalset(seen, out / "day_koans.json")
    suites = {
        "templates": save_evalset(held_out, out / "held_out.json"),
        "handwritten_frozen": save_evalset(handwritten, out / "handwritten_frozen.json"),
    }
    if programs:
        suites["new_programs"] = save_evalset(new, out / "new_programs.json")

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
    # the sleep trained on more than the day (variants of each failure): no held-out koan may be
    # one of those programs either; each suite's size is reported after this guard
    trained = load_evalset(sleep.training_koans) if sleep.training_koans else seen
    sizes = {"templates": len(drawn), "handwritten_frozen": len(handwritten)}
    guarded = [("templates", held_out), ("handwritten_frozen", handwritten)]
    if programs:
        sizes["new_programs"] = len(new)
        guarded.append(("new_programs", new))
    for suite, koans in guarded:
        suites[suite] = save_evalset(without_twins(koans, trained), out / f"{suite}.json")
    measured = {}
    for suite, path in suites.items():
        for who, adapter in (("base", []), ("adapter", [f"backend.adapter={sleep.adapter_dir}"])):
            measured[suite, who] = run_day(
                compose_config(
                    "day",
                    [
                        *track,
                        f"paths.outputs={out}",
                        f"paths.output_dir={out}/{suite}-{who}",
                        f"koans.evalset={path}",
                        f"run_id={suite}-{who}",
                        *adapter,
                    ],
                )
            ).metrics
    result = {
        "families": families,
        "koans_per_family": n,
        "mutants_per_family": mutants,
        "day_pass_rate": day.metrics["pass_rate"],
        "training_rows": sleep.stats["rows"],
        "train_steps": sleep.metrics["steps"],
    }
    for suite in suites:
        base, after = measured[suite, "base"], measured[suite, "adapter"]
        result[suite] = {
            "koans": int(after["episodes"]),
            "twins_dropped": sizes[suite] - int(after["episodes"]),
            "base": base["pass_rate"],
            "adapter": after["pass_rate"],
            "gain_points": 100 * (after["pass_rate"] - base["pass_rate"]),
        }
    (out / "sleep_gain.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", action="append", required=True)
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mutants", type=int, default=0, help="mutants per family in the day")
    p.add_argument(
        "--programs",
        type=Path,
        default=None,
        help="a `sleepy koans harvest` folder: the day's mutants come from its train side, and "
        "a third held-out suite (new_programs) from its eval side",
    )
    p.add_argument("--out", default=None)
    p.add_argument("overrides", nargs="*", help="sleep overrides, e.g. adapter.max_steps=200")
    a = p.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="sleep-gain-", dir="outputs"))
    out.mkdir(parents=True, exist_ok=True)
    from sleepy.console import quiet_libraries

    quiet_libraries(out / "sleep_gain.log")  # library warnings and progress bars go there
    r = sleep_gain(
        a.family, a.n, out, a.seed, adapter_overrides=a.overrides, mutants=a.mutants,
        programs=a.programs,
    )  # fmt: skip
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
