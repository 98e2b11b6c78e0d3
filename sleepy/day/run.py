"""sleepy-day: the agent works through a selection of koans; episodes go to SQLite, the run to MLflow.

`run_day(cfg)` does the work and is what tests call; `main` is the thin Hydra entrypoint
(`sleepy-day ...` or `python -m sleepy.day ...`).
"""

from __future__ import annotations

import random
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sleepy.config import CONF_PATH, ConfigError, check_config, exit_on_bad_overrides
from sleepy.console import LOG_NAME, Display, report, say, stage, verbose_flag
from sleepy.day.loop import KoanRun, policy_from, prompt_fits, run_koans
from sleepy.day.protocol import PROTOCOLS
from sleepy.episodes import EpisodeError, EpisodeStore, StoreFull, metrics_of
from sleepy.files import disk_full
from sleepy.koan.model import (
    FAMILIES,
    Koan,
    KoanError,
    evalset_path,
    load_evalset,
    load_koans,
)
from sleepy.koans.generate import generate
from sleepy.koans.generator import patterns
from sleepy.llm import BackendError, BackendUnreachable
from sleepy.prompts.edits import get_edit_format
from sleepy.prompts.template import PromptTemplate
from sleepy.sandbox import Sandbox
from sleepy.stage import StageRun
from sleepy.stop import resume_with, stops
from sleepy.tracking import TrackingError, experiment_id, loggable, tracking_uri

# more koans than this, chosen by default rather than by the user, get a word before the day starts
LONG_DAY = 100


class DayError(RuntimeError):
    """A day that cannot run; the message is one line saying what to fix."""


class DiskFull(DayError):
    """The disk filled up during the day. Every finished step is in the episode store, so the run
    resumes where it stopped once there is room."""


@dataclass
class DayResult:
    run_id: str
    episodes_db: Path
    selected: int  # koans in the selection (finished earlier ones included, on resume)
    skipped: int  # finished in an earlier, resumed invocation of this run
    metrics: dict[str, float | None] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def record(self) -> dict:
        """What a cycle keeps of this day in its state.json."""
        return {
            "run_id": self.run_id,
            "db": str(self.episodes_db),
            "pass_rate": self.metrics.get("pass_rate"),
            "mlflow_run_id": self.mlflow_run_id,
        }


# -- koan selection ---------------------------------------------------------------------------


def select_koans(kcfg: DictConfig, evalsets_dir: str | Path) -> list[Koan]:
    """The koans a day works on: a source folder or an evalset, filtered, then a seeded sample."""
    families = list(kcfg.families or [])
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise DayError(
            f"koans.families: unknown family '{bad[0]}' (families: {', '.join(FAMILIES)})"
        )
    try:
        if kcfg.evalset:
            name = str(kcfg.evalset)
            path = evalset_path(name, evalsets_dir)
            koans, where = load_evalset(path), f"evalset {path}"
        elif kcfg.source is None:  # only generated koans (koans.generate)
            koans, where = [], "generated koans"
        else:
            src = Path(str(kcfg.source))
            koans, where = (load_koans(src) if src.exists() else []), str(src)
    except KoanError as e:
        raise DayError(str(e).splitlines()[0]) from None
    if kcfg.generate:
        wanted = list(kcfg.patterns)
        for family in families or FAMILIES:
            names = {p.name for p in patterns(family)}
            chosen = [n for n in wanted if n in names] if wanted else None
            if names and (chosen or not wanted):
                koans += generate(family, int(kcfg.generate), seed=int(kcfg.seed), patterns=chosen)
    if kcfg.mutants:
        koans += day_mutants(families or FAMILIES, int(kcfg.mutants), kcfg.programs, int(kcfg.seed))
    present = sorted({k.family for k in koans})
    if families:
        koans = [k for k in koans if k.family in families]
    if kcfg.ids:
        by_id = {k.id: k for k in koans}
        missing = [i for i in kcfg.ids if i not in by_id]
        if missing:
            raise DayError(f"koans.ids: no koan '{missing[0]}' in {where} (with the family filter)")
        koans = [by_id[i] for i in kcfg.ids]
    koans = sorted({k.id: k for k in koans}.values(), key=lambda k: k.id)
    if kcfg.count is not None:
        random.Random(int(kcfg.seed)).shuffle(koans)
        koans = koans[: int(kcfg.count)]
    if not koans:
        picked = f" with families {families}" if families else ""
        raise DayError(
            f"no koans selected from {where}{picked} (families there: {present or 'none'}): "
            "set koans.source, koans.evalset or koans.generate"
        )
    return koans


