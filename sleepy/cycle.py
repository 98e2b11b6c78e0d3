"""`sleepy-cycle`: day -> sleep -> consolidate -> eval -> gate, for N cycles.

Each cycle is a parent MLflow run with the stages nested under it. A stage's result is written to
state.json as soon as it finishes, so a crashed run resumed with the same run_id skips what is done.

    sleepy-cycle cycles=2
    sleepy-cycle experiment=three_families consolidation=share
    sleepy-cycle -m adapter.rank=4,8,16 consolidation=none,share,uwsh
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from sleepy.adapters.router import Router
from sleepy.config import (
    CONF_PATH,
    check_config,
    compose_config,
    exit_on_bad_overrides,
    one_line_errors,
)
from sleepy.console import LOG_NAME, Display, current, overview, stage, table_console, verbose_flag
from sleepy.consolidate.run import run_consolidate
from sleepy.day import run_day
from sleepy.eval import evaluate
from sleepy.eval.learning import LearningSetError, learning_set_for
from sleepy.files import write_atomic
from sleepy.plots import family_cycle_matrix, plots_from_mlflow
from sleepy.sleep import run_sleep
from sleepy.summary import LEGEND, summary_table
from sleepy.sweep import job_values, label, sweep_id
from sleepy.tracking import TrackingError, log_config, mlflow_run, tracking_uri, ui_command

# The groups every stage takes from the cycle as the cycle composed them (with the user's
# overrides and the experiment's): whatever a stage's own config would default them to.
SHARED = (
    "backend",
    "model",
    "agent",
    "sandbox",
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
        """The state saved at `path` ({} when there is none yet). A file that is not what `put`
        writes (cut short, overwritten, edited by hand) is a CycleError that leaves it as it is:
        it is the only record of the stages already done."""
        if not path.exists():
            return cls(path, {})
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            problem = _state_problem(data)
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        except json.JSONDecodeError as e:
            problem = f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        if problem:
            raise CycleError(
                f"{path} is damaged: {problem}. It records which stages of this run are done; "
                "restore it from a copy (or repair it by hand) and run the same command again, or "
                "move it aside to run every stage again"
            )
        return cls(path, data)

    def get(self, cycle: int, stage: str) -> dict | None:
        return self.data.get(str(cycle), {}).get(stage)

    def put(self, cycle: int, stage: str, value: dict) -> None:
        self.data.setdefault(str(cycle), {})[stage] = value
        write_atomic(self.path, json.dumps(self.data, indent=2))  # a crash never leaves half a file


def _state_problem(data) -> str | None:
    """What is wrong with state.json's content, or None: {cycle: {stage: {...}}}."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object of cycles"
    for cycle, stages in data.items():
        if not cycle.isdigit() or not isinstance(stages, dict):
            return f"entry '{cycle}' is not a cycle number holding its stages"
        for name, value in stages.items():
            if not isinstance(value, dict):
                return f"cycle {cycle}'s '{name}' is not an object"
    return None


def stage_cfg(cfg: DictConfig, name: str, out: Path, **values) -> DictConfig:
    """The stage's own config (sleepy/conf/<name>.yaml) writing to `out`, with the cycle's SHARED
    groups in place of its own and the given values set (`koans__count=3` sets koans.count)."""
    stage = compose_config(name, [f"paths.output_dir={out}", f"paths.outputs={cfg.paths.outputs}"])
    with open_dict(stage):
        for key in SHARED:
            if key in cfg and key in stage:
                # resolved here: tracking.experiment is the cycle's, so the stages nest in it
                node = copy.deepcopy(cfg[key])
                OmegaConf.resolve(node)
                stage[key] = node  # keeps its type: a structured group is still checked
        stage.nested = True
        for dotted, value in values.items():
            OmegaConf.update(stage, dotted.replace("__", "."), value, force_add=True)
    return stage


def _families(metrics: dict) -> dict[str, float]:
    return {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("pass_rate.")}


def other_families_routed(task: str, families: list[str], *metrics: dict) -> dict[str, int]:
    """family -> koans of a family `task` did not learn that its adapter answered in the eval
    (the candidate's episodes on the frozen suite and the learning set)."""
    out: dict[str, int] = {}
    for m in metrics:
        for key, n in m.items():
            adapter, _, family = key.removeprefix("koans_routed.").partition(".")
            if key.startswith("koans_routed.") and adapter == task and family not in families:
                out[family] = out.get(family, 0) + int(n)
    return out


