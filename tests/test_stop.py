"""Ctrl-C (SIGINT) and SIGTERM stop a run with one line saying how to resume it, exit status 130
or 143, its MLflow runs (nested ones too) KILLED and no episode left running; the resume finishes
the day. Real subprocesses, real MLflow sqlite stores, real SQLite episode stores under
tmp_path."""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from sleepy.episodes import EpisodeStore
from sleepy.koan.model import save_koan
from sleepy.tracking import mlflow_run


@pytest.fixture(scope="module")
def koan_dir(tmp_path_factory, generated) -> Path:
    out = tmp_path_factory.mktemp("koans")
    for k in generated("borrow_checker", 3, seed=11):
        save_koan(k, out)
    return out


def started(db: Path) -> list[tuple[str, str]]:
    """The day's episodes so far; none while the store is still being created (its file can
    exist a moment before its tables do)."""
    try:
        return statuses(db, "stopped")
    except sqlite3.OperationalError:
        return []


def statuses(db: Path, run_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as c:
        return c.execute(
            "SELECT task_id, status FROM episodes WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()


def day_runs(tmp_path: Path) -> list:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    return mlflow.search_runs(experiment_names=["sleepy-day"], output_format="list")


@pytest.mark.parametrize(
    "sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_stopped_day_says_how_to_resume_and_the_resume_finishes_it(
    tmp_path, koan_dir, sig, status
):
    args = [
        "model=tiny",
        f"koans.source={koan_dir}",
        "koans.count=3",
        "agent.concurrency=1",
        "agent.max_attempts=1",
        "agent.max_new_tokens=16",
        f"paths.outputs={tmp_path}",
        "run_id=stopped",
    ]
    db = tmp_path / "day" / "stopped" / "episodes.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sleepy.day", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists() and any(s == "running" for _, s in started(db)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the day ended before it could be stopped"
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    said = [line for line in err.splitlines() if "stopped" in line]
    assert len(said) == 1, err[-2000:]
    assert said[0].startswith("sleepy-day: stopped; resume with `") and said[0].endswith("`")
    command = shlex.split(said[0].split("`")[1])
    assert command[0] == "sleepy-day"
    assert "run_id=stopped" in command and "resume=true" in command
    assert set(args) <= set(command)  # the user's own overrides, so the resume is the same day

    [run] = day_runs(tmp_path)
    assert run.info.status == "KILLED"
    left = statuses(db, "stopped")
    assert not any(s == "running" for _, s in left)
    assert any(s == "interrupted" for _, s in left)  # the episode under way when it stopped
    assert len({t for t, s in left if s in ("done", "error")}) < 3

    resumed = subprocess.run(
        [sys.executable, "-m", "sleepy.day", *command[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = statuses(db, "stopped")
    done = [t for t, s in after if s in ("done", "error")]
    assert len(done) == 3 and len(set(done)) == 3  # each koan once; the interrupted one redone
    assert {t for t, s in left if s == "interrupted"} <= set(done)
    assert not any(s == "running" for _, s in after)
    [again] = day_runs(tmp_path)
    assert again.info.run_id == run.info.run_id  # the stopped run, carried on
    assert again.info.status == "FINISHED" and again.data.metrics["episodes"] == 3


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
