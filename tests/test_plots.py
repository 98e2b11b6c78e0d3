"""Plots from plain data and from a real MLflow store holding eval runs of two lineages."""

from __future__ import annotations

import json
import random

import matplotlib.pyplot as plt
import mlflow
import pytest
from matplotlib.image import imread

from sleepy.plots import (
    family_breakdown,
    family_changes,
    family_cycle_cells,
    forgetting_per_koan,
    gate_states,
    learning_curve,
    main,
    panel_note,
    plots_from_mlflow,
    strategy_comparison,
)
from sleepy.tracking import mlflow_run

FAMILIES = ["borrow_checker", "lifetimes", "mutability", "trait_bounds"]


def row(koan, champion, candidate, family="lifetimes"):
    return {
        "koan_id": koan,
        "family": family,
        "champion_passed": champion,
        "candidate_passed": candidate,
    }


def test_gate_states_compare_each_candidate_with_the_champion_it_met():
    # c1 is rejected (the champion stays), so c2 is measured against the same champion again
    c1 = [row("a", True, True), row("b", False, True), row("c", True, False)]
    c2 = [row("a", True, False), row("b", False, False), row("c", True, True)]
    assert gate_states([c1, c2]) == {
        "a": ["pass", "pass", "lost"],  # the gate's regression, though c1 passed it too
        "b": ["fail", "gained", "fail"],  # not "lost": the champion never passed it
        "c": ["pass", "lost", "pass"],  # not "gained" back: the champion passes it as well
    }


def test_family_changes_count_gains_and_losses_as_the_gate_does():
    c1 = [row("a", True, True), row("b", False, True), row("c", True, False)]
    c1 += [row("m", False, False, "mutability")]
    c2 = [row("a", True, False), row("b", True, True)]
    changes = family_changes([c1, c2])
    assert changes["lifetimes"] == [(2 / 3, 0, 0), (2 / 3, 1, 1), (0.5, 0, 1)]
    assert changes["mutability"] == [(0.0, 0, 0), (0.0, 0, 0), None]  # not in c2's eval


def test_panels_say_why_they_draw_no_line():
    one = {"": [{"cycle": 1, "pass_rate": 0.0, "median_steps_to_green": None}]}
    assert panel_note("pass_rate", one) == "one cycle so far: a line needs two"
    assert panel_note("median_steps_to_green", one).startswith("no data: nothing was fixed")
    assert panel_note("repeat_error_rate", one) == "no data: no eval measured this yet"
    # a store from before None: 0.0 logged for a cycle that fixed nothing is not drawn either
    old = {"": [{"cycle": 1, "pass_rate": 0.0, "median_steps_to_green": 0.0}]}
    assert panel_note("median_steps_to_green", old).startswith("no data: nothing was fixed")
    two = {"": [{"cycle": c, "pass_rate": 0.5} for c in (1, 2)]}
    assert panel_note("pass_rate", two) is None


