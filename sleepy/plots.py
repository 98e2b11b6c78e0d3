"""Plots of what sleep did: learning curve over cycles, forgetting heatmap (koan x cycle), family
breakdown, strategy comparison across a sweep. Each takes plain data and writes one PNG;
`plots_from_mlflow` rebuilds them all from an experiment's eval runs (`sleepy-plots`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in sweeps
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from sleepy.config import default_store  # noqa: E402
from sleepy.tracking import use_store  # noqa: E402

CURVES = (  # metric, axis label, y limits (None: from the data)
    ("pass_rate", "pass rate", (0, 1.02)),
    ("repeat_error_rate", "repeat error rate\n(failures seen before)", (0, 1.02)),
    ("median_steps_to_green", "median steps to green", None),
)
# heatmap cell states, in legend order
STATES = ("pass", "fail", "gained", "lost", "not run")
STATE_COLORS = ("#9ecf9a", "#e4e4e4", "#1a7f37", "#d1242f", "#ffffff")


def _series(data) -> dict[str, list[dict]]:
    return data if isinstance(data, dict) else {"": list(data)}


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def learning_curve(
    points: list[dict] | dict[str, list[dict]], out: str | Path, title: str = "Learning curve"
) -> Path:
    """points: [{"cycle": 1, "pass_rate": .., "repeat_error_rate": .., "median_steps_to_green": ..}]
    or {series label: such a list} (one line per lineage, or candidate vs champion)."""
    series = _series(points)
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.6))
    for ax, (metric, label, ylim) in zip(axes, CURVES, strict=True):
        for name, pts in series.items():
            pts = sorted((p for p in pts if metric in p), key=lambda p: p["cycle"])
            if metric == "median_steps_to_green":  # nothing passed: no steps to green to show
                pts = [p for p in pts if p.get("pass_rate", 1.0) > 0]
            if not pts:
                continue
            style = "--" if "champion" in name else "-"
            ax.plot(
                [p["cycle"] for p in pts],
                [p[metric] for p in pts],
                style,
                marker="o",
                label=name or None,
            )
        ax.set_xlabel("cycle")
        ax.set_ylabel(label)
        ax.set_title(label.split("\n")[0])
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
    if any(series):
        axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


def koan_states(passes: list[dict[str, bool]]) -> dict[str, list[str]]:
    """Per koan, the state in each column: pass/fail in the first, then gained/lost/pass/fail."""
    koans = sorted({k for col in passes for k in col})
    out = {}
    for k in koans:
        row, before = [], None
        for col in passes:
            now = col.get(k)
            if now is None:
                row.append("not run")
            elif before is None or before == now:
                row.append("pass" if now else "fail")
            else:
                row.append("gained" if now else "lost")
            before = now if now is not None else before
        out[k] = row
    return out


def forgetting_heatmap(
    passes: list[dict[str, bool]],
    columns: list[str],
    families: dict[str, str],
    out: str | Path,
    title: str = "Forgetting: each koan across cycles",
) -> Path:
    """passes: per column (a cycle, or the starting champion) koan id -> passed. Rows are grouped
    by family with separators; a koan that flips shows as gained (green) or lost (red)."""
    states = koan_states(passes)
    order = sorted(states, key=lambda k: (families.get(k, "~"), k))
    grid = [[STATES.index(s) for s in states[k]] for k in order]
    n = len(order)
    row_h = 0.11 if n > 40 else 0.22
    fig_h = max(3.0, 1.4 + n * row_h)
    fig_w = 3.6 + 0.55 * len(columns)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.imshow(
        grid,
        aspect="auto",
        interpolation="nearest",
        vmin=0,
        vmax=len(STATES) - 1,
        cmap=ListedColormap(STATE_COLORS),
    )
    ax.set_xticks(range(len(columns)), columns, fontsize=8)
    ax.set_xlabel("cycle")
    font = 4.5 if n > 80 else 5.5 if n > 40 else 7.5
    ax.set_yticks(range(n), order, fontsize=font)
    ax.set_ylabel("koan (grouped by family)")
    # family separators and names on the right-hand side
    start = 0
    for i in range(1, n + 1):
        if i == n or families.get(order[i]) != families.get(order[start]):
            if i < n:
                ax.axhline(i - 0.5, color="black", lw=0.8)
            ax.text(
                len(columns) - 0.5 + 0.1,
                (start + i - 1) / 2,
                families.get(order[start], "?"),
                va="center",
                ha="left",
                fontsize=8,
            )
            start = i
    ax.set_xticks([x + 0.5 for x in range(len(columns) - 1)], minor=True)
    ax.grid(which="minor", axis="x", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    used = [s for s in STATES if any(s in row for row in states.values())]
    ax.legend(
        handles=[
            Patch(facecolor=STATE_COLORS[STATES.index(s)], edgecolor="gray", label=s) for s in used
        ],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(used),
        fontsize=8,
        frameon=False,
    )
    ax.set_title(title, pad=22)
    return _save(fig, out)


def family_breakdown(
    rates: dict[str, dict[str, float]], out: str | Path, title: str = "Pass rate per family"
) -> Path:
    """rates: {group label (a cycle, a model, a strategy): {family: pass rate}} -> grouped bars."""
    families = sorted({f for r in rates.values() for f in r})
    groups = list(rates)
    width = 0.8 / max(1, len(groups))
    fig, ax = plt.subplots(
        figsize=(min(14.0, max(6.0, 0.9 * len(families) * len(groups) ** 0.5)), 4)
    )
    for i, g in enumerate(groups):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(families))]
        ax.bar(xs, [rates[g].get(f, 0.0) for f in families], width, label=g)
    ax.set_xticks(
        range(len(families)),
        [f.replace("_", " ") for f in families],
        rotation=20,
        ha="right",
        fontsize=9,
    )
    ax.set_xlabel("family")
    ax.set_ylabel("pass rate")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out)


def strategy_comparison(
    results: dict[str, list[dict]],
    out: str | Path,
    metric: str = "pass_rate",
    by: str = "strategy",
    title: str | None = None,
) -> Path:
    """results: {strategy or param value: [{"cycle": c, metric: v}, ...]} -> one line per strategy
    over cycles (left) and the final cycle's value as bars (right)."""
    label = metric.replace("_", " ")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    names, finals = [], []
    for name, pts in results.items():
        pts = sorted((p for p in pts if metric in p), key=lambda p: p["cycle"])
        if not pts:
            continue
        line = left.plot(
            [p["cycle"] for p in pts], [p[metric] for p in pts], marker="o", label=name
        )[0]
        names.append(name)
        finals.append((pts[-1][metric], line.get_color()))
    left.set_xlabel("cycle")
    left.set_ylabel(label)
    left.xaxis.get_major_locator().set_params(integer=True)
    left.grid(alpha=0.3)
    left.legend(title=by, fontsize=8, title_fontsize=8)
    left.set_title(f"{label} over cycles")
    bars = right.bar(range(len(names)), [v for v, _ in finals], color=[c for _, c in finals])
    right.bar_label(bars, fmt="%.2f", fontsize=8)
    right.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    right.set_xlabel(by)
    right.set_ylabel(f"{label} (last cycle)")
    right.set_title("after the last cycle")
    if metric.endswith("rate"):
        left.set_ylim(0, 1.02)
        right.set_ylim(0, 1.1)
    right.grid(axis="y", alpha=0.3)
    fig.suptitle(title or f"Strategies compared by {by}")
    fig.tight_layout()
    return _save(fig, out)


