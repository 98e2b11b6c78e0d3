"""Plots of what sleep did, each saying in its title what was measured and on which set: the
learning curve over cycles, forgetting on the frozen suite (families x cycles, and koan by koan),
the family breakdown and, across a sweep, the strategy comparison. Each takes plain data and
writes one PNG; `plots_from_mlflow` rebuilds them all from an experiment's eval runs
(`sleepy-plots`). A panel with nothing to draw says so in words (`no data: ...`) instead of
drawing empty axes; one with a single point says why there is no line. Every heat map of pass
rates uses one colour map (`HEATMAP`), a cell no eval measured says `not measured`, and a family
is named as users type it (`trait_bounds`). Each `*_figure` function returns the figure that its
PNG-writing namesake saves.
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
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from sleepy.config import default_store  # noqa: E402
from sleepy.tracking import require_store, use_store  # noqa: E402

CURVES = (  # metric, panel title, what it is, y limits (None: from the data)
    ("pass_rate", "pass rate", "koans fixed / koans in the set", (0, 1.02)),
    (
        "repeat_error_rate",
        "repeat-error rate",
        "failures with an error the lineage's days\nalready failed with / all failures",
        (0, 1.02),
    ),
    ("median_steps_to_green", "median steps to green", "agent steps, over fixed koans", None),
)
# per-koan cell states, in legend order: the gate's view (candidate vs the champion it met)
STATES = ("pass", "fail", "gained", "lost", "not run")
STATE_COLORS = ("#9ecf9a", "#e4e4e4", "#1a7f37", "#d1242f", "#ffffff")
STATE_LABELS = {
    "pass": "passes (as the champion did)",
    "fail": "fails (as the champion did)",
    "gained": "gained: champion failed, candidate passes",
    "lost": "lost: champion passed, candidate fails (regression)",
    "not run": "not measured: not in that eval",
}
# the pass-rate heat maps (families x cycles, families after each sleep): one colour map, with a
# cell no eval measured left white and said in words
HEATMAP = "Greens"
NOT_MEASURED = "not measured"
LEARNING_SET = (
    "the learning set: fresh programs with the mistakes the days failed on, never trained on"
)


def _series(data) -> dict[str, list[dict]]:
    return data if isinstance(data, dict) else {"": list(data)}


def _heatmap_cmap():
    return colormaps[HEATMAP].with_extremes(bad="white")


def _on_cell(v: float) -> str:
    """The text colour that reads on a HEATMAP cell of value v (NaN: a white cell)."""
    return "white" if v == v and v > 0.6 else "black"


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def _titles(fig, title: str, subtitle: str = "") -> None:
    """A bold title and, under it, a smaller line saying what was measured on which set, both
    placed above everything already drawn (call it last; savefig's tight box takes them in)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    to_fig = fig.transFigure.inverted()
    top = max(ax.get_tightbbox(r).y1 for ax in fig.axes) if fig.axes else 0.0
    y = to_fig.transform((0, top))[1] + 0.01
    if subtitle:
        sub = fig.text(0.5, y, subtitle, ha="center", va="bottom", fontsize=8.5, color="#444")
        y = to_fig.transform((0, sub.get_window_extent(r).y1))[1] + 0.008
    fig.text(0.5, y, title, ha="center", va="bottom", fontsize=12, fontweight="bold")


def _note(ax, text: str) -> None:
    """What a panel shows instead of a plot when there is nothing (or one point) to draw; a
    panel with no data (`no data: ...`) loses its axes, which would only show an empty 0-1."""
    if text.startswith("no data"):
        ax.set_axis_off()
    ax.text(
        0.5,
        0.5 if not ax.lines else 0.12,
        text,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=8.5,
        color="#555",
        bbox={"boxstyle": "round", "facecolor": "#f6f6f6", "edgecolor": "#ccc"},
    )


def curve_points(metric: str, pts: list[dict]) -> list[dict]:
    """The points of one series a learning-curve panel draws, by cycle."""
    pts = sorted((p for p in pts if p.get(metric) is not None), key=lambda p: p["cycle"])
    if metric == "median_steps_to_green":  # nothing passed: there are no steps to green (a
        pts = [p for p in pts if p.get("pass_rate", 1.0) > 0]  # store from before None logged 0)
    return pts


def panel_note(metric: str, series: dict[str, list[dict]]) -> str | None:
    """Why a panel shows no line (nothing measured, nothing to measure, one point), or None."""
    drawn = max((len(curve_points(metric, pts)) for pts in series.values()), default=0)
    if drawn == 0:
        evals = any("pass_rate" in p for pts in series.values() for p in pts)
        if metric == "median_steps_to_green" and evals:
            return "no data: nothing was fixed in any cycle,\nso there are no steps to green"
        return "no data: no eval measured this yet"
    if drawn == 1:
        return "one cycle so far: a line needs two"
    return None


def learning_curve(
    points: list[dict] | dict[str, list[dict]],
    out: str | Path,
    title: str = "Learning curve",
    subtitle: str = "",
) -> Path:
    """The learning curve (`learning_curve_figure`) as a PNG at `out`."""
    return _save(learning_curve_figure(points, title, subtitle), out)


def learning_curve_figure(
    points: list[dict] | dict[str, list[dict]],
    title: str = "Learning curve",
    subtitle: str = "",
) -> Figure:
    """points: [{"cycle": 1, "pass_rate": .., "repeat_error_rate": .., "median_steps_to_green":
    .., "failures": .., "episodes": ..}] or {series label: such a list} (one line per lineage, or
    candidate vs champion). `failures`, when given, marks a repeat-error rate that is 0 because
    nothing failed; a panel with no line or one point says why (`panel_note`)."""
    series = _series(points)
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.4 * len(CURVES), 3.9))
    for ax, (metric, name, what, ylim) in zip(axes, CURVES, strict=True):
        for label, pts in series.items():
            pts = curve_points(metric, pts)
            if not pts:
                continue
            style = "--" if "champion" in label or "before" in label else "-"
            ax.plot(
                [p["cycle"] for p in pts],
                [p[metric] for p in pts],
                style,
                marker="o",
                label=label or None,
            )
            if metric == "repeat_error_rate":
                for p in pts:
                    if p.get("failures") == 0:  # 0 by definition, not because errors stopped
                        ax.annotate(
                            "no failures",
                            (p["cycle"], p[metric]),
                            textcoords="offset points",
                            xytext=(0, 6),
                            ha="center",
                            fontsize=7,
                            color="#555",
                        )
        ax.set_xlabel("cycle")
        ax.set_ylabel(what, fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        note = panel_note(metric, series)
        if note:
            _note(ax, note)
        if ax.lines and any(series):
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _titles(fig, title, subtitle)
    return fig


# -- forgetting on the frozen suite ---------------------------------------------------------------


def _state(row: dict) -> str:
    """One koan in one eval, as the gate sees it: the candidate against that eval's champion."""
    champ, cand = row.get("champion_passed"), bool(row["candidate_passed"])
    if champ is None or champ == cand:
        return "pass" if cand else "fail"
    return "gained" if cand else "lost"


def gate_states(tables: list[list[dict]]) -> dict[str, list[str]]:
    """Per koan: the champion at the start (pass/fail), then each eval's state against the
    champion it was measured with (pass, fail, gained, lost, not run). tables: per cycle, the
    eval's per-koan rows (koan_id, champion_passed, candidate_passed)."""
    by = [{r["koan_id"]: r for r in t} for t in tables]
    koans = sorted({k for col in by for k in col})
    start = by[0] if by else {}
    out = {}
    for k in koans:
        first = start.get(k, {}).get("champion_passed")
        row = ["not run" if first is None else ("pass" if first else "fail")]
        row += [_state(col[k]) if k in col else "not run" for col in by]
        out[k] = row
    return out


def _column_labels(cycles: list[int], rejected: list[bool], start: str) -> list[str]:
    return [f"start\n({start})"] + [
        f"c{c}\n{'REJECTED' if rej else 'promoted'}"
        for c, rej in zip(cycles, rejected, strict=True)
    ]


def _hatch_rejected(ax, rejected: list[bool], rows: int) -> None:
    for j, rej in enumerate(rejected, start=1):
        if rej:
            ax.add_patch(
                Rectangle((j - 0.5, -0.5), 1, rows, fill=False, hatch="///", edgecolor="#888", lw=0)
            )


def family_changes(tables: list[list[dict]]) -> dict[str, list[tuple[float, int, int] | None]]:
    """Per family: the start (the first eval's champion) and then each eval's candidate, as
    (pass rate, koans gained, koans lost) against the champion that eval measured, the way the
    gate counts them; None where the family was not in that eval."""
    families = sorted({r["family"] for t in tables for r in t})
    out: dict[str, list] = {}
    for f in families:
        first = [r for r in (tables[0] if tables else []) if r["family"] == f]
        known = [bool(r["champion_passed"]) for r in first if r.get("champion_passed") is not None]
        cells: list = [(sum(known) / len(known), 0, 0) if known else None]
        for t in tables:
            rows = [r for r in t if r["family"] == f]
            if not rows:
                cells.append(None)
                continue
            states = [_state(r) for r in rows]
            rate = sum(bool(r["candidate_passed"]) for r in rows) / len(rows)
            cells.append((rate, states.count("gained"), states.count("lost")))
        out[f] = cells
    return out


def forgetting_by_family(
    tables: list[list[dict]],
    cycles: list[int],
    rejected: list[bool],
    out: str | Path,
    title: str = "Forgetting on the frozen suite",
    start: str = "champion",
) -> Path:
    """The families x cycles heat map (`forgetting_by_family_figure`) as a PNG at `out`."""
    return _save(forgetting_by_family_figure(tables, cycles, rejected, title, start), out)


def forgetting_by_family_figure(
    tables: list[list[dict]],
    cycles: list[int],
    rejected: list[bool],
    title: str = "Forgetting on the frozen suite",
    start: str = "champion",
) -> Figure:
    """Families x cycles (`family_changes`): each family's pass rate on the suite, with the koans
    gained (+) and lost (−) against the champion each candidate was measured with, as the gate
    counts them. A rejected candidate's column is hatched; a cell with a loss is outlined red."""
    changes = family_changes(tables)
    families = list(changes)
    size = {f: len({r["koan_id"] for t in tables for r in t if r["family"] == f}) for f in families}
    grid, text, lost_cells = [], [], []
    for i, f in enumerate(families):
        row, cells = [], []
        for j, cell in enumerate(changes[f]):
            if cell is None:
                row.append(float("nan"))
                cells.append(NOT_MEASURED)
                continue
            rate, gained, lost = cell
            row.append(rate)
            change = " ".join(
                x for x in (f"+{gained}" if gained else "", f"−{lost}" if lost else "") if x
            )
            cells.append(f"{rate:.0%}" + (f"\n{change}" if change else ""))
            if lost:
                lost_cells.append((i, j))
        grid.append(row)
        text.append(cells)
    n_cols = len(tables) + 1
    fig, ax = plt.subplots(figsize=(3.2 + 1.15 * n_cols, 1.6 + 0.55 * max(1, len(families))))
    if not families:
        _note(ax, "no data: no per-koan results in these evals")
    else:
        im = ax.imshow(grid, vmin=0, vmax=1, cmap=_heatmap_cmap(), aspect="auto")
        for i, cells in enumerate(text):
            for j, cell in enumerate(cells):
                ax.text(
                    j, i, cell, ha="center", va="center", fontsize=8, color=_on_cell(grid[i][j])
                )
        for i, j in lost_cells:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d1242f", lw=2))
        _hatch_rejected(ax, rejected, len(families))
        ax.set_xticks(range(n_cols), _column_labels(cycles, rejected, start), fontsize=8)
        ax.set_yticks(range(len(families)), [f"{f} ({size[f]})" for f in families], fontsize=8)
        ax.set_xlabel("model: the champion at the start, then each cycle's candidate")
        fig.colorbar(im, ax=ax, label="pass rate", shrink=0.8)
    _titles(
        fig,
        title,
        "pass rate per family (koans in brackets); +n / −n: koans gained / lost against the\n"
        "champion that cycle's candidate was measured with, as the gate counts them;\n"
        "red outline: a loss (regression); hatched: the gate rejected that candidate",
    )
    return fig


def forgetting_per_koan(
    tables: list[list[dict]],
    cycles: list[int],
    rejected: list[bool],
    out: str | Path,
    title: str = "Forgetting on the frozen suite, koan by koan",
    start: str = "champion",
) -> Path:
    """The koans x cycles map (`forgetting_per_koan_figure`) as a PNG at `out`."""
    return _save(forgetting_per_koan_figure(tables, cycles, rejected, title, start), out)


def forgetting_per_koan_figure(
    tables: list[list[dict]],
    cycles: list[int],
    rejected: list[bool],
    title: str = "Forgetting on the frozen suite, koan by koan",
    start: str = "champion",
) -> Figure:
    """Koans x cycles, grouped by family, in the gate's terms (`gate_states`). Koans that fail in
    every column are counted in the subtitle rather than drawn as rows of grey."""
    states = gate_states(tables)
    families = {r["koan_id"]: r["family"] for t in tables for r in t}
    never = [k for k, row in states.items() if all(s in ("fail", "not run") for s in row)]
    order = sorted((k for k in states if k not in never), key=lambda k: (families.get(k, "~"), k))
    columns = _column_labels(cycles, rejected, start)
    n = len(order)
    row_h = 0.11 if n > 40 else 0.22
    fig, ax = plt.subplots(figsize=(3.8 + 0.75 * len(columns), max(3.0, 1.8 + n * row_h)))
    if not states:
        _note(ax, "no data: no per-koan results in these evals")
    elif not order:
        _note(ax, f"all {len(states)} koans fail in every column: nothing to tell apart")
        ax.set_axis_off()
    else:
        grid = [[STATES.index(s) for s in states[k]] for k in order]
        ax.imshow(
            grid,
            aspect="auto",
            interpolation="nearest",
            vmin=0,
            vmax=len(STATES) - 1,
            cmap=ListedColormap(STATE_COLORS),
        )
        _hatch_rejected(ax, rejected, n)
        ax.set_xticks(range(len(columns)), columns, fontsize=8)
        font = 4.5 if n > 80 else 5.5 if n > 40 else 7.5
        ax.set_yticks(range(n), order, fontsize=font)
        ax.set_ylabel("koan (grouped by family)")
        start_i = 0
        for i in range(1, n + 1):
            if i == n or families.get(order[i]) != families.get(order[start_i]):
                if i < n:
                    ax.axhline(i - 0.5, color="black", lw=0.8)
                ax.text(
                    len(columns) - 0.5 + 0.1,
                    (start_i + i - 1) / 2,
                    families.get(order[start_i], "?"),
                    va="center",
                    ha="left",
                    fontsize=8,
                )
                start_i = i
        ax.set_xticks([x + 0.5 for x in range(len(columns) - 1)], minor=True)
        ax.grid(which="minor", axis="x", color="white", lw=1.5)
        ax.tick_params(which="minor", length=0)
        used = [s for s in STATES if any(s in states[k] for k in order)]
        ax.legend(
            handles=[
                Patch(
                    facecolor=STATE_COLORS[STATES.index(s)], edgecolor="gray", label=STATE_LABELS[s]
                )
                for s in used
            ],
            loc="upper left",
            bbox_to_anchor=(1.18, 1.0),
            fontsize=7,
            frameon=False,
        )
    hidden = f"; {len(never)} koans that fail in every column are not drawn" if never else ""
    _titles(
        fig,
        title,
        "each cycle's candidate against the champion it was measured with (the gate's view)"
        f"{hidden};\nhatched: the gate rejected that candidate",
    )
    return fig


def family_breakdown(
    rates: dict[str, dict[str, float]],
    out: str | Path,
    title: str = "Pass rate per family",
    subtitle: str = "",
) -> Path:
    """The grouped bars (`family_breakdown_figure`) as a PNG at `out`."""
    return _save(family_breakdown_figure(rates, title, subtitle), out)


def family_breakdown_figure(
    rates: dict[str, dict[str, float]],
    title: str = "Pass rate per family",
    subtitle: str = "",
) -> Figure:
    """rates: {group label (a cycle, a model, a strategy): {family: pass rate}} -> grouped bars;
    a family a group did not measure has no bar, and says so."""
    families = sorted({f for r in rates.values() for f in r})
    groups = list(rates)
    width = 0.8 / max(1, len(groups))
    fig, ax = plt.subplots(
        figsize=(min(14.0, max(6.5, 0.9 * len(families) * len(groups) ** 0.5)), 4)
    )
    for i, g in enumerate(groups):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(families))]
        heights = [rates[g].get(f, float("nan")) for f in families]
        bars = ax.bar(xs, [0.0 if v != v else v for v in heights], width, label=g)
        if len(groups) * len(families) <= 40:  # a bar at 0 is a measured 0: say so
            labels = [NOT_MEASURED if v != v else f"{v:.0%}" for v in heights]
            ax.bar_label(bars, labels=labels, fontsize=6)
    ax.set_xticks(range(len(families)), families, rotation=20, ha="right", fontsize=9)
    ax.set_xlabel("family")
    ax.set_ylabel("pass rate")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    if not families:
        _note(ax, "no data: no per-family results in these evals")
    else:
        if not any(v for r in rates.values() for v in r.values()):
            _note(ax, "every family at 0% in every column")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    _titles(fig, title, subtitle)
    return fig


