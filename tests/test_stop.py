"""A run stopped by Ctrl-C (KeyboardInterrupt) ends its MLflow runs (nested ones too) KILLED and
leaves no episode running. Real MLflow sqlite stores, real SQLite episode stores under
tmp_path."""

from __future__ import annotations

import mlflow
import pytest

from sleepy.episodes import EpisodeStore
from sleepy.tracking import mlflow_run


def test_a_stop_ends_nested_mlflow_runs_killed_and_a_failure_still_failed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(KeyboardInterrupt):
        with mlflow_run(uri, "sleepy-cycle", run_name="parent"):
            with mlflow_run(uri, "sleepy-cycle", run_name="child", nested=True):
                raise KeyboardInterrupt
    with pytest.raises(RuntimeError):
        with mlflow_run(uri, "sleepy-cycle", run_name="broken"):
            raise RuntimeError("a bug")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["sleepy-cycle"], output_format="list")
    assert {r.info.run_name: r.info.status for r in runs} == {
        "parent": "KILLED",
        "child": "KILLED",
        "broken": "FAILED",
    }
    assert mlflow.active_run() is None


def test_episodes_of_a_stopped_run_end_interrupted_and_a_resume_redoes_them(tmp_path):
    db = tmp_path / "episodes.sqlite"
    with EpisodeStore(db) as store:
        with pytest.raises(KeyboardInterrupt):
            with store.own_run("r"):
                done = store.start_episode("r", "a")
                store.finish_episode(done, passed=True)
                store.start_episode("r", "b")
                store.start_episode("other", "c")  # another run's: not this owner's to end
                raise KeyboardInterrupt
        assert {e.task_id: e.status for e in store.episodes(status=None)} == {
            "a": "done",
            "b": "interrupted",
            "c": "running",
        }
        assert store.finished_task_ids("r") == {"a"}  # b is done again on resume
