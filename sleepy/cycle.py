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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from sleepy.adapters.router import Router
from sleepy.config import (
    CONF_PATH,
    RegistryConfig,
    check_config,
    exit_on_bad_overrides,
    one_line_errors,
    ranged,
)
from sleepy.console import (
    LOG_NAME,
    Display,
    current,
    log_text,
    overview,
    say,
    stage,
    table_console,
    verbose_flag,
)
from sleepy.consolidate.config import ConsolidateConfig
from sleepy.consolidate.run import run_consolidate
from sleepy.day import run_day
from sleepy.day.config import DayConfig
from sleepy.eval import evaluate
from sleepy.eval.config import EvalConfig, LearningSetConfig
from sleepy.eval.learning import LearningSetError, learning_set_for
from sleepy.files import write_atomic
from sleepy.plots import family_cycle_matrix, plots_from_mlflow
from sleepy.sleep import run_sleep
from sleepy.sleep.config import CurateConfig, SleepConfig
from sleepy.stop import rerun, resume_with, stops
from sleepy.summary import LEGEND, summary_table
from sleepy.sweep import job_values, label, sweep_id
from sleepy.tracking import (
    TrackingError,
    log_config,
    loggable,
    mlflow_run,
    tracking_uri,
    ui_command,
)

# The groups a stage takes from the cycle's one config (with the user's overrides and the
# experiment's), where the stage's schema declares them.
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

    def put(self, cycle: int, stage: str, value: dict) -> dict:
        """Record `value` as the cycle's `stage` and save at once; returns it."""
        self.data.setdefault(str(cycle), {})[stage] = value
        write_atomic(self.path, json.dumps(self.data, indent=2))  # a crash never leaves half a file
        return value


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


def stage_spec(cfg: DictConfig, schema: type, out: Path, values: dict) -> DictConfig:
    """What the cycle hands a stage: its schema (DayConfig, SleepConfig, ...) with the cycle's
    SHARED groups, paths and registered model in place of its own, writing to `out`, and
    `values` (nested, as the schema has them) set. A key the schema does not declare, or a value
    of the wrong type, is refused here: nothing is added on the way."""
    spec = OmegaConf.structured(schema)
    declared = {f.name for f in fields(schema)}
    groups = {}
    for key in SHARED:
        if key in declared and key in cfg:
            # resolved here: tracking.experiment is the cycle's, so the stages nest in it
            node = copy.deepcopy(cfg[key])
            OmegaConf.resolve(node)
            groups[key] = node
    paths = copy.deepcopy(cfg.paths)  # not resolved: episodes_db follows the stage's output_dir
    paths.output_dir = str(out)
    return OmegaConf.merge(
        spec,
        groups,
        {"paths": paths, "registry": {"name": cfg.registry.name}, "nested": True},
        values,
    )


NEW_PROGRAM_KEYS = ("new_programs_pass_rate", "champion_new_programs_pass_rate")


@dataclass
class CurriculumEntry:
    """One entry of `curriculum`: which koans a cycle's day meets (the last entry repeats)."""

    families: list[str] = MISSING  # e.g. [lifetimes]
    count: int | None = ranged(None, ge=0)  # koans drawn from them (null: every one)
    generate: int = ranged(0, ge=0)  # fresh template koans generated for the day
    mutants: int = ranged(0, ge=0)  # mutants of train-side programs (koans.programs)
    patterns: list[str] = field(default_factory=list)  # only these template patterns
    # the koans folder; null: none, the day meets generated koans only
    source: str | None = "${paths.koans}"


REGISTERED_PREFIX = "sleepy-fixer"  # a run's own registered model: sleepy-fixer-<lineage>


@dataclass
class CycleRegistryConfig(RegistryConfig):
    # null: this run's own model, sleepy-fixer-<lineage>; a name continues that model (its
    # champion is cycle 1's "before")
    name: str | None = None
    per_sweep_job: bool = True  # in a -m sweep each job registers as <registry.name>-<lineage>


@dataclass
class CycleConfig(DayConfig):
    """The `sleepy-cycle` config (sleepy/conf/cycle.yaml extends it): the day's keys, the sleep's
    and consolidation's groups, the gate, and what each cycle meets and is measured on."""

    task: str = "cycle"
    lineage: str | None = None  # names this sequence of cycles; null: from the output dir
    cycles: int = ranged(2, ge=1)
    plots: bool = True  # learning curve, forgetting heatmap, families, strategies (PNG + MLflow)
    evalset: str = "frozen"  # the frozen suite: every candidate is checked on it for regressions
    learning_set: LearningSetConfig = field(default_factory=LearningSetConfig)
    # which koans each cycle's day meets (the last entry repeats)
    curriculum: list[CurriculumEntry] = field(
        default_factory=lambda: [
            CurriculumEntry(families=["trait_bounds"], count=16),
            CurriculumEntry(families=["lifetimes"], count=16),
        ]
    )
    registry: CycleRegistryConfig = field(default_factory=CycleRegistryConfig)
    adapter: Any = None
    curate: CurateConfig = field(default_factory=CurateConfig)
    consolidation: Any = None
    gate: Any = None
    experiment: Any = None


