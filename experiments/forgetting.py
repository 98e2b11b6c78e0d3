"""Forgetting matrix per consolidation method: families learned one after another.

One day + sleep per family gives one task adapter each (shared by all methods, so methods differ
only in how they merge). After step t, each method merges tasks 1..t and the merged adapter is
measured on the frozen evalset's koans of every family in the sequence:
M[t][family] = pass rate. A method that forgets shows earlier families' rates falling.

    python -m experiments.forgetting --family trait_bounds --family lifetimes \
        --family closures_iterators --method none --method mean --method share --method uwsh \
        --method share_router
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from sleepy.config import compose_config


def forgetting(
    families: list[str],
    methods: list[str],
    out: Path,
    n: int = 24,
    seed: int = 0,
    sleep_overrides: list[str] = (),
    suite: Path | None = None,
    trained: dict[str, str] | None = None,
) -> dict:
    """`suite`: an evalset to measure on instead of the frozen koans of these families (e.g. a
    cycle's learning set); `trained`: family -> task adapter already trained (e.g. a cycle's
    sleeps), so methods are compared on the same tasks without training again."""
    import mlflow

    from sleepy.consolidate.run import run_consolidate
    from sleepy.day import run_day
    from sleepy.koan import load_evalset, save_evalset
    from sleepy.koan.model import known_hashes
    from sleepy.koans.generate import generate
    from sleepy.plots import forgetting_matrix_plot
    from sleepy.sleep import run_sleep
    from sleepy.tracking import mlflow_run

    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out.resolve()}/mlflow.db"
    track = [f"tracking.uri={uri}", "tracking.experiment=sleepy-forgetting"]
    source = suite or Path("evalsets/frozen.json")
    measured = [k for k in load_evalset(source) if k.family in families]
    suite = save_evalset(measured, out / "suite.json")
    exclude = set(known_hashes(Path("koans"), Path("evalsets")))
    tasks: dict[str, str] = dict(trained or {})
    for i, fam in enumerate(families):
        done = out / f"sleep_{fam}" / "adapter"
        if fam in tasks:
            continue
        if done.exists():  # a rerun with more methods reuses the task adapters already trained
            tasks[fam] = str(done)
            continue
        koans = generate(fam, n, seed=seed + i, exclude_hashes=exclude)
        path = save_evalset(koans, out / f"day_{fam}.json")
        day = run_day(
            compose_config(
                "day",
                [
                    *track,
                    f"paths.outputs={out}",
                    f"paths.output_dir={out}/day_{fam}",
                    f"koans.evalset={path}",
                    f"run_id=day_{fam}",
                ],
            )
        )
        sleep = run_sleep(
            compose_config(
                "sleep",
                [
                    *track,
                    f"paths.outputs={out}",
                    f"paths.output_dir={out}/sleep_{fam}",
                    f"curate.episodes={day.episodes_db}",
                    f"curate.run_id=day_{fam}",
                    "register=false",
                    f"seed={seed}",
                    *sleep_overrides,
                ],
            )
        )
        tasks[fam] = str(sleep.adapter_dir)

    def measure(adapter: str | None, tag: str, route: str = "off") -> dict:
        over = [
            *track,
            f"paths.outputs={out}",
            f"paths.output_dir={out}/eval_{tag}",
            f"koans.evalset={suite}",
            f"run_id=eval_{tag}",
            "tracking=none",
            "resume=true",  # a rerun reuses measurements already made
        ]
        if adapter:
            over += [f"backend.adapter={adapter}", f"backend.route={route}"]
        m = run_day(compose_config("day", over)).metrics
        return {f: m.get(f"pass_rate.{f}", 0.0) for f in families} | {"all": m["pass_rate"]}

    previous = out / "forgetting.json"
    matrices = json.loads(previous.read_text())["matrices"] if previous.exists() else {}
    matrices["base"] = [measure(None, "base")]
    for method in methods:
        if method == "uwsh":
            matrices[method] = [
                measure(a, f"uwsh_{t + 1}")
                for t, a in enumerate(uwsh_sequence(families, tasks, out, seed))
            ]
            continue
        # "share_router": the Share bundle, each koan routed by its error signature to a task;
        # "arrow": the same bundle's task adapters mixed per token by PEFT's Arrow router;
        # "name@key=value,..." sets consolidation keys, e.g. share_router@threshold=0.95,k_max=48
        name, _, settings = method.partition("@")
        route = {"share_router": "auto", "arrow": "arrow"}.get(name, "off")
        routed = route != "off"
        extra = [f"consolidation.{kv}" for kv in settings.split(",") if kv]
        tag = method.replace("@", "_").replace("=", "").replace(",", "_")
        rows = []
        for t in range(1, len(families) + 1):
            sub = {f: tasks[f] for f in families[:t]}
            cfg = compose_config(
                "consolidate",
                [
                    *track,
                    f"consolidation={'share' if routed else name}",
                    *extra,
                    f"paths.outputs={out}",
                    f"paths.output_dir={out}/{tag}_{t}",
                    "register=false",
                    f"tasks={{{','.join(f'{k}: {v}' for k, v in sub.items())}}}",
                ],
            )
            result = run_consolidate(cfg).consolidated
            rows.append(measure(str(result.adapter_dir), f"{tag}_{t}", route=route))
        matrices[tag] = rows  # a name MLflow accepts in metric keys
    with mlflow_run(uri, "sleepy-forgetting", run_name="forgetting-matrix"):
        mlflow.log_dict(
            {"families": families, "matrices": matrices, "suite": str(source)}, "forgetting.json"
        )
        png = forgetting_matrix_plot(matrices, families, out / "forgetting_matrix.png")
        mlflow.log_artifact(str(png))
        for method, rows in matrices.items():
            for t, row in enumerate(rows):
                mlflow.log_metrics({f"{method}.{k}": v for k, v in row.items()}, step=t)
    result = {"families": families, "matrices": matrices, "suite": str(source)}
    (out / "forgetting.json").write_text(json.dumps(result, indent=2))
    return result


def uwsh_sequence(families: list[str], tasks: dict[str, str], out: Path, seed: int) -> list[str]:
    """UWSH-style: the first task's LoRA fixes the basis; every later task trains only coefficients
    in it (p=2, no phi) on its own curated set; after step t the mean of tasks 1..t is measured."""
    from datasets import load_from_disk
    from omegaconf import OmegaConf

    from sleepy.consolidate.methods import Share, TaskAdapter
    from sleepy.sleep.coefficients import train_coefficients
    from sleepy.tiny import MODEL_DIR

    # consolidation=uwsh as sleepy-cycle would run it: its basis settings, p and phi
    cfg = compose_config("sleep", ["adapter=coefficients", "consolidation=uwsh"])
    uwsh = OmegaConf.to_object(cfg.consolidation)
    first = TaskAdapter.from_path(families[0], tasks[families[0]])
    bundle = Share(uwsh)([first], str(MODEL_DIR), out / "uwsh_basis").bundle_dir
    learned, merged = [first], []
    for i, fam in enumerate(families):
        if i > 0:
            data = load_from_disk(str(out / f"sleep_{fam}" / "dataset"))
            res = train_coefficients(
                data, MODEL_DIR, bundle, cfg.adapter, out / f"uwsh_task_{fam}", seed=seed,
                p=uwsh.p, phi=uwsh.phi,
            )  # fmt: skip
            learned.append(TaskAdapter.from_path(fam, res.adapter_dir))
        # the merged adapter after step i: mean delta-W of the tasks so far (PEFT cat, weights 1/T)
        from sleepy.consolidate.methods import PeftMerge

        merged.append(
            str(
                PeftMerge("cat", method="uwsh")(
                    learned, str(MODEL_DIR), out / f"uwsh_{i + 1}"
                ).adapter_dir
            )
        )
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", action="append", required=True)
    p.add_argument("--method", action="append", required=True)
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--out", default=None)
    p.add_argument("--suite", default=None, help="evalset to measure on (default: frozen koans)")
    p.add_argument(
        "--task", action="append", default=[], help="family=adapter folder already trained"
    )
    p.add_argument("overrides", nargs="*", help="sleep overrides, e.g. adapter.max_steps=200")
    a = p.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="forgetting-", dir="outputs"))
    trained = dict(t.split("=", 1) for t in a.task)
    suite = Path(a.suite) if a.suite else None
    r = forgetting(a.family, a.method, out, a.n, 0, a.overrides, suite, trained)
    for method, rows in r["matrices"].items():
        print(method)
        for t, row in enumerate(rows):
            print(f"  after {t}: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
