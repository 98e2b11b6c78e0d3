"""Plots from plain data and from a real MLflow store holding eval runs of two lineages."""

from __future__ import annotations

import json
import random

import mlflow
import pytest
from matplotlib.image import imread

from sleepy.plots import (
    family_breakdown,
    forgetting_heatmap,
    koan_states,
    learning_curve,
    main,
    plots_from_mlflow,
    strategy_comparison,
)
from sleepy.tracking import mlflow_run

FAMILIES = ["borrow_checker", "lifetimes", "mutability", "trait_bounds"]


def test_koan_states_name_what_changed():
    cols = [
        {"a": True, "b": False, "c": True},
        {"a": True, "b": True, "c": False},
        {"a": False, "b": True},
    ]
    assert koan_states(cols) == {
        "a": ["pass", "pass", "lost"],
        "b": ["fail", "gained", "pass"],
        "c": ["pass", "lost", "not run"],
    }


def test_pure_plots_write_pngs(tmp_path):
    pts = [
        {"cycle": c, "pass_rate": 0.2 * c, "repeat_error_rate": 0.5, "median_steps_to_green": 2}
        for c in (1, 2)
    ]
    for path in (
        learning_curve(pts, tmp_path / "lc.png"),
        family_breakdown(
            {"c1": {"lifetimes": 0.5}, "c2": {"lifetimes": 0.75}}, tmp_path / "fam.png"
        ),
        strategy_comparison(
            {"share": pts, "none": pts[:1]}, tmp_path / "s.png", by="consolidation"
        ),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_heatmap_grows_with_the_koans(tmp_path):
    def draw(n):
        koans = {f"k{i:03d}": FAMILIES[i % 4] for i in range(n)}
        cols = [{k: (i + c) % 3 == 0 for i, k in enumerate(koans)} for c in range(3)]
        return imread(
            forgetting_heatmap(cols, ["start", "c1", "c2"], koans, tmp_path / f"h{n}.png")
        )

    small, big = draw(8), draw(96)
    # at 96 koans every row still gets ~10 pixels of its own (0.11 in at 130 dpi, less margins)
    assert big.shape[0] > 96 * 10 and big.shape[0] > 2.5 * small.shape[0]


def _log_eval(uri, lineage, cycle, koans, rng):
    rows = []
    for k, fam in koans.items():
        before, after = rng.random() < 0.4, rng.random() < 0.5
        rows.append(
            {"koan_id": k, "family": fam, "champion_passed": before, "candidate_passed": after}
        )
    tags = {"stage": "eval", "cycle": str(cycle), "lineage": lineage, "champion": "base"}
    with mlflow_run(uri, "sleepy-cycle", run_name=f"eval-{lineage}-{cycle}", tags=tags):
        metrics = {
            "pass_rate": sum(r["candidate_passed"] for r in rows) / len(rows),
            "champion_pass_rate": sum(r["champion_passed"] for r in rows) / len(rows),
            "repeat_error_rate": rng.random(),
            "median_steps_to_green": 2.0,
            "champion_repeat_error_rate": rng.random(),
        }
        for fam in FAMILIES:
            group = [r for r in rows if r["family"] == fam]
            metrics[f"pass_rate_{fam}"] = sum(r["candidate_passed"] for r in group) / len(group)
            metrics[f"champion_pass_rate_{fam}"] = sum(r["champion_passed"] for r in group) / len(
                group
            )
        mlflow.log_metrics(metrics)
        mlflow.log_text(json.dumps(rows), "eval/per_koan.json")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    uri = f"sqlite:///{tmp}/mlflow.db"
    rng = random.Random(0)
    koans = {f"ev-{f}-{i:02d}": f for f in FAMILIES for i in range(21)}  # 84 koans
    for lineage in ("rank=4,consolidation=share", "rank=8,consolidation=none"):
        for cycle in (1, 2, 3):
            _log_eval(uri, lineage, cycle, koans, rng)
    with mlflow_run(uri, "sleepy-cycle", run_name="not-an-eval", tags={"stage": "day"}):
        mlflow.log_metric("pass_rate", 0.99)
    return uri


def test_plots_from_mlflow_rebuild_every_plot(store, tmp_path):
    paths = plots_from_mlflow("sleepy-cycle", store, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "learning_curve.png",
            "strategy_comparison.png",
            "family_breakdown_by_strategy.png",
            "forgetting_heatmap-rank_4_consolidation_share.png",
            "family_breakdown-rank_4_consolidation_share.png",
            "forgetting_heatmap-rank_8_consolidation_none.png",
            "family_breakdown-rank_8_consolidation_none.png",
        ]
    )
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_sleepy_plots_command(store, tmp_path, capsys):
    assert main(["--experiment", "sleepy-cycle", "--uri", store, "--out", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 7
    assert main(["--experiment", "nope", "--uri", store, "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip() == f"sleepy-plots: error: no experiment 'nope' in {store}"
    )


def test_forgetting_matrix_plot_writes_one_panel_per_method(tmp_path):
    from sleepy.plots import forgetting_matrix_plot

    fams = ["trait_bounds", "lifetimes"]
    row = {"trait_bounds": 0.5, "lifetimes": 0.25}
    png = forgetting_matrix_plot(
        {"base": [row], "none": [row, row], "share": [row, row]}, fams, tmp_path / "fm.png"
    )
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[1] > img.shape[0]  # two panels side by side
