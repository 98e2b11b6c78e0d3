"""`sleepy-cycle`: day -> sleep -> consolidate -> eval -> gate, for N cycles.

Each cycle is a parent MLflow run with the stages nested under it. A stage's result is written to
state.json as soon as it finishes, so a crashed run resumed with the same run_id skips what is done.

    sleepy-cycle cycles=2
    sleepy-cycle experiment=three_families consolidation=share
    sleepy-cycle -m adapter.rank=4,8,16 consolidation=none,share,uwsh
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from sleepy.config import CONF_DIR, check_config, compose_config, one_line_errors
from sleepy.tracking import TrackingError

# Groups a stage inherits from the cycle (with every override the user gave on the command line).
SHARED = (
    "backend",
    "model",
    "agent",
    "adapter",
    "curate",
    "consolidation",
    "gate",
    "tracking",
    "registry",
)


class CycleError(RuntimeError):
    """A cycle that cannot go on; the message says what to fix."""


@dataclass
class State:
    """What each cycle has done so far, saved after every stage."""

    path: Path
    data: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        return cls(path, json.loads(path.read_text()) if path.exists() else {})

    def get(self, cycle: int, stage: str) -> dict | None:
        return self.data.get(str(cycle), {}).get(stage)

    def put(self, cycle: int, stage: str, value: dict) -> None:
        self.data.setdefault(str(cycle), {})[stage] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)  # atomic: a crash never leaves half a state file


def stage_cfg(cfg: DictConfig, name: str, out: Path, **values) -> DictConfig:
    """The stage's own config, with the cycle's groups (resolved) and the given values set."""
    stage = compose_config(name, [f"paths.output_dir={out}", f"paths.outputs={cfg.paths.outputs}"])
    with open_dict(stage):
        for key in SHARED:
            if key in cfg and (key in stage or key in ("registry",)):
                stage[key] = OmegaConf.create(OmegaConf.to_container(cfg[key], resolve=True))
        stage.nested = True
        for dotted, value in values.items():
            OmegaConf.update(stage, dotted.replace("__", "."), value, force_add=True)
    return stage


def _curriculum(cfg: DictConfig, c: int) -> DictConfig:
    items = cfg.curriculum
    if not items:
        raise CycleError("curriculum is empty: give each cycle its koans (see conf/experiment/)")
    return items[min(c, len(items)) - 1]


def run_cycle(cfg: DictConfig) -> list[dict]:
    """Run cfg.cycles cycles (resuming from state.json); returns one summary per cycle."""
    import mlflow

    from sleepy.consolidate.run import run_consolidate
    from sleepy.day import run_day
    from sleepy.eval import evaluate
    from sleepy.sleep import run_sleep
    from sleepy.tracking import mlflow_run, tracking_uri

    check_config(cfg)
    out = Path(str(cfg.paths.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    state = State.load(out / "state.json")
    # One lineage per sweep job: multirun dirs end in the job number.
    lineage = str(
        cfg.lineage or (f"{out.parent.name}-{out.name}" if out.name.isdigit() else out.name)
    )
    uri, experiment = tracking_uri(cfg.tracking), str(cfg.tracking.experiment)
    if out.name.isdigit() and cfg.registry.get("per_sweep_job", True):
        # Sweep jobs are competing strategies: each gets its own registered model (and champion).
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.registry.name = f"{cfg.registry.name}-{lineage}"
    summaries = []
    for c in range(1, int(cfg.cycles) + 1):
        plan = _curriculum(cfg, c)
        cdir = out / f"cycle{c}"
        parent_id = (state.get(c, "parent") or {}).get("run_id")
        tags = {
            "stage": "cycle",
            "cycle": str(c),
            "lineage": lineage,
            "consolidation": str(cfg.consolidation.get("method", "none")),
        }
        with mlflow_run(
            uri, experiment, run_name=f"{lineage}-cycle{c}", tags=tags, run_id=parent_id
        ) as parent:
            if parent is not None:  # None: tracking is off
                state.put(c, "parent", {"run_id": parent.info.run_id})
            if c == 1 and parent_id is None and parent is not None:
                from sleepy.tracking import log_config

                log_config(cfg, out)
            champion = (state.get(c - 1, "eval") or {}).get("champion_adapter") if c > 1 else None

            if (day := state.get(c, "day")) is None:
                dcfg = stage_cfg(
                    cfg,
                    "day",
                    cdir / "day",
                    run_id=f"{lineage}-c{c}-day",
                    cycle=c,
                    resume=True,
                    paths__episodes_db=str(cdir / "day" / "episodes.sqlite"),
                    koans__families=list(plan.families),
                    koans__count=plan.get("count"),
                    koans__generate=plan.get("generate", 0),
                    koans__seed=int(cfg.seed) + c,
                    koans__source=plan.get("source", cfg.paths.koans),
                    backend__adapter=champion
                    if str(cfg.backend.get("_target_", "")).endswith("HFBackend")
                    else None,
                )
                r = run_day(dcfg)
                day = {
                    "run_id": r.run_id,
                    "db": str(r.episodes_db),
                    "pass_rate": r.metrics.get("pass_rate"),
                    "mlflow_run_id": r.mlflow_run_id,
                }
                state.put(c, "day", day)

            if (slp := state.get(c, "sleep")) is None:
                # adapter=coefficients: after the first cycle, train in the lineage's Share basis
                basis = (state.get(c - 1, "lineage") or {}).get("bundle")
                phase2 = {"adapter__bundle": basis} if cfg.adapter.method == "coefficients" else {}
                scfg = stage_cfg(
                    cfg,
                    "sleep",
                    cdir / "sleep",
                    cycle=c,
                    register=False,
                    curate__episodes=day["db"],
                    curate__run_id=day["run_id"],
                    curate__koan_paths=[str(cfg.paths.koans)],
                    seed=int(cfg.seed),
                    **phase2,
                )
                r = run_sleep(scfg)
                slp = {"adapter": str(r.adapter_dir), "rows": r.stats["rows"], "run_id": r.run_id}
                state.put(c, "sleep", slp)

            if (cons := state.get(c, "consolidate")) is None:
                tasks = {
                    **(state.get(c - 1, "lineage") or {}).get("tasks", {}),
                    f"c{c}": slp["adapter"],
                }
                previous = (state.get(c - 1, "lineage") or {}).get("bundle")
                ccfg = stage_cfg(
                    cfg, "consolidate", cdir / "consolidate", cycle=c, tasks=tasks, register=True
                )
                if previous and "previous" in ccfg.consolidation:
                    ccfg.consolidation.previous = previous
                result, version = run_consolidate(ccfg)
                cons = {
                    "adapter": str(result.adapter_dir),
                    "version": version,
                    "tasks": tasks,
                    "bundle": str(result.bundle_dir) if result.bundle_dir else None,
                }
                state.put(c, "consolidate", cons)

            if (ev := state.get(c, "eval")) is None:
                earlier = [str(out / f"cycle{i}" / "eval" / "episodes.sqlite") for i in range(1, c)]
                ecfg = stage_cfg(
                    cfg,
                    "eval",
                    cdir / "eval",
                    cycle=c,
                    # without tracking there is no registry: the candidate is the adapter folder
                    candidate=cons["version"] or cons["adapter"],
                    champion="champion",
                    promote=True,
                    run_id=f"{lineage}-c{c}-eval",
                    paths__episodes_db=str(cdir / "eval" / "episodes.sqlite"),
                    lineage__name=lineage,
                    lineage__episodes=earlier,
                    koans__evalset=str(cfg.evalset),
                )
                r = evaluate(ecfg)
                ev = {
                    "promoted": r.promoted,
                    "decision": r.decision.summary(),
                    "pass_rate": r.metrics["pass_rate"],
                    "champion_pass_rate": r.champion_metrics["pass_rate"],
                    "repeat_error_rate": r.metrics.get("repeat_error_rate"),
                    "median_steps_to_green": r.metrics.get("median_steps_to_green"),
                    "regressions": r.regressions,
                    "gains": r.gains,
                    "table": str(r.table),
                    "family": {k: v for k, v in r.metrics.items() if k.startswith("pass_rate.")},
                    "champion_adapter": cons["adapter"] if r.promoted else champion,
                }
                state.put(c, "eval", ev)
                # What the next cycle builds on: the promoted lineage (a rejected task is dropped).
                prev = state.get(c - 1, "lineage") or {"tasks": {}, "bundle": None}
                state.put(
                    c,
                    "lineage",
                    {"tasks": cons["tasks"], "bundle": cons["bundle"]} if r.promoted else prev,
                )

            metrics = {
                "pass_rate": ev["pass_rate"],
                "champion_pass_rate": ev["champion_pass_rate"],
                "promoted": float(ev["promoted"]),
                "regressions": len(ev["regressions"]),
                "gains": len(ev["gains"]),
                "day_pass_rate": day["pass_rate"] or 0.0,
                **{
                    k: v
                    for k, v in (
                        ("repeat_error_rate", ev["repeat_error_rate"]),
                        ("median_steps_to_green", ev["median_steps_to_green"]),
                    )
                    if v is not None
                },
            }
            if parent is not None:
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=c)
                mlflow.set_tag("decision", ev["decision"][:500])
            summaries.append({"cycle": c, **metrics, "decision": ev["decision"]})
    (out / "summary.json").write_text(json.dumps(summaries, indent=2))
    if cfg.get("plots", True) and uri is not None:  # the plots read the MLflow store
        from sleepy.plots import plots_from_mlflow

        pngs = plots_from_mlflow(experiment, uri, out / "plots")
        last = state.get(int(cfg.cycles), "parent")["run_id"]
        with mlflow_run(uri, experiment, run_id=last):
            for png in pngs:
                mlflow.log_artifact(str(png), "plots")
    return summaries


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="cycle")
@one_line_errors("sleepy-cycle", CycleError, TrackingError)
def main(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    summaries = run_cycle(cfg)
    table = Table(title=f"sleepy-cycle {cfg.lineage or ''}".strip())
    cols = ("cycle", "pass_rate", "champion_pass_rate", "repeat_error_rate", "regressions", "gains")
    for col in (*cols, "gate"):
        table.add_column(col)
    for s in summaries:
        cells = [f"{s[k]:.3f}" if isinstance(s.get(k), float) else str(s.get(k, "")) for k in cols]
        table.add_row(*cells, s["decision"].split(":")[0])
    Console().print(table)
    for s in summaries:
        print(f"cycle {s['cycle']} gate: {s['decision']}")
    out = Path(str(cfg.paths.output_dir))
    print(f"outputs:   {out}  (state.json, summary.json, one folder per cycle and stage)")
    print(f"plots:     {out / 'plots'}")
    print(
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {cfg.tracking.uri} --port 5000"
        f"   (experiment '{cfg.tracking.experiment}')"
    )


if __name__ == "__main__":
    main()
