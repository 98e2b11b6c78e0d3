"""Sweeps a user can compare. Each job's runs are named by the values it sweeps
(`rank=8 consolidation=share`), and when the sweep ends one summary is written beside its jobs:
a table (markdown and on the console) and the strategy plots, labelled by the swept values and
drawn from this sweep's lineages only.

    sleepy-cycle -m adapter.rank=4,8 consolidation=none,share

`SweepSummary` is the Hydra callback (conf/cycle.yaml, `hydra.callbacks`) that does it: it tells
the jobs which keys are swept (environment, so launcher processes see it too) and summarises at
`on_multirun_end`. `python -m sleepy.sweep <sweep dir>` rebuilds the summary by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sleepy.summary import fitted_table, kept_families

SWEPT_ENV = "SLEEPY_SWEPT"  # the swept keys, comma-separated
SWEEP_ENV = "SLEEPY_SWEEP"  # the sweep's id: the name of its folder under outputs/cycle/multirun


class SweepError(RuntimeError):
    """No sweep to summarise; the message says where it looked."""


def swept_keys(overrides: list[str], params: dict | None = None) -> list[str]:
    """The keys a command line (and hydra.sweeper.params) sweeps: `adapter.rank=4,8` -> adapter.rank."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys = [o.key_or_group for o in parsed if o.is_sweep_override()]
    for key, value in (params or {}).items():
        if "," in str(value) and key not in keys:
            keys.append(str(key))
    return keys


def label(values: dict[str, str]) -> str:
    """`rank=8 consolidation=share`: each key by its last part, unless two keys share it."""
    short = {k: k.rsplit(".", 1)[-1] for k in values}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    return " ".join(f"{short[k] if short[k] not in clash else k}={v}" for k, v in values.items())


def job_values() -> dict[str, str]:
    """In a sweep job: the swept keys and this job's values, in command-line order; {} otherwise."""
    keys = [k for k in os.environ.get(SWEPT_ENV, "").split(",") if k]
    if not keys:
        return {}
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    if hc.mode is None or hc.mode.name != "MULTIRUN":
        return {}
    values = {}
    for override in hc.overrides.task:
        key, _, value = str(override).partition("=")
        if key.lstrip("+~") in keys:
            values[key.lstrip("+~")] = value
    return values


def sweep_id() -> str | None:
    return os.environ.get(SWEEP_ENV) or None


# -- the summary ------------------------------------------------------------------------------------


@dataclass
class JobSummary:
    label: str  # the swept values
    lineage: str
    rows: list[dict]  # its cycles, as `sleepy report` reads them

    @property
    def promoted(self) -> int:
        return sum(bool(r["promoted"]) for r in self.rows)

    @property
    def lost(self) -> list[str]:
        kept = kept_families(self.rows)[-1] if self.rows else {}
        return [f for f, (_, _, ok) in kept.items() if not ok]


def jobs_of(uri: str, experiment: str, sweep: str) -> list[JobSummary]:
    """Every job of a sweep that finished a cycle, in job order, from the MLflow store."""
    import mlflow

    from sleepy.summary import cycle_summaries

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SweepError(f"no experiment '{experiment}' in {uri}")
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.stage = 'cycle' and tags.sweep = '{sweep}'",
        order_by=["attributes.start_time ASC"],
    )
    lineages: dict[str, str] = {}
    for r in runs:
        lineages.setdefault(r.data.tags["lineage"], r.data.tags.get("swept", ""))
    if not lineages:
        raise SweepError(f"no cycle of sweep '{sweep}' in {uri} (experiment '{experiment}')")
    jobs = []
    for lineage, swept in lineages.items():
        try:
            _, rows = cycle_summaries(uri, experiment, lineage)
        except ValueError:  # a job that finished no cycle
            rows = []
        jobs.append(JobSummary(swept or lineage, lineage, rows))
    return jobs


HEADERS = [
    "job",
    "cycles",
    "promoted",
    "learning set, first → last cycle",
    "its set per cycle",
    "frozen regressions",
    "earlier families lost",
]


def _cells(job: JobSummary) -> list[str]:
    rows = job.rows
    if not rows:
        return [job.label, "0", "—", "—", "—", "—", "—"]
    first, last = rows[0], rows[-1]
    own = " / ".join(
        "+".join(f"{r['learning_family'].get(f, 0.0):.0%}" for f in r["families"]) for r in rows
    )
    return [
        job.label,
        str(len(rows)),
        f"{job.promoted}/{len(rows)}",
        f"{first['champion_learning_pass_rate']:.0%} → {last['learning_pass_rate']:.0%}",
        own,
        str(sum(int(r["regressions"]) for r in rows)),
        ", ".join(job.lost) or "none",
    ]