def test_pure_plots_write_pngs(tmp_path):
    pts = [
        {"cycle": c, "pass_rate": 0.2 * c, "repeat_error_rate": 0.5, "median_steps_to_green": 2}
        for c in (1, 2)
    ]
    for path in (
        learning_curve(pts, tmp_path / "lc.png", "Learning curve", "measured on a set"),
        family_breakdown(
            {"c1": {"lifetimes": 0.5}, "c2": {"lifetimes": 0.75}}, tmp_path / "fam.png"
        ),
        strategy_comparison(
            {"share": pts, "none": pts[:1]}, tmp_path / "s.png", by="consolidation"
        ),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_koan_heatmap_grows_with_the_koans_that_differ(tmp_path):
    def draw(n, passing):
        tables = [
            [
                row(f"k{i:03d}", i < passing and c % 2 == 0, i < passing, FAMILIES[i % 4])
                for i in range(n)
            ]
            for c in range(2)
        ]
        return imread(forgetting_per_koan(tables, [1, 2], [False, True], tmp_path / f"h{n}.png"))

    small, big = draw(8, 8), draw(96, 96)
    # at 96 koans every row still gets ~10 pixels of its own (0.11 in at 130 dpi, less margins)
    assert big.shape[0] > 96 * 10 and big.shape[0] > 2.5 * small.shape[0]
    # koans that fail in every column are counted, not drawn as rows of grey
    assert draw(96, 8).shape[0] < big.shape[0] / 2


def _log_eval(uri, lineage, cycle, koans, rng, reject=False):
    rows = []
    for k, fam in koans.items():
        before, after = rng.random() < 0.4, rng.random() < 0.5
        rows.append(row(k, before, after, fam))
    tags = {
        "stage": "eval",
        "cycle": str(cycle),
        "lineage": lineage,
        "champion": "base",
        "gate.decision": "reject" if reject else "promote",
    }
    with mlflow_run(uri, "sleepy-cycle", run_name=f"eval-{lineage}-{cycle}", tags=tags):
        metrics = {
            "pass_rate": sum(r["candidate_passed"] for r in rows) / len(rows),
            "champion_pass_rate": sum(r["champion_passed"] for r in rows) / len(rows),
            "repeat_error_rate": rng.random(),
            "median_steps_to_green": 2.0,
            "champion_repeat_error_rate": rng.random(),
        }
        for fam in {r["family"] for r in rows}:
            group = [r for r in rows if r["family"] == fam]
            metrics[f"pass_rate_{fam}"] = sum(r["candidate_passed"] for r in group) / len(group)
            metrics[f"champion_pass_rate_{fam}"] = sum(r["champion_passed"] for r in group) / len(
                group
            )
        mlflow.log_metrics(metrics)
        mlflow.log_text(json.dumps(rows), "eval/per_koan.json")


# two jobs of a sweep, named by timestamp as sweep jobs are, and an unrelated earlier lineage
SWEEP = {"2026-11-30_08-11-12_3b475b-0": "rank=4", "2026-11-30_08-11-12_3b475b-1": "rank=8"}
EARLIER = "2026-11-29_17-00-00_aaaaaa"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    uri = f"sqlite:///{tmp}/mlflow.db"
    rng = random.Random(0)
    koans = {f"ev-{f}-{i:02d}": f for f in FAMILIES for i in range(21)}  # 84 koans
    for lineage in SWEEP:
        for cycle in (1, 2, 3):
            _log_eval(uri, lineage, cycle, koans, rng, reject=cycle == 2)
    _log_eval(uri, EARLIER, 1, dict(list(koans.items())[:10]), rng)
    with mlflow_run(uri, "sleepy-cycle", run_name="not-an-eval", tags={"stage": "day"}):
        mlflow.log_metric("pass_rate", 0.99)
    return uri


def test_plots_from_mlflow_rebuild_every_plot(store, tmp_path):
    paths = plots_from_mlflow("sleepy-cycle", store, tmp_path, lineage=EARLIER)
    assert sorted(p.name for p in paths) == [
        "family_breakdown.png",
        "forgetting_heatmap.png",
        "forgetting_per_koan.png",
        "learning_curve.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_a_sweeps_plots_are_its_own_lineages_named_by_swept_values(store, tmp_path):
    paths = plots_from_mlflow("sleepy-cycle", store, tmp_path, lineages=SWEEP, by="rank")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "learning_curve.png",
            "strategy_comparison.png",
            "family_breakdown_by_strategy.png",
            *(
                f"{kind}-rank_{r}.png"
                for kind in ("forgetting_heatmap", "forgetting_per_koan", "family_breakdown")
                for r in (4, 8)
            ),
        ]
    )
    assert not any(EARLIER in n or "3b475b" in n for n in names)


