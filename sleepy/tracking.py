"""MLflow plumbing shared by every entrypoint: a sqlite store, artifacts beside it, the config logged."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

DEFAULT_URI = "sqlite:///outputs/mlflow.db"


def store_dir(uri: str) -> Path | None:
    """The folder of a sqlite store (`sqlite:///outputs/mlflow.db` -> outputs/), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser().resolve().parent
    if uri.startswith("file:"):
        return Path(uri[len("file:") :]).expanduser().resolve()
    return None


def experiment_id(name: str, uri: str = DEFAULT_URI) -> str:
    """Get or create the experiment, with its artifacts kept beside the store (not ./mlruns)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    folder = store_dir(uri)
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
    return mlflow.create_experiment(name)


@contextmanager
def mlflow_run(
    uri: str,
    experiment: str,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict | None = None,
    run_id: str | None = None,
):
    """Start (or resume, with run_id) a run in `experiment` on the store at `uri`."""
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
        yield run


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