def curriculum(cfg: DictConfig) -> list[CurriculumEntry]:
    """The curriculum, before any cycle starts (its keys, types and ranges were checked when
    the config was composed)."""
    if not cfg.curriculum:
        raise CycleError("curriculum is empty: give each cycle its koans (see conf/experiment/)")
    for i, item in enumerate(cfg.curriculum, 1):
        if OmegaConf.is_missing(item, "families") or not item.families:
            raise CycleError(f"curriculum entry {i}: give its families, e.g. families: [lifetimes]")
    return [OmegaConf.to_object(item) for item in cfg.curriculum]


@dataclass
class Cycle:
    """One cycle of a lineage: what its stages are told, and where they write."""

    cfg: DictConfig
    state: State
    c: int
    plan: CurriculumEntry
    lineage: str
    dir: Path

    @property
    def promoted(self) -> dict:
        """What this cycle builds on: the promoted lineage's tasks and bundle so far."""
        return self.state.get(self.c - 1, "lineage") or {"tasks": {}, "bundle": None}


def _day(cy: Cycle, champion: str | None, loads_adapter: bool) -> dict:
    cfg, c, plan = cy.cfg, cy.c, cy.plan
    koans = {
        "families": plan.families,
        "count": plan.count,
        "generate": plan.generate,
        "patterns": plan.patterns,
        "mutants": plan.mutants,
        "programs": cfg.koans.programs,
        "seed": int(cfg.seed) + c,
        "source": plan.source,
    }
    spec = stage_spec(
        cfg,
        DayConfig,
        cy.dir / "day",
        {
            "run_id": f"{cy.lineage}-c{c}-day",
            "run_name": f"c{c} day",
            "label": f"day on {', '.join(plan.families)}",
            "cycle": c,
            "resume": True,
            "koans": koans,
            # a backend that loads adapters itself starts from the champion
            **({"backend": {"adapter": champion}} if loads_adapter else {}),
        },
    )
    return run_day(spec).record()


def _sleep(cy: Cycle, day: dict, in_basis: bool) -> dict:
    overview(phase="sleep")
    # a trainer that trains in the lineage's basis gets its bundle (none before the first)
    basis = {"adapter": {"bundle": cy.promoted["bundle"]}} if in_basis else {}
    curate = {
        "episodes": day["db"],
        "run_id": day["run_id"],
        "koan_paths": [str(cy.cfg.paths.koans)],
    }
    spec = stage_spec(
        cy.cfg,
        SleepConfig,
        cy.dir / "sleep",
        {
            "cycle": cy.c,
            "run_name": f"c{cy.c} sleep",
            "register": False,
            "seed": int(cy.cfg.seed),
            "curate": curate,
            "accelerate": {"launch": False},
            **basis,
        },
    )
    return run_sleep(spec).record()


def _consolidate(cy: Cycle, slp: dict, keeps_lineage: bool) -> dict:
    overview(phase="consolidate")
    tasks = {**cy.promoted["tasks"], f"c{cy.c}": slp["adapter"]}
    # a method that keeps lineage state builds on the promoted bundle
    previous = cy.promoted["bundle"] if keeps_lineage else None
    spec = stage_spec(
        cy.cfg,
        ConsolidateConfig,
        cy.dir / "consolidate",
        {
            "cycle": cy.c,
            "tasks": tasks,
            "register": True,
            "run_name": f"c{cy.c} consolidate",
            **({"consolidation": {"previous": previous}} if previous else {}),
        },
    )
    return run_consolidate(spec).record()


def _learning_set(cy: Cycle) -> dict:
    overview(phase="eval")
    c, state = cy.c, cy.state
    with stage("eval", "build the learning set from the days' failures") as bar:
        learn = learning_set_for(
            cy.cfg,
            [state.get(i, "day") for i in range(1, c + 1)],
            [state.get(i, "sleep") for i in range(1, c + 1)],
            (state.get(c - 1, "learning_set") or {}).get("path"),
            cy.dir / "eval" / "learning_set.json",
            name=f"learning-{cy.lineage}-c{c}",
        )
        bar.update(note=f"{learn['koans']} fresh programs")
    return learn