def day_mutants(families: list[str], n: int, programs: str | Path, seed: int) -> list[Koan]:
    """`n` mutants per family of the train-side programs under `programs`: the family's mistakes
    in code a person wrote. Eval-side programs (`sleepy koans harvest`) are never met by a day,
    since a sleep trains on the day's failures; they stay for the learning set to measure."""
    from sleepy.koans.generate import GenerateError
    from sleepy.koans.mutate import load_programs, mutate_families

    if not Path(str(programs)).exists():
        raise DayError(
            f"koans.programs={programs}: no such folder; make one with `make programs` "
            "(sleepy koans harvest) or set koans.mutants=0"
        )
    try:
        found, _ = load_programs([str(programs)], side="train")
        return mutate_families(families, n, seed, found, allow_fewer=True)
    except (KoanError, GenerateError) as e:
        raise DayError(f"koans.mutants: {str(e).splitlines()[0]}") from None


# -- the day ------------------------------------------------------------------------------------


def _backend_name(cfg: DictConfig) -> str:
    target = str(cfg.backend.get("_target_", "?"))
    return str(cfg.backend.get("name") or target.rsplit(".", 2)[-2])


def build_llm(cfg: DictConfig):
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(cfg.backend)
    except BackendError as e:
        raise DayError(str(e).splitlines()[0]) from None
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise DayError(
            f"cannot build backend {_backend_name(cfg)}: {str(cause).splitlines()[0]}"
        ) from None


def run_day(cfg: DictConfig) -> DayResult:
    """Run the agent on the selected koans; every step is in the episode store when it happens."""
    t0 = time.monotonic()
    try:
        check_config(cfg)
    except ConfigError as e:
        raise DayError(str(e)) from None
    run_id, agent = str(cfg.run_id), cfg.agent
    try:
        edit_format = get_edit_format(agent.edit_format)
        template = PromptTemplate.load(agent.prompt_template)
    except ValueError as e:
        raise DayError(str(e)) from None
    if agent.protocol not in PROTOCOLS:
        raise DayError(f"agent.protocol: '{agent.protocol}' is not one of {', '.join(PROTOCOLS)}")
    policy = policy_from(agent)
    koans = select_koans(cfg.koans, cfg.paths.evalsets)
    k = cfg.koans
    if len(koans) > LONG_DAY and k.count is None and not (k.families or k.ids or cfg.nested):
        say(
            f"{len(koans)} koans selected, every one of {k.evalset or k.source}: a day this long "
            "takes hours on a CPU; koans.count=20 or koans.families=[...] makes a short one"
        )

    db = Path(str(cfg.paths.episodes_db))
    try:
        store = EpisodeStore(db)
    except StoreFull as e:
        raise DiskFull(str(e)) from None
    except EpisodeError as e:
        raise DayError(str(e).splitlines()[0]) from None
    # The run belongs to this process until it returns: a second process resuming the same
    # run_id would otherwise work the same open koans and record every one of them twice.
    try:
        with store, store.own_run(run_id):
            return _run_owned(cfg, store, db, koans, t0, edit_format, template, policy)
    except TrackingError as e:  # the MLflow store could not be opened or written
        raise DayError(str(e)) from None
    except StoreFull as e:
        raise DiskFull(str(e)) from None
    except EpisodeError as e:
        raise DayError(str(e).splitlines()[0]) from None
    except OSError as e:
        if not disk_full(e):
            raise
        # the run's other files: its log, the episodes.jsonl export, tracking's artifacts
        raise DiskFull(
            f"the disk is full ({e.strerror}) writing {e.filename or 'a file of the run'}: "
            f"every episode recorded so far is kept in {db}"
        ) from None


