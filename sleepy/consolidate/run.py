"""`sleepy-consolidate`: merge the task adapters learned so far with the chosen method; log, register.

sleepy-consolidate consolidation=share 'tasks=[outputs/sleep/a/adapter,models:/sleepy-fixer/3]'
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sleepy.adapters import AdapterError
from sleepy.config import CONF_PATH, check_config, exit_on_bad_overrides, one_line_errors
from sleepy.console import LOG_NAME, Display, current, stage, verbose_flag
from sleepy.consolidate.methods import Consolidated, TaskAdapter
from sleepy.registry import download_adapter, register_adapter
from sleepy.tracking import TrackingError, log_config, mlflow_run, tracking_uri


def resolve_tasks(sources, work: Path, store: str | None = None) -> list[TaskAdapter]:
    """Adapter folders or registry URIs (oldest first; URIs from the registry of `store`) ->
    named task adapters."""
    if isinstance(sources, dict) or hasattr(sources, "items"):
        items = list(sources.items())
    else:
        items = [(f"task{i}", s) for i, s in enumerate(sources)]
    tasks = []
    for name, src in items:
        src = str(src)
        path = (
            download_adapter(src, work / "downloads" / name, store)
            if src.startswith("models:/")
            else Path(src)
        )
        tasks.append(TaskAdapter.from_path(str(name), path))
    return tasks


def run_consolidate(cfg: DictConfig) -> tuple[Consolidated, str | None]:
    import mlflow
    from hydra.utils import instantiate

    check_config(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.tasks:
        raise ValueError("tasks is empty: give the adapters to consolidate, oldest first")
    method = instantiate(cfg.consolidation)
    with mlflow_run(
        tracking_uri(cfg.tracking),
        cfg.tracking.experiment,
        run_name=cfg.get("run_name") or f"consolidate-{method.method}",
        nested=bool(cfg.get("nested", False)),
        tags={"stage": "consolidate", "method": method.method, "cycle": str(cfg.cycle)},
    ) as run:
        tracked = run is not None
        if tracked:
            log_config(cfg, out)
        tasks = resolve_tasks(cfg.tasks, out, tracking_uri(cfg.tracking))
        what = f"consolidate {len(tasks)} task adapter{'s' if len(tasks) != 1 else ''} ({method.method})"
        with stage("consolidate", what):
            result = method(tasks, str(cfg.model.path), out)
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
        for t, vals in result.per_task.items():
            metrics.update({f"{t}.{k}": v for k, v in vals.items() if isinstance(v, int | float)})
        for layer, vals in result.per_layer.items():
            metrics.update({f"layer.{layer}.{k}": v for k, v in vals.items()})
        version = None
        if tracked:
            mlflow.log_metrics(metrics)
            mlflow.log_dict(
                {
                    "per_task": result.per_task,
                    "per_layer": result.per_layer,
                    "metrics": result.metrics,
                },
                "consolidation.json",
            )
            # Share's bundle (basis, coefficients, router, task adapters) lives inside the adapter
            mlflow.log_artifacts(str(result.adapter_dir), "consolidated_adapter")
        if cfg.register and tracked:  # the registry lives in the tracking store
            with stage("register", f"register the merged adapter in {cfg.registry.name}") as bar:
                version = register_adapter(
                    result.adapter_dir,
                    cfg.model.path,
                    cfg.registry.name,
                    tags={
                        "run_id": run.info.run_id,
                        "cycle": cfg.cycle,
                        "method": method.method,
                        "tasks": ",".join(t.name for t in tasks),
                    },
                )
                bar.update(note=f"v{version}")
            mlflow.set_tag("registered_version", version)
        if tracked and not cfg.get("nested", False) and (d := current()) is not None:
            d.log_to_mlflow()
        (out / "consolidation.json").write_text(
            json.dumps(
                {
                    "method": method.method,
                    "adapter": str(result.adapter_dir),
                    "version": version,
                    "bundle": str(result.bundle_dir) if result.bundle_dir else None,
                    **metrics,
                },
                indent=2,
            )
        )
    return result, version


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="consolidate")
@one_line_errors("sleepy-consolidate", TrackingError, AdapterError)
def _consolidate(cfg: DictConfig) -> None:
    log = Path(str(cfg.paths.output_dir)) / LOG_NAME
    with Display("sleepy-consolidate", log, bool(cfg.get("verbose", False))):
        result, version = run_consolidate(cfg)
    print(
        f"{result.method}: adapter {result.adapter_dir}  version {version}  "
        f"({result.metrics.get('seconds')} s)"
    )


def main() -> None:
    verbose_flag()
    exit_on_bad_overrides("consolidate", "sleepy-consolidate")
    _consolidate()


if __name__ == "__main__":
    main()