def _eval(cy: Cycle, cons: dict, learn: dict, champion: str | None) -> dict:
    """The gate's verdict on this cycle's candidate; records the lineage the next cycle builds on
    (the promoted one: a rejected task is dropped), and the bundle the gate judged when the eval
    withdrew routes from it."""
    overview(phase="eval")
    c, state = cy.c, cy.state
    ecfg = stage_spec(
        cy.cfg,
        EvalConfig,
        cy.dir / "eval",
        {
            "cycle": c,
            # without tracking there is no registry: the candidate is the adapter folder
            "candidate": cons["version"] or cons["adapter"],
            "champion": "champion",
            "promote": True,
            "run_id": f"{cy.lineage}-c{c}-eval",
            # a cycle stopped mid-eval goes on with the measurements it finished: the same
            # candidate (state.json's) and champion (promoted only by this eval)
            "resume": True,
            "run_name": f"c{c} eval" + (f" v{cons['version']}" if cons["version"] else ""),
            "lineage": {
                "name": cy.lineage,
                "episodes": [state.get(i, "day")["db"] for i in range(1, c + 1)],
            },
            "koans": {
                "evalset": str(cy.cfg.evalset),
                "learning_set": learn["path"] if learn["koans"] else None,
            },
            # worked examples from the eval's own store would leak fixes (eval.yaml says so)
            "agent": {"hints": False},
        },
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
    adapter = cons["adapter"] if r.promoted else champion
    ev = state.put(c, "eval", r.record(f"c{c}", list(cy.plan.families), adapter))
    kept = {"tasks": cons["tasks"], "bundle": cons["bundle"]} if r.promoted else cy.promoted
    state.put(c, "lineage", kept)
    return ev


def cycle_row(c: int, day: dict, ev: dict, families: list[str]) -> tuple[dict, dict, dict]:
    """A cycle's metrics (logged at step c), its per-family learning rates (logged too), and its
    row of summary.json."""
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
            f"champion_learning_pass_rate_{f}": v for f, v in ev["champion_learning_family"].items()
        },
    }
    summary = {
        "cycle": c,
        **metrics,
        "families": families,
        "learning_family": ev["learning_family"],
        "champion_learning_family": ev["champion_learning_family"],
        "decision": ev["decision"],
        "other_families_by_family": ev.get("other_families_routed", {}),
    }
    return metrics, per_family, summary


def _log_cycle(metrics: dict, per_family: dict, ev: dict, families: list[str], c: int) -> None:
    """What `sleepy report` rebuilds the cycle's row from, on the cycle's MLflow run."""
    import mlflow

    mlflow.log_metrics(loggable({**metrics, **per_family}), step=c)
    mlflow.set_tags(
        {
            "decision": ev["decision"][:4900],
            "gate.decision": ev["decision"].split(":")[0],
            "families": ",".join(families),
        }
    )
    if (display := current()) is not None:
        display.log_to_mlflow()


def _plots(
    summaries: list[dict],
    out: Path,
    uri: str,
    experiment: str,
    lineage: str,
    title: str,
    run_id: str,
) -> None:
    """The lineage's plots, saved under out/plots and logged to the last cycle's run (`run_id`)."""
    import mlflow

    overview(phase="plots")
    with stage("plots", f"plots of lineage {title}") as bar:
        pngs = [family_cycle_matrix(summaries, out / "plots" / "families_by_cycle.png")]
        pngs += plots_from_mlflow(experiment, uri, out / "plots", lineage=lineage, title=title)
        bar.update(note=f"{len(pngs)} PNGs")
    with mlflow_run(uri, experiment, run_id=run_id):
        for png in pngs:
            mlflow.log_artifact(str(png), "plots")


STAGES = ("day", "sleep", "consolidate", "learning_set", "eval")