def strategy_comparison(
    results: dict[str, list[dict]],
    out: str | Path,
    metric: str = "pass_rate",
    by: str = "strategy",
    title: str | None = None,
    subtitle: str = "",
) -> Path:
    """The strategies compared (`strategy_comparison_figure`) as a PNG at `out`."""
    return _save(strategy_comparison_figure(results, metric, by, title, subtitle), out)


def strategy_comparison_figure(
    results: dict[str, list[dict]],
    metric: str = "pass_rate",
    by: str = "strategy",
    title: str | None = None,
    subtitle: str = "",
) -> Figure:
    """results: {strategy or swept values: [{"cycle": c, metric: v}, ...]} -> one line per
    strategy over cycles (left) and the last cycle's value as bars (right)."""
    label = metric.replace("_", " ")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names, finals, longest = [], [], 0
    for name, pts in results.items():
        pts = sorted((p for p in pts if p.get(metric) is not None), key=lambda p: p["cycle"])
        if not pts:
            continue
        line = left.plot(
            [p["cycle"] for p in pts], [p[metric] for p in pts], marker="o", label=name
        )[0]
        names.append(name)
        finals.append((pts[-1][metric], line.get_color()))
        longest = max(longest, len(pts))
    left.set_xlabel("cycle")
    left.set_ylabel(label)
    left.xaxis.get_major_locator().set_params(integer=True)
    left.grid(alpha=0.3)
    left.set_title(f"{label} over cycles", fontsize=10)
    if names:
        left.legend(title=by, fontsize=8, title_fontsize=8)
    if not names:
        _note(left, f"no data: no run has {metric} yet")
        _note(right, f"no data: no run has {metric} yet")
    elif longest == 1:
        _note(left, "one cycle per job so far: a line needs two")
    bars = right.bar(range(len(names)), [v for v, _ in finals], color=[c for _, c in finals])
    right.bar_label(bars, fmt="%.2f", fontsize=8)
    right.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    right.set_xlabel(by)
    right.set_ylabel(f"{label} (last cycle)")
    right.set_title("after each job's last cycle", fontsize=10)
    if metric.endswith("rate"):
        left.set_ylim(0, 1.02)
        right.set_ylim(0, 1.1)
    right.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _titles(fig, title or f"Strategies compared by {by}", subtitle)
    return fig