NEW_PROGRAM_KEYS = ("new_programs_pass_rate", "champion_new_programs_pass_rate")


CURRICULUM_KEYS = {"families", "count", "generate", "mutants", "patterns", "source"}


def _curriculum(cfg: DictConfig, c: int) -> DictConfig:
    items = cfg.curriculum
    if not items:
        raise CycleError("curriculum is empty: give each cycle its koans (see conf/experiment/)")
    return items[min(c, len(items)) - 1]


def check_curriculum(cfg: DictConfig) -> None:
    """Each curriculum entry's keys and counts, before any cycle starts."""
    for i, item in enumerate(cfg.curriculum or [], 1):
        unknown = sorted(set(item) - CURRICULUM_KEYS)
        if unknown:
            raise CycleError(
                f"curriculum entry {i}: unknown key '{unknown[0]}' "
                f"(keys: {', '.join(sorted(CURRICULUM_KEYS))})"
            )
        if not item.get("families"):
            raise CycleError(f"curriculum entry {i}: give its families, e.g. families: [lifetimes]")
        for key in ("count", "generate", "mutants"):
            value = item.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise CycleError(f"curriculum entry {i}: {key}={value!r} must be an integer >= 0")


def run_cycle(cfg: DictConfig) -> list[dict]:
    """Run cfg.cycles cycles (resuming from state.json); returns one summary per cycle."""
    import mlflow

    check_config(cfg)
    check_curriculum(cfg)
    programs = cfg.learning_set.programs
    if programs and not Path(str(programs)).is_dir():
        raise CycleError(
            f"learning_set.programs={programs}: no such folder; make one with "
            f"`sleepy koans harvest --out {programs}` or set learning_set.programs=null"
        )
    # what the chosen strategies need from the cycle, as each declares it
    backend, trainer = get_class(cfg.backend._target_), get_class(cfg.adapter._target_)
    consolidator = get_class(cfg.consolidation._target_)
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
    # In a sweep, runs are named by what the job varies ("rank=8 consolidation=share"); the
    # lineage id (a timestamp) says nothing a person can compare, and the UI cuts it short.
    swept = label(job_values())
    cycles = int(cfg.cycles)
    overview(cycles=cycles, title=f"sleepy-cycle {swept}" if swept else None)
    summaries = []
    for c in range(1, cycles + 1):
        plan = _curriculum(cfg, c)
        cdir = out / f"cycle{c}"
        parent_id = (state.get(c, "parent") or {}).get("run_id")
        tags = {
            "stage": "cycle",
            "cycle": str(c),
            "lineage": lineage,
            "consolidation": str(cfg.consolidation.get("method", "none")),
            "families": ",".join(plan.families),
            **({"swept": swept, "sweep": sweep_id() or ""} if swept else {}),
        }
        name = f"{swept} · cycle {c}" if swept else f"cycle {c} · {lineage}"
        ran = False  # did this process run a stage of this cycle (not just read it back)?
        overview(cycle=c, phase="day")
        with mlflow_run(uri, experiment, run_name=name, tags=tags, run_id=parent_id) as parent:
            if parent is not None:  # None: tracking is off
                state.put(c, "parent", {"run_id": parent.info.run_id})
            if parent_id is None and parent is not None:  # every cycle's run carries the config
                this = cfg.copy()
                with open_dict(this):
                    this.cycle = c  # the cycle this run is, not the day config's default 0
                    this.families = list(plan.families)
                log_config(this, out)
            champion = (state.get(c - 1, "eval") or {}).get("champion_adapter") if c > 1 else None

            if (day := state.get(c, "day")) is None:
                ran = True
                dcfg = stage_cfg(
                    cfg,
                    "day",
                    cdir / "day",
                    run_id=f"{lineage}-c{c}-day",
                    run_name=f"c{c} day",
                    label=f"day on {', '.join(plan.families)}",
                    cycle=c,
                    resume=True,
                    koans__families=list(plan.families),
                    koans__count=plan.get("count"),
                    koans__generate=plan.get("generate", 0),
                    koans__patterns=list(plan.get("patterns", [])),
                    koans__mutants=plan.get("mutants", 0),
                    koans__programs=cfg.koans.programs,
                    koans__seed=int(cfg.seed) + c,
                    koans__source=plan.get("source", cfg.paths.koans),
                    # a backend that loads adapters itself starts from the champion
                    **({"backend__adapter": champion} if backend.loads_adapter else {}),
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
                ran = True
                overview(phase="sleep")
                # adapter=coefficients: after the first cycle, train in the lineage's Share basis
                basis = (state.get(c - 1, "lineage") or {}).get("bundle")
                phase2 = {"adapter__bundle": basis} if trainer.in_basis else {}
                scfg = stage_cfg(
                    cfg,
                    "sleep",
                    cdir / "sleep",
                    cycle=c,
                    run_name=f"c{c} sleep",
                    register=False,
                    curate__episodes=day["db"],
                    curate__run_id=day["run_id"],
                    curate__koan_paths=[str(cfg.paths.koans)],
                    seed=int(cfg.seed),
                    **phase2,
                )
                r = run_sleep(scfg)
                slp = {
                    "adapter": str(r.adapter_dir),
                    "rows": r.stats["rows"],
                    "run_id": r.run_id,
                    "training_koans": str(r.training_koans),
                }
                state.put(c, "sleep", slp)

            if (cons := state.get(c, "consolidate")) is None:
                ran = True
                overview(phase="consolidate")
                tasks = {
                    **(state.get(c - 1, "lineage") or {}).get("tasks", {}),
                    f"c{c}": slp["adapter"],
                }
                previous = (state.get(c - 1, "lineage") or {}).get("bundle")
                ccfg = stage_cfg(
                    cfg,
                    "consolidate",
                    cdir / "consolidate",
                    cycle=c,
                    tasks=tasks,
                    register=True,
                    run_name=f"c{c} consolidate",
                )
                if previous and consolidator.keeps_lineage:
                    ccfg.consolidation.previous = previous
                result, version = run_consolidate(ccfg)
                cons = {
                    "adapter": str(result.adapter_dir),
                    "version": version,
                    "tasks": tasks,
                    "bundle": str(result.bundle_dir) if result.bundle_dir else None,
                }
                state.put(c, "consolidate", cons)

            if (learn := state.get(c, "learning_set")) is None:
                ran = True
                overview(phase="eval")
                with stage("eval", "build the learning set from the days' failures") as bar:
                    learn = learning_set_for(
                        cfg,
                        [state.get(i, "day") for i in range(1, c + 1)],
                        [state.get(i, "sleep") for i in range(1, c + 1)],
                        (state.get(c - 1, "learning_set") or {}).get("path"),
                        cdir / "eval" / "learning_set.json",
                        name=f"learning-{lineage}-c{c}",
                    )
                    bar.update(note=f"{learn['koans']} fresh programs")
                state.put(c, "learning_set", learn)

            if (ev := state.get(c, "eval")) is None:
                ran = True
                overview(phase="eval")
                days = [state.get(i, "day")["db"] for i in range(1, c + 1)]
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
                    run_name=f"c{c} eval" + (f" v{cons['version']}" if cons["version"] else ""),
                    lineage__name=lineage,
                    lineage__episodes=days,
                    koans__evalset=str(cfg.evalset),
                    koans__learning_set=learn["path"] if learn["koans"] else None,
                )
                r = evaluate(ecfg)
                if r.withdrawn:  # the bundle the gate judged: the routes withdrawn
                    cons = {
                        **cons,
                        "adapter": str(r.candidate.adapter_dir),
                        "version": r.candidate.version,
                        "bundle": str(Router.find(r.candidate.adapter_dir)),
                        "withdrawn": r.withdrawn,
                    }
                    state.put(c, "consolidate", cons)
                # no failures, no learning set: learning is measured on the frozen suite
                on = r.learning or r
                lm, lcm = on.metrics, on.champion_metrics
                ev = {
                    "promoted": r.promoted,
                    "decision": r.decision.summary(),
                    "pass_rate": r.metrics["pass_rate"],
                    "champion_pass_rate": r.champion_metrics["pass_rate"],
                    "learning_pass_rate": lm["pass_rate"],
                    "champion_learning_pass_rate": lcm["pass_rate"],
                    "repeat_error_rate": lm["repeat_error_rate"],
                    "champion_repeat_error_rate": lcm["repeat_error_rate"],
                    "median_steps_to_green": lm["median_steps_to_green"],
                    # the lineage's mistakes in programs it never saw (learning_set.programs)
                    **(
                        {
                            "new_programs_pass_rate": lm["new_programs_pass_rate"],
                            "champion_new_programs_pass_rate": lcm["new_programs_pass_rate"],
                        }
                        if "new_programs_pass_rate" in lm
                        else {}
                    ),
                    "regressions": r.regressions,
                    "gains": r.gains,
                    "table": str(r.table),
                    "family": _families(r.metrics),
                    "learning_family": _families(lm),
                    "champion_learning_family": _families(lcm),
                    "champion_adapter": cons["adapter"] if r.promoted else champion,
                    # koans of other families the new task adapter answered (a routing backend)
                    "other_families_routed": other_families_routed(
                        f"c{c}", list(plan.families), r.metrics, *([lm] if r.learning else [])
                    ),
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
                "learning_pass_rate": ev["learning_pass_rate"],
                "champion_learning_pass_rate": ev["champion_learning_pass_rate"],
                "repeat_error_rate": ev["repeat_error_rate"],
                "champion_repeat_error_rate": ev["champion_repeat_error_rate"],
                "median_steps_to_green": ev["median_steps_to_green"],
                "pass_rate": ev["pass_rate"],
                "champion_pass_rate": ev["champion_pass_rate"],
                "promoted": float(ev["promoted"]),
                "regressions": len(ev["regressions"]),
                "gains": len(ev["gains"]),
                "day_pass_rate": day["pass_rate"] or 0.0,
                "other_families_routed": sum(ev.get("other_families_routed", {}).values()),
                **{k: ev[k] for k in NEW_PROGRAM_KEYS if k in ev},
            }
            per_family = {
                **{f"learning_pass_rate_{f}": v for f, v in ev["learning_family"].items()},
                **{
                    f"champion_learning_pass_rate_{f}": v
                    for f, v in ev["champion_learning_family"].items()
                },
            }
            if parent is not None:
                mlflow.log_metrics(
                    {k: float(v) for k, v in {**metrics, **per_family}.items()}, step=c
                )
                # what `sleepy report` rebuilds this cycle's row from
                mlflow.set_tags(
                    {
                        "decision": ev["decision"][:4900],
                        "gate.decision": ev["decision"].split(":")[0],
                        "families": ",".join(plan.families),
                    }
                )
                if (display := current()) is not None:
                    display.log_to_mlflow()
            summaries.append(
                {
                    "cycle": c,
                    **metrics,
                    "families": list(plan.families),
                    "learning_family": ev["learning_family"],
                    "champion_learning_family": ev["champion_learning_family"],
                    "decision": ev["decision"],
                    "other_families_by_family": ev.get("other_families_routed", {}),
                }
            )
            if (display := current()) is not None:
                display.cycle_done(ran)
    (out / "summary.json").write_text(json.dumps(summaries, indent=2))
    if cfg.get("plots", True) and uri is not None:  # the plots read the MLflow store
        overview(phase="plots")
        with stage("plots", f"plots of lineage {swept or lineage}") as bar:
            pngs = [family_cycle_matrix(summaries, out / "plots" / "families_by_cycle.png")]
            pngs += plots_from_mlflow(
                experiment, uri, out / "plots", lineage=lineage, title=swept or lineage
            )
            bar.update(note=f"{len(pngs)} PNGs")
        last = state.get(int(cfg.cycles), "parent")["run_id"]
        with mlflow_run(uri, experiment, run_id=last):
            for png in pngs:
                mlflow.log_artifact(str(png), "plots")
    return summaries


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="cycle")
@one_line_errors("sleepy-cycle", CycleError, LearningSetError, TrackingError)
def _cycle(cfg: DictConfig) -> None:
    out = Path(str(cfg.paths.output_dir))
    with Display("sleepy-cycle", out / LOG_NAME, bool(cfg.get("verbose", False))):
        summaries = run_cycle(cfg)
    console = table_console()
    name = label(job_values()) or cfg.lineage or out.name
    console.print(summary_table(summaries, f"sleepy-cycle {name}"))
    console.print(f"[dim]{LEGEND}[/]", highlight=False)
    for s in summaries:
        console.print(f"cycle {s['cycle']} gate: {s['decision']}", highlight=False)
    console.print(f"outputs:   {out}  (state.json, summary.json, one folder per cycle and stage)")
    console.print(f"log:       {out / LOG_NAME}  (other libraries' warnings and progress)")
    if cfg.get("plots", True) and cfg.tracking.get("enabled", False):
        console.print(f"plots:     {out / 'plots'}")
        console.print(
            f"MLflow UI: {ui_command(str(cfg.tracking.uri))}   then open http://127.0.0.1:5000 "
            f"(experiment '{cfg.tracking.experiment}')",
            highlight=False,
        )


def main() -> None:
    verbose_flag()
    exit_on_bad_overrides("cycle", "sleepy-cycle")
    _cycle()


if __name__ == "__main__":
    main()