def summary_markdown(sweep: str, jobs: list[JobSummary]) -> str:
    head = "| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS) + "\n"
    lines = ["| " + " | ".join(_cells(j)) + " |" for j in jobs]
    note = (
        f"Sweep `{sweep}`: one lineage per job, each measured on its own learning set (fresh "
        "programs with the mistakes its days failed on) and the frozen suite.\n\n"
    )
    return note + head + "\n".join(lines) + "\n"


def summarize(
    sweep_dir: str | Path,
    uri: str,
    experiment: str = "sleepy-cycle",
    sweep: str | None = None,
    by: str = "swept values",
) -> tuple[object, list[Path]]:
    """Write <sweep_dir>/sweep_summary.md and the strategy plots under <sweep_dir>/plots; log
    them as a `sweep` run; returns (the rich table, the files written)."""
    import mlflow

    from sleepy.plots import PlotError, plots_from_mlflow
    from sleepy.tracking import mlflow_run

    sweep_dir = Path(sweep_dir)
    sweep = sweep or sweep_dir.name
    jobs = jobs_of(uri, experiment, sweep)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    md = sweep_dir / "sweep_summary.md"
    md.write_text(summary_markdown(sweep, jobs))
    files = [md]
    try:
        files += plots_from_mlflow(
            experiment,
            uri,
            sweep_dir / "plots",
            lineages={j.lineage: j.label for j in jobs},
            by=by,
            title=f"sweep {sweep}",
        )
    except PlotError:
        pass  # no finished eval: the table says what there is
    with mlflow_run(
        uri,
        experiment,
        run_name=f"sweep summary · {len(jobs)} jobs",
        tags={"stage": "sweep", "sweep": sweep},
    ):
        mlflow.log_params({"jobs": len(jobs), "swept": by})
        for f in files:
            mlflow.log_artifact(str(f), "sweep" if f.suffix == ".md" else "sweep/plots")
    table = fitted_table(f"sweep {sweep}", HEADERS, [_cells(j) for j in jobs])
    return table, files


class SweepSummary(Callback):
    """Hydra callback: swept keys to the jobs at the start, the summary at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        params = config.hydra.sweeper.get("params") or {}
        keys = swept_keys(list(config.hydra.overrides.task), dict(params))
        os.environ[SWEPT_ENV] = ",".join(keys)
        os.environ[SWEEP_ENV] = Path(str(config.hydra.sweep.dir)).name

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from sleepy.console import table_console
        from sleepy.tracking import tracking_uri

        uri = tracking_uri(config.tracking)
        if uri is None:
            return
        keys = [k for k in os.environ.get(SWEPT_ENV, "").split(",") if k]
        by = ", ".join(k.rsplit(".", 1)[-1] for k in keys) or "job"
        from rich.console import Console

        from sleepy.console import LOG_NAME

        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # the console, and the sweep's own log (each job has its own): the same closing lines
        with (sweep_dir / LOG_NAME).open("a") as log:
            outs = [table_console(), Console(file=log, width=200, no_color=True)]
            try:
                table, files = summarize(
                    str(sweep_dir), uri, str(config.tracking.experiment), by=by
                )
            except SweepError as e:
                for out in outs:
                    out.print(f"sweep summary: {e}", highlight=False)
                return
            for out in outs:
                out.print(table)
                out.print(f"sweep summary: {files[0]}", highlight=False)
                out.print(f"strategy plots: {files[0].parent / 'plots'}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from sleepy.config import default_store
    from sleepy.console import table_console
    from sleepy.tracking import require_store

    DEFAULT_URI = default_store()[0]

    p = argparse.ArgumentParser(prog="python -m sleepy.sweep", description="a sweep's summary")
    p.add_argument("sweep_dir", type=Path, help="outputs/cycle/multirun/<sweep id>")
    p.add_argument("--uri", default=DEFAULT_URI, help=f"tracking store (default {DEFAULT_URI})")
    p.add_argument("--experiment", default="sleepy-cycle")
    p.add_argument("--by", default="swept values", help="what the jobs vary, for the plots")
    args = p.parse_args(argv)
    require_store(args.uri, "sweep summary")
    try:
        table, files = summarize(args.sweep_dir, args.uri, args.experiment, by=args.by)
    except SweepError as e:
        print(f"sweep summary: error: {e}", file=sys.stderr)
        return 2
    table_console().print(table)
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