# -- from MLflow -----------------------------------------------------------------------------------


class PlotError(ValueError):
    """Nothing to plot; the message says where it looked."""


def forgetting_matrix_plot(
    matrices: dict[str, list[dict[str, float]]],
    families: list[str],
    out: str | Path,
    suite: str = "the frozen suite",
) -> Path:
    """The forgetting matrix (`forgetting_matrix_figure`) as a PNG at `out`."""
    return _save(forgetting_matrix_figure(matrices, families, suite), out)


def forgetting_matrix_figure(
    matrices: dict[str, list[dict[str, float]]],
    families: list[str],
    suite: str = "the frozen suite",
) -> Figure:
    """One panel per method: rows = before any sleep, then after learning each family in turn;
    columns = family; cell = pass rate. `matrices["base"]` is the one row before sleep."""
    base = matrices.get("base", [])
    panels = {
        m: [[_rate_cell(row.get(f)) for f in families] for row in base + rows]
        for m, rows in matrices.items()
        if m != "base"
    }
    return _matrix_figure(
        panels,
        families,
        ["before sleep"] * len(base) + [f"after {f}" for f in families],
        "Forgetting matrix: pass rate per family after each sleep, per method",
        f"family (measured on {suite})",
    )


def _rate_cell(v: float | None, note: str = "") -> tuple[float, str] | None:
    return None if v is None or v != v else (v, f"{v:.2f}" + note)