# -- from MLflow -----------------------------------------------------------------------------------


class PlotError(ValueError):
    """Nothing to plot; the message says where it looked."""


def forgetting_matrix_plot(
    matrices: dict[str, list[dict[str, float]]], families: list[str], out: str | Path
) -> Path:
    """One panel per method: rows = before any sleep, then after learning each family in turn;
    columns = family; cell = pass rate. `matrices["base"]` is the one row before sleep."""
    return _matrix_plot(
        matrices,
        families,
        out,
        "Forgetting matrix: pass rate per family after each sleep, per method",
        "family (frozen evalset)",
    )


def family_cycle_matrix(summaries: list[dict], out: str | Path) -> Path:
    """A lineage's families x cycles: each family's learning-set pass rate before its own sleep,
    then after every cycle (the candidate; a rejected cycle is marked). Earlier families whose
    rates hold across later rows were kept."""
    families = list(dict.fromkeys(f for s in summaries for f in s["families"]))
    before = {}
    for s in summaries:
        for f in s["families"]:
            before.setdefault(f, s["champion_learning_family"].get(f, 0.0))
    nan = float("nan")
    rows = [{f: s["learning_family"].get(f, nan) for f in families} for s in summaries]
    labels = [
        f"after c{s['cycle']} ({', '.join(s['families'])})" + ("" if s["promoted"] else " REJECTED")
        for s in summaries
    ]
    return _matrix_plot(
        {"base": [before], "lineage": rows},
        families,
        out,
        "Does it keep what it learned? Learning-set pass rate per family after each cycle",
        "family (its learning set: fresh programs, never trained on)",
        labels,
    )