def run_cycle(cfg: DictConfig) -> list[dict]:
    """Run cfg.cycles cycles (resuming from state.json); returns one summary per cycle."""
    check_config(cfg)
    plans = curriculum(cfg)
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
    # Every run is its own lineage with its own registered model (and champion), so its cycle 1
    # is judged against the base model, not an unrelated earlier run's champion; a named model
    # is continued (in a sweep each job still gets its own: they are competing strategies).
    named = cfg.registry.name
    model = (
        f"{named}-{lineage}"
        if named and out.name.isdigit() and cfg.registry.per_sweep_job
        else named
    )
    cfg = copy.deepcopy(cfg)
    cfg.registry.name = model or f"{REGISTERED_PREFIX}-{lineage}"
    say(
        f"lineage {lineage}: adapters register as {cfg.registry.name}"
        + (
            f" (continuing registry.name={named})"
            if named
            else " (this run's own; registry.name=NAME continues a model instead)"
        )
    )
    # In a sweep, runs are named by what the job varies ("rank=8 consolidation=share"); the
    # lineage id (a timestamp) says nothing a person can compare, and the UI cuts it short.
    swept = label(job_values())
    cycles = int(cfg.cycles)
    overview(cycles=cycles, title=f"sleepy-cycle {swept}" if swept else None)
    summaries = []
    for c in range(1, cycles + 1):
        plan = plans[min(c, len(plans)) - 1]
        cy = Cycle(cfg, state, c, plan, lineage, out / f"cycle{c}")
        families = list(plan.families)
        parent_id = (state.get(c, "parent") or {}).get("run_id")
        tags = {
            "stage": "cycle",
            "cycle": str(c),
            "lineage": lineage,
            "consolidation": str(cfg.consolidation.get("method", "none")),
            "families": ",".join(families),
            **({"swept": swept, "sweep": sweep_id() or ""} if swept else {}),
        }
        name = f"{swept} · cycle {c}" if swept else f"cycle {c} · {lineage}"
        # did this process run a stage of this cycle (not just read them all back)?
        ran = any(state.get(c, s) is None for s in STAGES)
        overview(cycle=c, phase="day")
        with mlflow_run(uri, experiment, run_name=name, tags=tags, run_id=parent_id) as parent:
            if parent is not None:  # None: tracking is off
                state.put(c, "parent", {"run_id": parent.info.run_id})
            if parent_id is None and parent is not None:  # every cycle's run carries the config
                this = cfg.copy()
                with open_dict(this):
                    this.cycle = c  # the cycle this run is, not the day config's default 0
                    this.families = families
                log_config(this, out)
            champion = (state.get(c - 1, "eval") or {}).get("champion_adapter") if c > 1 else None
            # each stage runs once: a resumed run reads back what state.json has
            day = state.get(c, "day") or state.put(
                c, "day", _day(cy, champion, backend.loads_adapter)
            )
            slp = state.get(c, "sleep") or state.put(c, "sleep", _sleep(cy, day, trainer.in_basis))
            cons = state.get(c, "consolidate") or state.put(
                c, "consolidate", _consolidate(cy, slp, consolidator.keeps_lineage)
            )
            learn = state.get(c, "learning_set") or state.put(c, "learning_set", _learning_set(cy))
            ev = state.get(c, "eval") or _eval(cy, cons, learn, champion)
            metrics, per_family, summary = cycle_row(c, day, ev, families)
            if parent is not None:
                _log_cycle(metrics, per_family, ev, families, c)
            summaries.append(summary)
            if (display := current()) is not None:
                display.cycle_done(ran)
    (out / "summary.json").write_text(json.dumps(summaries, indent=2))
    if cfg.plots and uri is not None:  # the plots read the MLflow store
        last = state.get(cycles, "parent")["run_id"]
        _plots(summaries, out, uri, experiment, lineage, swept or lineage, last)
    return summaries


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="cycle")
@one_line_errors("sleepy-cycle", CycleError, LearningSetError, TrackingError)
def _cycle(cfg: DictConfig) -> None:
    # a stop (Ctrl-C, SIGTERM) says how to carry on: the same command, with this run_id
    resume_with(rerun("sleepy-cycle", run_id=str(cfg.run_id)))
    out = Path(str(cfg.paths.output_dir))
    with Display("sleepy-cycle", out / LOG_NAME, bool(cfg.verbose)):
        summaries = run_cycle(cfg)
    console = table_console(record=True)
    name = label(job_values()) or cfg.lineage or out.name
    console.print(summary_table(summaries, f"sleepy-cycle {name}"))
    console.print(f"[dim]{LEGEND}[/]", highlight=False)
    for s in summaries:
        verdict, reasons = gate_reasons(s["decision"])
        console.print(f"cycle {s['cycle']} gate: {verdict}", highlight=False)
        for reason in reasons:
            console.print(f"  - {reason}", highlight=False, markup=False)
    console.print(f"outputs:   {out}  (state.json, summary.json, one folder per cycle and stage)")
    console.print(f"log:       {out / LOG_NAME}  (progress, and other libraries' warnings)")
    if cfg.plots and cfg.tracking.enabled:
        console.print(f"plots:     {out / 'plots'}")
        console.print(
            f"MLflow UI: open http://127.0.0.1:5000 (experiment '{cfg.tracking.experiment}') "
            "after starting it with",
            highlight=False,
        )
        # a command is copied whole: its own line, never wrapped
        console.print(
            f"  {ui_command(str(cfg.tracking.uri))}", highlight=False, markup=False, soft_wrap=True
        )
    log_text(out / LOG_NAME, console.export_text())


def gate_reasons(decision: str) -> tuple[str, list[str]]:
    """'promote: r1; r2' (GateDecision.summary) as its verdict and its reasons."""
    verdict, _, reasons = decision.partition(": ")
    return verdict, [r for r in reasons.split("; ") if r]


def main() -> None:
    with stops("sleepy-cycle"):
        verbose_flag()
        exit_on_bad_overrides("cycle", "sleepy-cycle")
        _cycle()


if __name__ == "__main__":
    main()