def family_cycle_cells(
    summaries: list[dict],
) -> tuple[list[str], list[str], list[list[tuple[float, int] | None]]]:
    """The rows of families_by_cycle.png, one model each: the champion the lineage started from,
    then each cycle's candidate. Returns (families, row labels, cells); a cell is (the model's
    learning-set pass rate on the family, the cycle whose eval measured it), or None where no
    eval measured that model on that family.

    A candidate is measured by its own cycle's eval and, once promoted, as the champion of the
    cycles after it: the family the next cycle learns joins the learning set then, and its rate
    before its own sleep is the promoted candidate's (or, after a rejection, the older
    champion's). Each model's first measurement of a family is kept."""
    families = list(dict.fromkeys(f for s in summaries for f in s["families"]))
    measured: list[dict[str, tuple[float, int]]] = [{} for _ in range(len(summaries) + 1)]
    champion = 0  # the row of the model each cycle's eval measured as its champion
    for k, s in enumerate(summaries, start=1):
        for f, v in s["champion_learning_family"].items():
            measured[champion].setdefault(f, (v, s["cycle"]))
        for f, v in s["learning_family"].items():
            measured[k].setdefault(f, (v, s["cycle"]))
        if s["promoted"]:
            champion = k
    first = summaries[0]["cycle"] if summaries else 1
    labels = [f"start (champion of c{first})"] + [
        f"after c{s['cycle']} ({', '.join(s['families'])})" + ("" if s["promoted"] else " REJECTED")
        for s in summaries
    ]
    return families, labels, [[m.get(f) for f in families] for m in measured]


