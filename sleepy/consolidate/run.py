"""`sleepy-consolidate`: merge the task adapters learned so far with the chosen method; log, register.

sleepy-consolidate consolidation=share 'tasks=[outputs/sleep/a/adapter,models:/sleepy-fixer/3]'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sleepy.adapters import AdapterError
from sleepy.config import CONF_PATH, exit_on_bad_overrides, one_line_errors
from sleepy.console import LOG_NAME, Display, report, stage, verbose_flag
from sleepy.consolidate.methods import Consolidated, TaskAdapter
from sleepy.registry import download_adapter
from sleepy.stage import StageRun
from sleepy.stop import stops
from sleepy.tracking import TrackingError, tracking_uri


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


@dataclass
class ConsolidateResult:
    consolidated: Consolidated
    version: str | None  # its registered version (None: not registered)
    tasks: dict[str, str]  # task name -> the adapter it came from, oldest first

    def record(self) -> dict:
        """What a cycle keeps of this consolidation in its state.json."""
        bundle = self.consolidated.bundle_dir
        return {
            "adapter": str(self.consolidated.adapter_dir),
            "version": self.version,
            "tasks": self.tasks,
            "bundle": str(bundle) if bundle else None,
        }


def run_consolidate(cfg: DictConfig) -> ConsolidateResult:
    """Merge cfg.tasks (oldest first) with the consolidation method its _target_ names."""
    import mlflow
    from hydra.utils import instantiate

    if not cfg.tasks:
        raise ValueError("tasks is empty: give the adapters to consolidate, oldest first")
    method = instantiate(cfg.consolidation)
    tags = {"method": method.method}
    with StageRun(cfg, "consolidate", f"consolidate-{method.method}", tags) as run:
        out = run.out
        tasks = resolve_tasks(cfg.tasks, out, tracking_uri(cfg.tracking))
        what = f"consolidate {len(tasks)} task adapter{'s' if len(tasks) != 1 else ''} ({method.method})"
        with stage("consolidate", what):
            result = method(tasks, str(cfg.model.path), out)
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
        for t, vals in result.per_task.items():
            metrics.update({f"{t}.{k}": v for k, v in vals.items() if isinstance(v, int | float)})
        for layer, vals in result.per_layer.items():
            metrics.update({f"layer.{layer}.{k}": v for k, v in vals.items()})
        if run.mlflow is not None:
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
        names = ",".join(t.name for t in tasks)
        version = run.register(
            result.adapter_dir, "the merged adapter", {"method": method.method, "tasks": names}
        )
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
    sources = cfg.tasks
    named = (
        {str(k): str(v) for k, v in sources.items()}
        if hasattr(sources, "items")
        else {t.name: str(src) for t, src in zip(tasks, sources, strict=True)}
    )
    return ConsolidateResult(result, version, named)


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="consolidate")
@one_line_errors("sleepy-consolidate", TrackingError, AdapterError)
def _consolidate(cfg: DictConfig) -> None:
    log = Path(str(cfg.paths.output_dir)) / LOG_NAME
    with Display("sleepy-consolidate", log, bool(cfg.verbose)):
        r = run_consolidate(cfg)
    result = r.consolidated
    report(
        log,
        f"{result.method}: adapter {result.adapter_dir}  version {r.version}  "
        f"({result.metrics.get('seconds')} s)",
    )


def main() -> None:
    with stops("sleepy-consolidate"):
        verbose_flag()
        exit_on_bad_overrides("consolidate", "sleepy-consolidate")
        _consolidate()


if __name__ == "__main__":
    main()