def _matrix_plot(matrices, families, out, title, xlabel, labels=None) -> Path:
    base = matrices.get("base", [])
    methods = [m for m in matrices if m != "base"]
    width = 1.0 + 1.3 * len(families) * len(methods)
    fig, axes = plt.subplots(
        1, len(methods), figsize=(width + 2.5, 3.4), squeeze=False, sharey=True
    )
    labels = ["before sleep"] * len(base) + (labels or [f"after {f}" for f in families])
    for ax, method in zip(axes[0], methods, strict=True):
        grid = [[row.get(f, 0.0) for f in families] for row in base + matrices[method]]
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    "not yet\nmeasured" if v != v else f"{v:.2f}",  # NaN: not in the set yet
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if v < 0.5 else "black",
                )
        ax.set_xticks(range(len(families)), families, rotation=30, ha="right", fontsize=8)
        ax.set_title(method if len(methods) > 1 else "", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
    axes[0][0].set_yticks(range(len(grid)), labels[: len(grid)], fontsize=8)
    axes[0][0].set_ylabel("model state", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="pass rate", shrink=0.8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, out)


def eval_runs(experiment: str, uri: str) -> list:
    """The finished eval runs of an experiment (nested ones included), oldest first."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    use_store(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise PlotError(f"no experiment '{experiment}' in {uri}")
    runs = mlflow.search_runs(
        [exp.experiment_id],
        "tags.stage = 'eval' and status = 'FINISHED'",
        output_format="list",
        order_by=["attributes.start_time ASC"],
    )
    if not runs:
        raise PlotError(f"experiment '{experiment}' in {uri} has no finished eval runs to plot")
    return runs


def _per_koan(run_id: str) -> list[dict]:
    import mlflow

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/eval/per_koan.json")
    except Exception:  # an eval without its table (killed while logging): no heatmap column
        return []
    return json.loads(text)


def plots_from_mlflow(
    experiment: str,
    uri: str,
    out: str | Path,
    by: str | None = None,
    metric: str = "pass_rate",
    lineage: str | None = None,
) -> list[Path]:
    """Rebuild every plot from the eval runs of `experiment`; returns the PNGs written.

    Runs are grouped into lineages by their `lineage` tag (or by the tag/param named `by`), ordered
    by their `cycle` tag. With several lineages a strategy comparison is drawn as well.
    """
    out = Path(out)
    runs = eval_runs(experiment, uri)
    if lineage is not None:  # one lineage's own plots: other runs in the experiment stay out
        runs = [r for r in runs if r.data.tags.get("lineage") == lineage] or runs
    lineages: dict[str, list] = defaultdict(list)
    for r in runs:
        key = (r.data.tags.get(by) or r.data.params.get(by)) if by else None
        lineages[str(key or r.data.tags.get("lineage", "default"))].append(r)
    by = by or "lineage"

    learning = any("learning_pass_rate" in r.data.metrics for r in runs)

    def point(r, prefix: str = "") -> dict:
        """The run's curve point: learning-set metrics when the eval had a learning set."""
        m = r.data.metrics
        p = {"cycle": int(r.data.tags.get("cycle", 0))}
        for metric_name, _, _ in CURVES:
            key = prefix + ("learning_" if learning else "") + metric_name
            if key in m:
                p[metric_name] = m[key]
        return p

    def family_rates(r, prefix: str = "") -> dict[str, float]:
        key = prefix + "pass_rate_"
        return {k[len(key) :]: v for k, v in r.data.metrics.items() if k.startswith(key)}

    paths = []
    curves = {name: [point(r) for r in rs] for name, rs in lineages.items()}
    if len(lineages) == 1:
        [(name, rs)] = lineages.items()
        curves = {
            "after sleep (candidate)": curves[name],
            "before sleep (champion)": [point(r, "champion_") for r in rs],
        }
    where = "learning set: fresh programs with the mistakes the days failed on"
    paths.append(
        learning_curve(
            curves,
            out / "learning_curve.png",
            f"Learning curve — {experiment}\n({where if learning else 'frozen suite'})",
        )
    )

    for name, rs in lineages.items():
        rs = sorted(rs, key=lambda r: int(r.data.tags.get("cycle", 0)))
        tables = [(int(r.data.tags.get("cycle", 0)), _per_koan(r.info.run_id)) for r in rs]
        tables = [(c, t) for c, t in tables if t]
        suffix = "" if len(lineages) == 1 else f"-{_slug(name)}"
        if tables:
            families = {row["koan_id"]: row["family"] for _, t in tables for row in t}
            first = tables[0][1]
            columns = [f"start\n({rs[0].data.tags.get('champion', 'champion')})"]
            passes = [
                {
                    row["koan_id"]: row["champion_passed"]
                    for row in first
                    if row.get("champion_passed") is not None
                }
            ]
            for c, t in tables:
                columns.append(f"c{c}")
                passes.append({row["koan_id"]: row["candidate_passed"] for row in t})
            paths.append(
                forgetting_heatmap(
                    passes,
                    columns,
                    families,
                    out / f"forgetting_heatmap{suffix}.png",
                    f"Forgetting — {name if len(lineages) > 1 else experiment}",
                )
            )
        groups = {f"c{int(r.data.tags.get('cycle', 0))}": family_rates(r) for r in rs}
        if rs:
            groups = {
                f"start ({rs[0].data.tags.get('champion', 'champion')})": family_rates(
                    rs[0], "champion_"
                ),
                **groups,
            }
        paths.append(
            family_breakdown(
                groups,
                out / f"family_breakdown{suffix}.png",
                "Pass rate per family by cycle" + (f" — {name}" if len(lineages) > 1 else ""),
            )
        )
    if len(lineages) > 1:
        results = {
            name: [
                {
                    "cycle": int(r.data.tags.get("cycle", 0)),
                    **{k: v for k, v in r.data.metrics.items()},
                }
                for r in rs
            ]
            for name, rs in lineages.items()
        }
        last = {
            name: max(rs, key=lambda r: int(r.data.tags.get("cycle", 0)))
            for name, rs in lineages.items()
        }
        paths.append(strategy_comparison(results, out / "strategy_comparison.png", metric, by))
        paths.append(
            family_breakdown(
                {n: family_rates(r) for n, r in last.items()},
                out / "family_breakdown_by_strategy.png",
                f"Pass rate per family after the last cycle, by {by}",
            )
        )
    return paths


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]


# -- the command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sleepy-plots", description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="sleepy-cycle", help="MLflow experiment with eval runs")
    p.add_argument("--uri", default=None, help="MLflow tracking store (default: tracking.uri)")
    p.add_argument("--out", default="outputs/plots", help="folder for the PNGs")
    p.add_argument(
        "--by",
        default=None,
        help="tag or param that names a strategy (default: the eval runs' lineage tag)",
    )
    p.add_argument("--metric", default="pass_rate", help="metric of the strategy comparison")
    args = p.parse_args(argv)
    args.uri = args.uri or default_store()[0]
    try:
        paths = plots_from_mlflow(args.experiment, args.uri, args.out, args.by, args.metric)
    except PlotError as e:
        print(f"sleepy-plots: error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