def family_cycle_matrix(summaries: list[dict], out: str | Path) -> Path:
    """families_by_cycle (`family_cycle_figure`) as a PNG at `out`."""
    return _save(family_cycle_figure(summaries), out)


def family_cycle_figure(summaries: list[dict]) -> Figure:
    """A lineage's families x models (`family_cycle_cells`): each family's learning-set pass
    rate for the champion it started from and after every cycle (the candidate; a rejected
    cycle is marked). Earlier families whose rates hold across later rows were kept."""
    families, labels, cells = family_cycle_cells(summaries)
    own = [summaries[0]["cycle"] if summaries else 1] + [s["cycle"] for s in summaries]
    grid = [
        [
            None if c is None else _rate_cell(c[0], "" if c[1] == mine else f"\n(in c{c[1]})")
            for c in row
        ]
        for row, mine in zip(cells, own, strict=True)
    ]
    return _matrix_figure(
        {"": grid},
        families,
        labels,
        "Does it keep what it learned? Learning-set pass rate per family after each cycle",
        "family (measured on its learning set: fresh programs, never trained on)",
        f"(in cN): measured by cycle N's eval, where that model was the champion; {NOT_MEASURED}: "
        "no eval measured that model on that family",
    )


def _matrix_figure(
    panels: dict[str, list[list[tuple[float, str] | None]]],
    families: list[str],
    labels: list[str],
    title: str,
    xlabel: str,
    subtitle: str = "",
) -> Figure:
    """One HEATMAP panel per key of `panels` (rows = `labels`, columns = `families`); a cell is
    (pass rate, its text), or None where nothing was measured (`NOT_MEASURED`)."""
    rows = max((len(g) for g in panels.values()), default=0)
    if not families or not rows:
        fig, ax = plt.subplots(figsize=(6.5, 2.4))
        _note(ax, "no data: no family was measured")
        _titles(fig, title, subtitle)
        return fig
    width = 1.0 + 1.3 * len(families) * len(panels)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(width + 2.5, max(3.4, 1.6 + 0.45 * rows)),
        squeeze=False,
        sharey=True,
    )
    for ax, (name, cells) in zip(axes[0], panels.items(), strict=True):
        grid = [[float("nan") if c is None else c[0] for c in row] for row in cells]
        im = ax.imshow(grid, vmin=0, vmax=1, cmap=_heatmap_cmap(), aspect="auto")
        for i, row in enumerate(cells):
            for j, c in enumerate(row):
                ax.text(
                    j,
                    i,
                    NOT_MEASURED if c is None else c[1],
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=_on_cell(grid[i][j]),
                )
        ax.set_xticks(range(len(families)), families, rotation=30, ha="right", fontsize=8)
        ax.set_title(name if len(panels) > 1 else "", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
    axes[0][0].set_yticks(range(rows), labels[:rows], fontsize=8)
    axes[0][0].set_ylabel("model state", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="pass rate", shrink=0.8)
    _titles(fig, title, subtitle)
    return fig


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


def _rejected(run) -> bool:
    return run.data.tags.get("gate.decision") == "reject"


def plots_from_mlflow(
    experiment: str,
    uri: str,
    out: str | Path,
    by: str | None = None,
    metric: str | None = None,
    lineage: str | None = None,
    lineages: dict[str, str] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Rebuild every plot from the eval runs of `experiment`; returns the PNGs written.

    Runs are grouped into lineages by their `lineage` tag (or by the tag/param named `by`), ordered
    by their `cycle` tag. `lineage` keeps one lineage; `lineages` ({lineage: label}, a sweep's
    jobs by their swept values) keeps those and names them by label. With several lineages a
    strategy comparison is drawn as well.
    """
    out = Path(out)
    runs = eval_runs(experiment, uri)
    if lineage is not None:  # one lineage's own plots: other runs in the experiment stay out
        runs = [r for r in runs if r.data.tags.get("lineage") == lineage] or runs
    if lineages is not None:
        runs = [r for r in runs if r.data.tags.get("lineage") in lineages]
        if not runs:
            raise PlotError(f"no finished eval of lineages {sorted(lineages)} in {uri}")
    groups: dict[str, list] = defaultdict(list)
    for r in runs:
        tag = r.data.tags.get("lineage", "default")
        if lineages is not None:
            key = lineages[tag] or tag
        else:
            key = (r.data.tags.get(by) or r.data.params.get(by)) if by else None
        groups[str(key or tag)].append(r)
    by = by or "lineage"
    name = title or experiment

    learning = any("learning_pass_rate" in r.data.metrics for r in runs)
    metric = metric or ("learning_pass_rate" if learning else "pass_rate")

    def point(r, prefix: str = "") -> dict:
        """The run's curve point: learning-set metrics when the eval had a learning set."""
        m = r.data.metrics
        p = {"cycle": int(r.data.tags.get("cycle", 0))}
        pre = prefix + ("learning_" if learning else "")
        for metric_name in (*(c[0] for c in CURVES), "failures", "episodes"):
            if pre + metric_name in m:
                p[metric_name] = m[pre + metric_name]
        return p

    def family_rates(r, prefix: str = "") -> dict[str, float]:
        key = prefix + "pass_rate_"
        return {k[len(key) :]: v for k, v in r.data.metrics.items() if k.startswith(key)}

    def set_size(r) -> str:
        m = r.data.metrics
        n = m.get("learning_episodes" if learning else "episodes")
        return f" ({int(n)} koans in the last cycle)" if n else ""

    paths = []
    curves = {g: [point(r) for r in rs] for g, rs in groups.items()}
    last = max(runs, key=lambda r: (int(r.data.tags.get("cycle", 0)), r.info.start_time))
    if len(groups) == 1:
        [(g, rs)] = groups.items()
        curves = {
            "after sleep (candidate)": curves[g],
            "before sleep (champion)": [point(r, "champion_") for r in rs],
        }
    where = LEARNING_SET if learning else "the frozen suite"
    paths.append(
        learning_curve(
            curves,
            out / "learning_curve.png",
            f"Learning curve — {name}",
            f"measured on {where}{set_size(last)}",
        )
    )

    for g, rs in groups.items():
        rs = sorted(rs, key=lambda r: int(r.data.tags.get("cycle", 0)))
        tables = [(r, _per_koan(r.info.run_id)) for r in rs]
        tables = [(r, t) for r, t in tables if t]
        suffix = "" if len(groups) == 1 else f"-{_slug(g)}"
        who = "" if len(groups) == 1 else f" — {g}"
        if tables:
            cycles = [int(r.data.tags.get("cycle", 0)) for r, _ in tables]
            rejected = [_rejected(r) for r, _ in tables]
            start = rs[0].data.tags.get("champion", "champion")
            n = len({row["koan_id"] for _, t in tables for row in t})
            suite = f"Forgetting on the frozen suite ({n} koans){who}"
            paths.append(
                forgetting_by_family(
                    [t for _, t in tables],
                    cycles,
                    rejected,
                    out / f"forgetting_heatmap{suffix}.png",
                    f"{suite}: pass rate per family after each cycle",
                    start,
                )
            )
            paths.append(
                forgetting_per_koan(
                    [t for _, t in tables],
                    cycles,
                    rejected,
                    out / f"forgetting_per_koan{suffix}.png",
                    f"{suite}, koan by koan",
                    start,
                )
            )
        cols = {
            f"c{int(r.data.tags.get('cycle', 0))}" + (" (rejected)" if _rejected(r) else ""): (
                family_rates(r)
            )
            for r in rs
        }
        if rs:
            cols = {
                f"start ({rs[0].data.tags.get('champion', 'champion')})": family_rates(
                    rs[0], "champion_"
                ),
                **cols,
            }
        paths.append(
            family_breakdown(
                cols,
                out / f"family_breakdown{suffix}.png",
                f"Pass rate per family by cycle{who}",
                "measured on the frozen suite: the champion at the start, then each cycle's candidate",
            )
        )
    if len(groups) > 1:
        results = {
            g: [{"cycle": int(r.data.tags.get("cycle", 0)), **dict(r.data.metrics)} for r in rs]
            for g, rs in groups.items()
        }
        last_of = {
            g: max(rs, key=lambda r: int(r.data.tags.get("cycle", 0))) for g, rs in groups.items()
        }
        on = LEARNING_SET if metric.startswith("learning_") else "the frozen suite"
        paths.append(
            strategy_comparison(
                results,
                out / "strategy_comparison.png",
                metric,
                by,
                f"{name}: {metric.replace('_', ' ')} by {by}",
                f"each job is its own lineage, measured on {on}",
            )
        )
        paths.append(
            family_breakdown(
                {g: family_rates(r) for g, r in last_of.items()},
                out / "family_breakdown_by_strategy.png",
                f"{name}: pass rate per family after the last cycle, by {by}",
                "measured on the frozen suite (each job's last candidate)",
            )
        )
    return paths


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60]


# -- the command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="sleepy-plots",
        description=(
            "Plots of what sleep did, rebuilt from the eval runs of an MLflow experiment:\n"
            "the learning curve over cycles, forgetting on the frozen suite (families x\n"
            "cycles, and koan by koan), the family breakdown and, with several lineages (a\n"
            "sweep), the strategy comparison. Each is one PNG whose title says what was\n"
            "measured and on which set; the paths written are printed."
        ),
        epilog=(
            "examples:\n"
            "  sleepy-plots                                  the sleepy-cycle experiment's runs\n"
            "  sleepy-plots --lineage <name> --out plots/    one lineage's plots\n"
            "  sleepy-plots --by <tag or param> --metric pass_rate   strategies by that value"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--experiment", default="sleepy-cycle", help="MLflow experiment with eval runs")
    p.add_argument("--uri", default=None, help="MLflow tracking store (default: tracking.uri)")
    p.add_argument("--out", default="outputs/plots", help="folder for the PNGs")
    p.add_argument(
        "--by",
        default=None,
        help="tag or param that names a strategy (default: the eval runs' lineage tag)",
    )
    p.add_argument("--lineage", default=None, help="only this lineage")
    p.add_argument(
        "--metric",
        default=None,
        help="metric of the strategy comparison (default: learning_pass_rate when measured)",
    )
    args = p.parse_args(argv)
    args.uri = args.uri or default_store()[0]
    require_store(args.uri, "sleepy-plots")
    try:
        paths = plots_from_mlflow(
            args.experiment, args.uri, args.out, args.by, args.metric, lineage=args.lineage
        )
    except PlotError as e:
        print(f"sleepy-plots: error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
