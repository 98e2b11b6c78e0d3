"""`sleepy report`: the results tables, rebuilt from the MLflow store, so the numbers a README
shows come from one command anyone can rerun.

    sleepy report                       # the newest lineage of the sleepy-cycle experiment
    sleepy report --lineage <name>      # a given one
    sleepy report --forgetting          # the forgetting matrix (python -m experiments.forgetting)
"""

from __future__ import annotations

import argparse
import json
import os

from sleepy.config import default_store
from sleepy.summary import ReportError, cycle_summaries, kept_families, new_programs, own_gain
from sleepy.tracking import require_store


def cycles_markdown(rows: list[dict]) -> str:
    with_new = any("new_programs_pass_rate" in s for s in rows)
    head = (
        "| cycle | learned | its learning set before → after | whole learning set before → after "
        + ("| new programs before → after " if with_new else "")
        + "| repeat errors before → after | frozen regressions "
        "| earlier families (after their sleep → now) | gate |\n"
        + "|---" * (9 if with_new else 8)
        + "|\n"
    )
    lines = []
    for s, kept in zip(rows, kept_families(rows), strict=True):
        earlier = "; ".join(
            f"{f} {post:.0%} → {now:.0%} {'kept' if ok else 'lost'}"
            for f, (post, now, ok) in kept.items()
        )
        lines.append(
            f"| {s['cycle']} | {', '.join(s['families'])} | {own_gain(s)} "
            f"| {s['champion_learning_pass_rate']:.0%} → {s['learning_pass_rate']:.0%} "
            + (f"| {new_programs(s)} " if with_new else "")
            + f"| {s['champion_repeat_error_rate']:.0%} → {s['repeat_error_rate']:.0%} "
            f"| {int(s['regressions'])} | {earlier or '—'} | {s['decision'].split(':')[0]} |"
        )
    return head + "\n".join(lines)


def forgetting_markdown(uri: str, experiment: str = "sleepy-forgetting") -> str:
    """The newest forgetting matrix: per method, each family's rate after each sleep."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = (
        client.search_runs(
            [exp.experiment_id],
            "attributes.run_name = 'forgetting-matrix'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if exp
        else []
    )
    if not runs:
        raise ReportError(f"no forgetting matrix in {uri}: run python -m experiments.forgetting")
    path = mlflow.artifacts.download_artifacts(
        run_id=runs[0].info.run_id, artifact_path="forgetting.json", tracking_uri=uri
    )
    data = json.loads(open(path).read())
    families, matrices = data["families"], data["matrices"]
    head = "| method | " + " | ".join(f"after {f}" for f in families) + " |\n"
    head += "|---|" + "---|" * len(families) + "\n"
    lines = []
    for method, rows in matrices.items():
        if method == "base":
            continue
        cells = [" / ".join(f"{row.get(f, 0.0):.2f}" for f in families) for row in rows]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    suite = data.get("suite", "evalsets/frozen.json")
    note = f"Cells: pass rate of {' / '.join(families)} on `{suite}`.\n\n"
    return note + head + "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.forgetting:
        print(forgetting_markdown(args.uri, args.experiment or "sleepy-forgetting"))
        return 0
    lineage, rows = cycle_summaries(args.uri, args.experiment or "sleepy-cycle", args.lineage)
    print(f"lineage {lineage}\n")
    print(cycles_markdown(rows))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="results tables rebuilt from the MLflow store (markdown)")
    p.add_argument("--uri", default=None, help="tracking store (default: tracking.uri)")
    p.add_argument(
        "--experiment", default=None, help="default: sleepy-cycle (or sleepy-forgetting)"
    )
    p.add_argument("--lineage", default=None, help="default: the newest lineage")
    p.add_argument("--forgetting", action="store_true", help="the forgetting matrix instead")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    args.uri = args.uri or default_store()[0]
    require_store(args.uri, "sleepy report")
    try:
        return cmd_report(args)
    except ReportError as e:
        raise SystemExit(f"sleepy report: error: {e}") from None
