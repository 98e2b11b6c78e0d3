"""median_steps_to_green when nothing was fixed: None, not 0.0, from a real episode store; the
eval cache keeps it, and the cycle logs its other metrics to a real MLflow store without it."""

from __future__ import annotations

import mlflow
import pytest

from sleepy.cycle import _log_cycle, cycle_row
from sleepy.episodes import EpisodeStore, metrics_of
from sleepy.eval.cache import ResultCache
from sleepy.eval.metrics import outcomes
from sleepy.tracking import mlflow_run


def record(store: EpisodeStore, task: str, steps: int | None) -> None:
    """One finished episode of `task`: passed after `steps` steps, or failed (steps None)."""
    eid = store.start_episode("run1", task, attempt_idx=0, family="lifetimes")
    for _ in range(steps or 2):
        store.record_step(eid, {"action": "run_tests", "observation": "error[E0597]"})
    store.finish_episode(
        eid,
        passed=steps is not None,
        steps_to_green=steps,
        final_error_signature=None if steps else "E0597 borrowed value does not live long enough",
    )


@pytest.mark.parametrize(
    ("steps", "median"),
    [([None, None, None], None), ([None, 3, 1, 4], 3.0), ([2, None], 2.0)],
)
def test_median_steps_to_green_is_none_when_nothing_passed(tmp_path, steps, median):
    with EpisodeStore(tmp_path / "episodes.sqlite") as store:
        for i, s in enumerate(steps):
            record(store, f"k{i}", s)
        m = metrics_of(store.episodes(run_id="run1"))
    assert m["median_steps_to_green"] == median
    assert m["pass_rate"] == sum(s is not None for s in steps) / len(steps)


def test_the_eval_cache_keeps_a_result_that_fixed_nothing(tmp_path):
    with EpisodeStore(tmp_path / "episodes.sqlite") as store:
        record(store, "k0", None)
        episodes = store.episodes(run_id="run1")
    res, m = outcomes(episodes), metrics_of(episodes)
    cache = ResultCache(tmp_path / "eval_cache")
    cache.put("key", res, m, "eval-1")
    hit = cache.get("key", ["k0"])
    assert hit is not None  # a None metric is no reason to measure the champion again
    assert hit.metrics["median_steps_to_green"] is None and hit.metrics["pass_rate"] == 0.0


def test_a_cycle_that_fixed_nothing_logs_no_median_steps(tmp_path):
    ev = {
        "learning_pass_rate": 0.0,
        "champion_learning_pass_rate": 0.0,
        "repeat_error_rate": 1.0,
        "champion_repeat_error_rate": 1.0,
        "median_steps_to_green": None,
        "pass_rate": 0.25,
        "champion_pass_rate": 0.25,
        "promoted": False,
        "regressions": [],
        "gains": [],
        "learning_family": {"lifetimes": 0.0},
        "champion_learning_family": {"lifetimes": 0.0},
        "decision": "reject: no gain",
    }
    metrics, per_family, summary = cycle_row(1, {"pass_rate": 0.0}, ev, ["lifetimes"])
    assert summary["median_steps_to_green"] is None
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with mlflow_run(uri, "sleepy-cycle", run_name="c1", tags={"stage": "cycle"}) as run:
        _log_cycle(metrics, per_family, ev, ["lifetimes"], 1)
    logged = mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id).data.metrics
    assert "median_steps_to_green" not in logged
    assert logged["pass_rate"] == 0.25 and logged["learning_pass_rate_lifetimes"] == 0.0
