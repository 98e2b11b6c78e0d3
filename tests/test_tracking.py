"""The MLflow store under a careless user and a busy cluster: parallel first use of a fresh store,
a locked store, a corrupt one; and every entrypoint with tracking off. Real sqlite stores under
tmp_path, real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sleepy.tracking import TrackingError, experiment_id

STARTER = textwrap.dedent("""
    import pathlib, sys, time
    uri, go, name = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    import mlflow
    from sleepy.tracking import mlflow_run
    while not go.exists():  # every process imported and waiting: then all start at once
        time.sleep(0.01)
    with mlflow_run(uri, "sleepy-day", run_name=name, tags={"stage": "day"}):
        mlflow.log_metric("pass_rate", 0.5)
    print("ok", flush=True)
""")


def test_parallel_jobs_on_a_fresh_store_all_start_and_the_store_stays_whole(tmp_path):
    """hydra/launcher=parallel on a fresh checkout: MLflow's migration raced with itself."""
    uri = f"sqlite:///{tmp_path}/outputs/mlflow.db"
    script, go = tmp_path / "start.py", tmp_path / "go"
    script.write_text(STARTER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), uri, str(go), f"job{i}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["sleepy-day"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["job0", "job1", "job2"]
    # and a later command still finds a working store
    again = subprocess.run(
        [sys.executable, "-c", f"from sleepy.tracking import experiment_id; experiment_id('later', '{uri}')"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_corrupt_store_is_one_line_naming_the_file_and_what_to_do(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this was never a database\n" * 100)
    with pytest.raises(TrackingError) as e:
        experiment_id("sleepy-day", f"sqlite:///{db}")
    msg = str(e.value)
    assert str(db) in msg and "corrupt" in msg and "mv " in msg and "\n" not in msg


def test_a_locked_store_is_one_line_from_the_entrypoint(tmp_path):
    import sqlite3

    db = tmp_path / "outputs" / "mlflow.db"
    experiment_id("sleepy-sleep", f"sqlite:///{db}")  # a whole store ...
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # ... that another program holds
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sleepy.sleep", "curate.episodes=none.sqlite",
             f"paths.outputs={tmp_path / 'outputs'}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr  # (MLflow's own import warnings may come first)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sleepy-sleep: error: MLflow store")
    assert str(db) in last and "locked" in last


# -- tracking off ----------------------------------------------------------------------------------


def failed_day(folder: Path) -> Path:
    """A day's record as the agent leaves it: three failed koans, kept in the store with them."""
    from sleepy.episodes import EpisodeStore
    from sleepy.koans.generate import generate

    folder.mkdir(parents=True)
    koans = generate("lifetimes", 3, seed=5, validate=False)
    with EpisodeStore(folder / "episodes.sqlite") as store:
        store.add_koans(koans)
        for k in koans:
            eid = store.start_episode("day", k.id, family=k.family, pattern=k.pattern)
            store.finish_episode(eid, passed=False, final_error_signature="E0106 sig")
    return folder / "episodes.sqlite"


def test_sleep_runs_with_tracking_off(tmp_path, compose):
    """tracking=none used to crash sleepy-sleep with AttributeError ... 'startswith'."""
    from sleepy.sleep import run_sleep

    db = failed_day(tmp_path / "day")
    cfg = compose(
        "sleep", "tracking=none", f"curate.episodes={db}", "adapter.max_steps=2",
        "adapter.batch_size=4", "adapter.target_modules=[q_proj,v_proj]", "curate.augment_k=0",
    )  # fmt: skip
    result = run_sleep(cfg)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert result.version is None  # no registry without tracking
    assert not list(tmp_path.rglob("mlflow.db")) and not (tmp_path / "mlruns").exists()
    assert not Path("mlruns").exists()


def test_consolidate_runs_with_tracking_off(tmp_path, compose):
    from support import make_adapter

    from sleepy.consolidate.run import run_consolidate

    a, b = make_adapter(tmp_path / "a", seed=1), make_adapter(tmp_path / "b", seed=2)
    cfg = compose(
        "consolidate",
        "tracking=none",
        "consolidation=mean",
        f"tasks=[{a},{b}]",
        out="out",
    )
    r = run_consolidate(cfg)
    result, version = r.consolidated, r.version
    assert version is None and (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert not list(tmp_path.rglob("mlflow.db"))
