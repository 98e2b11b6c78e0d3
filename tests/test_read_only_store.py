"""Commands that only read the MLflow store, run in a folder that has none: each ends with status
2 and one line naming the missing file and what to do, and leaves no store (or anything else)
behind. Real processes in an empty tmp folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sleepy.tracking import missing_store

NAMED = "sqlite:///does/not/exist.db"

COMMANDS = {  # id: (argv after python, the store it should name, relative to the folder)
    "report --uri": (["-m", "sleepy.cli", "report", "--uri", NAMED], "does/not/exist.db"),
    "report": (["-m", "sleepy.cli", "report"], "outputs/mlflow.db"),
    "report --forgetting": (["-m", "sleepy.cli", "report", "--forgetting"], "outputs/mlflow.db"),
    "registry list": (["-m", "sleepy.cli", "registry", "list"], "outputs/mlflow.db"),
    "registry --uri show": (
        ["-m", "sleepy.cli", "registry", "--uri", NAMED, "show", "champion"],
        "does/not/exist.db",
    ),
    "registry rollback": (
        ["-m", "sleepy.cli", "registry", "rollback", "--reason", "r"],
        "outputs/mlflow.db",
    ),
    "export models:/": (
        ["-m", "sleepy.cli", "export", "models:/sleepy-fixer@champion", "--out", "exported"],
        "outputs/mlflow.db",
    ),
    "sleepy-plots": (["-m", "sleepy.plots"], "outputs/mlflow.db"),
    "sleepy-plots --uri": (["-m", "sleepy.plots", "--uri", NAMED], "does/not/exist.db"),
    "sweep summary": (["-m", "sleepy.sweep", "."], "outputs/mlflow.db"),
    "screenshots": (["-m", "sleepy.screenshots"], "outputs/mlflow.db"),
}


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_read_only_command_without_a_store_says_so_and_creates_nothing(name, tmp_path):
    argv, store = COMMANDS[name]
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert f": error: no MLflow store at {tmp_path / store}: " in lines[0]
    assert "make demo or sleepy-cycle first" in lines[0] and "--uri" in lines[0]
    assert "INFO" not in proc.stdout + proc.stderr and "alembic" not in proc.stderr.lower()
    assert _files(tmp_path) == []  # neither the named store nor outputs/mlflow.db, nor a folder


def test_a_store_that_is_there_or_a_server_is_not_missing(tmp_path):
    db = tmp_path / "mlflow.db"
    assert missing_store(f"sqlite:///{db}").startswith(f"no MLflow store at {db}: ")
    db.touch()
    assert missing_store(f"sqlite:///{db}") is None
    assert missing_store("http://127.0.0.1:5000") is None
    assert missing_store("https://mlflow.example.org") is None


def test_screenshots_of_a_store_written_by_another_mlflow_is_one_line(tmp_path):
    """A store whose schema this MLflow does not know (written by a newer one: a fresh clone may
    install a newer MLflow than an older checkout's) is refused in one line that says so, before
    any server or browser starts, as `python -m sleepy.screenshots` is run. The store is stamped
    with a schema revision no MLflow has."""
    import sqlite3

    import mlflow

    db = tmp_path / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").create_experiment("sleepy-cycle")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = '0123456789ab'")  # no MLflow's
    proc = subprocess.run(
        [sys.executable, "-m", "sleepy.screenshots", "--uri", f"sqlite:///{db}",
         "--out", str(tmp_path / "shots")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "\n" not in err and err.startswith(f"screenshots: error: sqlite:///{db}: "), err
    assert "database schema" in err and "Traceback" not in proc.stderr
