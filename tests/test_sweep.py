"""Sweeps a user can compare: swept keys from the command line, jobs named by their values, and
one summary (table and plots) from a real MLflow store holding a sweep's cycle and eval runs."""

from __future__ import annotations

import json

import mlflow
import pytest
from omegaconf import OmegaConf

from sleepy.sweep import SWEEP_ENV, SWEPT_ENV, SweepSummary, label, summarize, swept_keys
from sleepy.tracking import mlflow_run


def test_swept_keys_are_the_overrides_with_choices():
    argv = ["adapter.rank=4,8", "consolidation=none,share", "cycles=2", "+x=range(1,3)"]
    assert swept_keys(argv) == ["adapter.rank", "consolidation", "x"]
    assert swept_keys(["cycles=2"], {"gate.min_gain": "0.0,0.1"}) == ["gate.min_gain"]


def test_a_job_is_named_by_its_values():
    assert label({"adapter.rank": "8", "consolidation": "share"}) == "rank=8 consolidation=share"
    # two keys ending alike keep their whole names
    assert label({"adapter.rank": "8", "model.rank": "2"}) == "adapter.rank=8 model.rank=2"
    assert label({}) == ""


def test_the_callback_tells_the_jobs_what_is_swept(monkeypatch):
    monkeypatch.delenv(SWEPT_ENV, raising=False)
    monkeypatch.delenv(SWEEP_ENV, raising=False)
    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": ["adapter.rank=4,8", "cycles=1"]},
                "sweeper": {"params": None},
                "sweep": {"dir": "/tmp/outputs/cycle/multirun/2026-11-30_08-11-12_3b475b"},
            }
        }
    )
    SweepSummary().on_multirun_start(config)
    import os

    assert os.environ[SWEPT_ENV] == "adapter.rank"
    assert os.environ[SWEEP_ENV] == "2026-11-30_08-11-12_3b475b"


def _cycle(uri, lineage, swept, sweep, c, rate, promoted=True):
    tags = {"stage": "cycle", "cycle": str(c), "lineage": lineage, "families": "lifetimes"}
    if sweep:
        tags |= {"sweep": sweep, "swept": swept}
    with mlflow_run(uri, "sleepy-cycle", run_name=f"{swept} · cycle {c}", tags=tags):
        mlflow.log_metrics(
            {
                "learning_pass_rate": rate,
                "champion_learning_pass_rate": 0.0,
                "repeat_error_rate": 1.0,
                "champion_repeat_error_rate": 1.0,
                "regressions": 0,
                "promoted": float(promoted),
                "learning_pass_rate_lifetimes": rate,
            }
        )
        mlflow.set_tags({"decision": "promote: ok" if promoted else "reject: no"})
    rows = [
        {"koan_id": f"k{i}", "family": "lifetimes", "champion_passed": False,
         "candidate_passed": i < 2}
        for i in range(4)
    ]  # fmt: skip
    tags = {"stage": "eval", "cycle": str(c), "lineage": lineage, "champion": "base"}
    with mlflow_run(uri, "sleepy-cycle", run_name=f"c{c} eval", tags=tags):
        mlflow.log_metrics(
            {"learning_pass_rate": rate, "pass_rate": 0.5, "pass_rate_lifetimes": 0.5}
        )
        mlflow.log_text(json.dumps(rows), "eval/per_koan.json")


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for job, rank, rates in ((0, 4, (0.2, 0.4)), (1, 8, (0.3, 0.6))):
        for c, rate in enumerate(rates, start=1):
            _cycle(uri, f"s1-{job}", f"rank={rank}", "s1", c, rate)
    _cycle(uri, "unrelated", "", None, 1, 0.9)  # not of this sweep
    return uri


def test_sweep_summary_is_the_sweeps_own_jobs_by_swept_values(store, tmp_path):
    table, files = summarize(tmp_path / "multirun" / "s1", store, by="rank")
    md = files[0].read_text()
    assert "| rank=4 | 2 | 2/2 | 0% → 40% |" in md and "| rank=8 | 2 | 2/2 | 0% → 60% |" in md
    assert "unrelated" not in md
    names = sorted(f.name for f in files[1:])
    assert "strategy_comparison.png" in names and "learning_curve.png" in names
    assert not any("unrelated" in n for n in names)
    client = mlflow.MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("sleepy-cycle")
    [run] = client.search_runs([exp.experiment_id], "tags.stage = 'sweep'")
    assert run.data.tags["sweep"] == "s1" and run.data.params["jobs"] == "2"
    assert table.row_count == 2