def _run_owned(cfg, store, db, koans, t0, edit_format, template, policy) -> DayResult:

    run_id, agent = str(cfg.run_id), cfg.agent
    store.add_koans(koans)  # sleep reads the day's koans (generated ones too) from the store
    finished = store.finished_task_ids(run_id)
    if finished and not cfg.resume:
        raise DayError(
            f"run {run_id} already has finished episodes in {db}: "
            "pass resume=true to continue it, or another run_id"
        )
    adapter = cfg.backend.get("adapter") or None
    if finished:  # a resumed run goes on with what began it, or its pass rate mixes two models
        made = {e.adapter for e in store.episodes(run_id=run_id) if e.task_id in finished}
        if made - {str(adapter) if adapter else None}:
            raise DayError(
                f"run {run_id}'s finished episodes were made with adapter "
                f"{', '.join(sorted(str(a or 'none') for a in made))}, not "
                f"{adapter or 'none'}: resume it with that adapter, or give another run_id"
            )
    todo = [k for k in koans if k.id not in finished]
    llm = build_llm(cfg) if todo else None
    model_id = llm.model_id if llm is not None else str(cfg.model.name)
    tags = {
        "sleepy.run_id": run_id,
        "model": str(cfg.model.name),
        "backend": _backend_name(cfg),
        "adapter": str(adapter or "none"),
        "edit_format": edit_format.name,
    }

    sandbox = Sandbox.from_config(OmegaConf.to_object(cfg.sandbox))

    fits = prompt_fits(llm, policy) if llm is not None else None

    def make_run(koan: Koan) -> KoanRun:
        return KoanRun(
            koan,
            sandbox,
            template,
            edit_format,
            agent.protocol,
            policy,
            store,
            fits,
            run_id=run_id,
            cycle=int(cfg.cycle),
            model_id=model_id,
            adapter=str(adapter) if adapter else None,
        )

    # what this pass over koans is, in words: "cycle 1/3 day on trait_bounds", "eval v3 on frozen"
    families = ", ".join(sorted({k.family for k in koans}))
    label = f"{cfg.label or f'day on {families}'} ({len(koans)})"
    run = StageRun(cfg, "day", run_id, tags, resume_id=_resumed_run(cfg, run_id))
    with run, stage(str(cfg.stage_name), label, total=len(koans)) as bar:
        passed = [len({e.task_id for e in store.episodes(run_id=run_id) if e.passed})]
        bar.update(completed=len(koans) - len(todo), note=f"{passed[0]} passed")

        partial = [0]  # episodes whose program did not fit the context: never cut silently

        def on_done(run: KoanRun) -> None:
            passed[0] += run.passed
            partial[0] += any(s["prompt_view"] != "whole" for s in run.steps)
            shown = f", {partial[0]} shown in part (too long)" if partial[0] else ""
            bar.advance(note=f"{passed[0]} passed{shown}")

        try:
            run_koans(
                todo,
                make_run,
                llm,
                concurrency=int(agent.concurrency),
                workers=int(agent.workers),
                on_done=on_done,
            )
        except BackendUnreachable as e:
            raise DayError(str(e).splitlines()[0]) from None

        episodes = store.episodes(run_id=run_id)
        metrics = metrics_of(episodes)
        metrics["wall_time_s"] = time.monotonic() - t0
        if run.mlflow is not None:
            _log_results(cfg, store, run_id, metrics)
    return DayResult(run_id, db, len(koans), len(koans) - len(todo), metrics, run.run_id)


def _resumed_run(cfg: DictConfig, run_id: str) -> str | None:
    """The MLflow run a resumed day continues (found by its sleepy.run_id tag), or None."""
    if not (cfg.resume and tracking_uri(cfg.tracking)):
        return None
    import mlflow

    t = cfg.tracking
    exp = experiment_id(str(t.experiment), str(t.uri))
    found = mlflow.search_runs(
        [exp], f"tags.`sleepy.run_id` = '{run_id}'", output_format="list", max_results=1
    )
    return found[0].info.run_id if found else None


def _log_results(cfg: DictConfig, store, run_id: str, metrics: dict) -> None:
    import mlflow

    mlflow.log_metrics(
        loggable({k.replace("pass_rate.", "pass_rate_"): v for k, v in metrics.items()})
    )
    out = Path(str(cfg.paths.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "episodes.jsonl"
    store.export_jsonl(jsonl, run_id=run_id)
    mlflow.log_artifact(str(jsonl))


# -- the command line -----------------------------------------------------------------------------


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="day")
def _day(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    if hc.mode is not None and hc.mode.name == "MULTIRUN":
        # sweep jobs share the parent's run_id; each gets its own episodes and MLflow run
        cfg.run_id = f"{cfg.run_id}-{hc.job.num}"
    resume_with(_resume(cfg))  # what a stop (Ctrl-C, SIGTERM) tells the user to run
    out = Path(str(cfg.paths.output_dir))
    try:
        with Display("sleepy-day", out / LOG_NAME, bool(cfg.verbose)):
            result = run_day(cfg)
    except DiskFull as e:
        print(f"sleepy-day: error: {e}; free space, then resume: {_resume(cfg)}", file=sys.stderr)
        sys.exit(2)
    except DayError as e:
        print(f"sleepy-day: error: {e}", file=sys.stderr)
        sys.exit(2)
    m = result.metrics
    report(
        out / LOG_NAME,
        f"run {result.run_id}: {int(m['episodes'])} episodes, pass rate {m['pass_rate']:.1%}, "
        f"episodes in {result.episodes_db}",
    )


def _resume(cfg: DictConfig) -> str:
    """The command line that resumes this run: its own overrides, run_id and resume=true (and,
    for a sweep job, whose folder a plain run would not find, its episode database)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    pinned = {"run_id": str(cfg.run_id), "resume": "true"}
    if hc.mode is not None and hc.mode.name == "MULTIRUN":
        pinned["paths.episodes_db"] = str(cfg.paths.episodes_db)
    kept = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") not in pinned]
    return shlex.join(["sleepy-day", *kept, *(f"{k}={v}" for k, v in pinned.items())])


def main() -> None:
    with stops("sleepy-day"):
        verbose_flag()
        exit_on_bad_overrides("day", "sleepy-day")
        _day()


if __name__ == "__main__":
    main()

__all__ = ["DayError", "DayResult", "DiskFull", "main", "run_day", "select_koans"]
