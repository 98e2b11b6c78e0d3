"""MLflow plumbing shared by every entrypoint: a sqlite store, artifacts beside it, the config logged."""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrackingConfig:
    """The `tracking` group: MLflow on a local sqlite store (tracking=mlflow), artifacts beside
    it; tracking=none turns it off (episodes still go to SQLite)."""

    enabled: bool = True
    uri: str | None = "sqlite:///${paths.outputs}/mlflow.db"
    experiment: str | None = "sleepy-${task}"  # one per stage (a cycle nests its stages in its own)


class TrackingError(RuntimeError):
    """The MLflow store cannot be used; one line naming the file and what to do."""


_READY: set[str] = set()


def _store_problem(path: Path, err: BaseException) -> str:
    text = " ".join(str(err).split())
    text = re.sub(r"\[SQL: .*?\]|\(Background on this error at: [^)]*\)", "", text).strip()
    low = text.lower()
    if "locked" in low or "busy" in low:
        return (
            f"MLflow store {path} is locked by another process (database is locked): wait for "
            "it to finish, or stop it, then rerun"
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (
            f"MLflow store {path} is corrupt ({'file is not a database' if 'not a database' in low else 'database disk image is malformed'}): "
            f"move it aside (mv {path} {path}.broken) and rerun to start a fresh store"
        )
    if any(
        w in low
        for w in ("out-of-date", "alembic", "migrat", "revision", "duplicate column", "no such")
    ):
        return (
            f"MLflow store {path} has an unfinished or unknown schema: run "
            f"'mlflow db upgrade sqlite:///{path}', or move it aside (mv {path} {path}.broken)"
        )
    return f"MLflow store {path} cannot be opened ({text[:160]}): move it aside and rerun"


def ensure_store(uri: str) -> None:
    """Create and migrate a sqlite store once, under a file lock, before this process uses it.

    MLflow creates and migrates a new store on first use, and two processes doing that at once
    (a parallel sweep on a fresh checkout) race each other, sometimes leaving a broken store.
    Whoever takes the lock first builds it; the others then find it whole.
    """
    if uri in _READY or not uri.startswith("sqlite:///"):
        return
    from filelock import FileLock, Timeout

    path = Path(uri[len("sqlite:///") :]).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(f"{path}.lock", timeout=600):
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            SqlAlchemyStore(f"sqlite:///{path}", (path.parent / "artifacts").as_uri())
    except Timeout:
        raise TrackingError(
            f"MLflow store {path}: another process has held {path}.lock for 10 minutes; "
            "stop it, or remove the lock file if no sleepy process is running"
        ) from None
    except Exception as e:
        raise TrackingError(_store_problem(path, e)) from None
    _READY.add(uri)


def sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite store (`sqlite:///outputs/mlflow.db` -> its absolute path), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser().resolve()
    return None


def missing_store(uri: str) -> str | None:
    """Why a command that only reads cannot use `uri`: a sqlite store whose file is not there,
    in one line with what to do; None when it is there, or the store is a server."""
    path = sqlite_path(uri)
    if path is None or path.is_file():
        return None
    return (
        f"no MLflow store at {path}: run make demo or sleepy-cycle first (in the folder whose "
        "outputs/ holds it), or pass --uri sqlite:///PATH/TO/mlflow.db"
    )


def require_store(uri: str, prog: str) -> None:
    """For a command that only reads the store (`sleepy report`, `sleepy registry`,
    `sleepy-plots`, ...): end with status 2 and one line on stderr when a sqlite store's file is
    not there, before MLflow is imported, so that no empty store is created (and no migration
    lines are logged) in a folder that never had one."""
    problem = missing_store(uri)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)


def use_store(uri: str) -> None:
    """Point MLflow at `uri`, with the store made ready first."""
    import mlflow

    ensure_store(uri)
    mlflow.set_tracking_uri(uri)


def store_dir(uri: str) -> Path | None:
    """The folder of a sqlite store (`sqlite:///outputs/mlflow.db` -> outputs/), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser().resolve().parent
    if uri.startswith("file:"):
        return Path(uri[len("file:") :]).expanduser().resolve()
    return None


def experiment_id(name: str, uri: str) -> str:
    """Get or create the experiment, with its artifacts kept beside the store (not ./mlruns)."""
    import mlflow

    use_store(uri)
    try:
        exp = mlflow.get_experiment_by_name(name)
    except Exception as e:
        raise TrackingError(_store_problem(Path(uri.removeprefix("sqlite:///")), e)) from None
    if exp is not None:
        return exp.experiment_id
    folder = store_dir(uri)
    location = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        location = (folder / "artifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by a sweep job starting at the same time
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextmanager
def mlflow_run(
    uri: str | None,
    experiment: str | None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict | None = None,
    run_id: str | None = None,
):
    """Start (or resume, with run_id) a run in `experiment` on the store at `uri`.

    With tracking off (`uri` None) nothing is started and the block gets None. A block ended by
    Ctrl-C or SIGTERM (sleepy.stop) ends the run KILLED, not FAILED: it was stopped, and a
    resume carries it on.
    """
    if not uri:
        yield None
        return
    import mlflow

    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    exp = experiment_id(experiment, uri)
    with mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else exp,
        run_name=run_name,
        nested=nested,
        tags=tags,
    ) as run:
        try:
            yield run
        except KeyboardInterrupt:
            active = mlflow.active_run()
            if active is not None and active.info.run_id == run.info.run_id:
                mlflow.end_run("KILLED")  # start_run's own exit then leaves it as it is
            raise


def loggable(metrics: dict) -> dict[str, float]:
    """The metrics MLflow can be given, as floats: one that is None (nothing to measure, e.g.
    median_steps_to_green when nothing passed) is left out, since MLflow takes numbers only."""
    return {k: float(v) for k, v in metrics.items() if v is not None}


def log_config(cfg, output_dir: str | Path | None = None) -> None:
    """The composed config as params (flattened) and as a dict artifact, plus Hydra's .hydra/ folder."""
    import mlflow
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg, resolve=True)
    mlflow.log_dict(data, "config.yaml")
    flat: dict[str, str] = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = str(node)[:500]

    walk("", data)
    items = list(flat.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))
    if output_dir is not None and (Path(output_dir) / ".hydra").is_dir():
        mlflow.log_artifacts(str(Path(output_dir) / ".hydra"), ".hydra")


def tracking_uri(tracking) -> str | None:
    """The store of a `tracking` config group, or None when tracking is off."""
    return str(tracking.uri) if tracking.get("enabled", False) and tracking.get("uri") else None


def ui_command(uri: str) -> str:
    """The one command that opens the MLflow UI on this store (on 127.0.0.1:5000)."""
    import shutil
    import sys

    exe = Path(sys.executable).parent / "mlflow"
    if not exe.exists():
        exe = Path(shutil.which("mlflow") or "mlflow")
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"{exe} ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