def test_sleepy_plots_command(store, tmp_path, capsys):
    argv = ["--experiment", "sleepy-cycle", "--uri", store, "--out", str(tmp_path)]
    assert main([*argv, "--lineage", EARLIER]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["--experiment", "nope", "--uri", store, "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip() == f"sleepy-plots: error: no experiment 'nope' in {store}"
    )


def test_forgetting_matrix_plot_writes_one_panel_per_method(tmp_path):
    from sleepy.plots import forgetting_matrix_plot

    fams = ["trait_bounds", "lifetimes"]
    r = {"trait_bounds": 0.5, "lifetimes": 0.25}
    png = forgetting_matrix_plot(
        {"base": [r], "none": [r, r], "share": [r, r]}, fams, tmp_path / "fm.png"
    )
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[1] > img.shape[0]  # two panels side by side


# -- what the plots say: one way for a cell nobody measured, one colour map, one family spelling --


def summary(cycle, families, learning, champion, promoted=True):
    return {
        "cycle": cycle,
        "families": families,
        "learning_family": learning,
        "champion_learning_family": champion,
        "promoted": promoted,
    }


# trait_bounds learned in c1 (promoted), lifetimes in c2 (promoted), mutability in c3 (rejected);
# the learning set grows by the family each day failed on
LINEAGE = [
    summary(1, ["trait_bounds"], {"trait_bounds": 0.75}, {"trait_bounds": 0.25}),
    summary(
        2,
        ["lifetimes"],
        {"trait_bounds": 0.7, "lifetimes": 0.6},
        {"trait_bounds": 0.75, "lifetimes": 0.2},
    ),
    summary(
        3,
        ["mutability"],
        {"trait_bounds": 0.5, "lifetimes": 0.6, "mutability": 0.4},
        {"trait_bounds": 0.7, "lifetimes": 0.6, "mutability": 0.1},
        promoted=False,
    ),
]


def cell_texts(ax) -> dict[tuple[int, int], str]:
    """(row, column) -> the text drawn in that heat-map cell."""
    return {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }


def test_families_by_cycle_rows_are_models_measured_where_any_eval_measured_them():
    families, labels, cells = family_cycle_cells(LINEAGE)
    assert families == ["trait_bounds", "lifetimes", "mutability"]
    assert labels[0] == "start (champion of c1)" and labels[3].endswith("REJECTED")
    # c1's candidate is c2's champion: its lifetimes rate (before lifetimes' own sleep) is its own
    assert cells[1] == [(0.75, 1), (0.2, 2), None]
    assert cells[0] == [(0.25, 1), None, None]  # the start model left the lineage after c1
    assert cells[2] == [(0.7, 2), (0.6, 2), (0.1, 3)]  # c2's candidate was c3's champion
    assert cells[3] == [(0.5, 3), (0.6, 3), (0.4, 3)]


def test_families_by_cycle_says_not_measured_one_way():
    from sleepy.plots import NOT_MEASURED, family_cycle_figure

    fig = family_cycle_figure(LINEAGE)
    ax = fig.axes[0]
    texts = cell_texts(ax)
    _, _, cells = family_cycle_cells(LINEAGE)
    unmeasured = {(i, j) for i, row in enumerate(cells) for j, c in enumerate(row) if c is None}
    assert (
        {k for k, t in texts.items() if t == NOT_MEASURED}
        == unmeasured
        == {
            (0, 1),
            (0, 2),
            (1, 2),
        }
    )
    assert not any("yet" in t for t in texts.values())
    assert texts[(1, 1)] == "0.20\n(in c2)" and texts[(1, 0)] == "0.75"
    plt.close(fig)


def test_every_pass_rate_heat_map_uses_one_colour_map():
    from sleepy.plots import (
        HEATMAP,
        family_cycle_figure,
        forgetting_by_family_figure,
        forgetting_matrix_figure,
    )

    c1 = [row("a", True, True, "trait_bounds"), row("b", False, True)]
    figs = [
        family_cycle_figure(LINEAGE),
        forgetting_by_family_figure([c1, c1], [1, 2], [False, True]),
        forgetting_matrix_figure(
            {"base": [{"lifetimes": 0.5}], "share": [{"lifetimes": 0.7}]}, ["lifetimes"]
        ),
    ]
    maps = {im.get_cmap().name for fig in figs for ax in fig.axes for im in ax.images}
    assert maps == {HEATMAP}
    for fig in figs:
        plt.close(fig)


def test_families_are_spelled_as_users_type_them_in_every_plot():
    from sleepy.plots import (
        family_breakdown_figure,
        family_cycle_figure,
        forgetting_by_family_figure,
    )

    c1 = [row("a", True, True, "trait_bounds"), row("b", False, True, "borrow_checker")]
    figs = [
        family_breakdown_figure({"c1": {"trait_bounds": 0.5, "borrow_checker": 0.25}}),
        family_cycle_figure(LINEAGE),
        forgetting_by_family_figure([c1], [1], [False]),
    ]
    ticks = [
        t.get_text()
        for fig in figs
        for ax in fig.axes
        for t in ax.get_xticklabels() + ax.get_yticklabels()
    ]
    assert "trait_bounds" in ticks and "borrow_checker" in ticks  # the bars, the matrix
    assert "trait_bounds (1)" in ticks  # the forgetting heat map: family (koans)
    assert not any(" bounds" in t or " checker" in t for t in ticks)
    for fig in figs:
        plt.close(fig)


def test_a_panel_with_no_data_says_so_instead_of_drawing_empty_axes():
    from sleepy.plots import (
        family_breakdown_figure,
        family_cycle_figure,
        forgetting_per_koan_figure,
        learning_curve_figure,
        strategy_comparison_figure,
    )

    def empty_panels(fig):
        """Per axes without its axis drawn: its texts."""
        return [[t.get_text() for t in ax.texts] for ax in fig.axes if not ax.axison]

    # cycles that fixed nothing: a pass rate, no repeat-error rate, no steps to green
    pts = [{"cycle": c, "pass_rate": 0.0, "median_steps_to_green": None} for c in (1, 2)]
    curve = learning_curve_figure(pts)
    assert [ax.axison for ax in curve.axes] == [True, False, False]
    assert empty_panels(curve) == [
        ["no data: no eval measured this yet"],
        ["no data: nothing was fixed in any cycle,\nso there are no steps to green"],
    ]
    figs = [
        family_breakdown_figure({}),
        family_cycle_figure([]),
        forgetting_per_koan_figure([], [], []),
        strategy_comparison_figure({"share": [{"cycle": 1}]}),
    ]
    assert len(empty_panels(figs[-1])) == 2  # the lines and the last cycle's bars
    for fig in [curve, *figs]:
        notes = empty_panels(fig)
        assert notes and all(len(t) == 1 and t[0].startswith("no data: ") for t in notes)
        plt.close(fig)
