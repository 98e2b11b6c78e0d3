"""What every stage does around its own work, written once: check the config, make the output
folder, open the stage's MLflow run (nested in a cycle's, or resumed), log the config, register
what it made, and at the end upload the run's console log.

    with StageRun(cfg, "sleep", tags={"method": "lora"}) as run:
        ...                                  # the stage's work, writing under run.out
        version = run.register(adapter_dir, "the adapter", {"method": "lora"})

With tracking off (or outside the main process) `run.mlflow` is None and nothing is logged.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sleepy.config import check_config
from sleepy.console import current, stage
from sleepy.registry import register_adapter
from sleepy.tracking import log_config, mlflow_run, tracking_uri


class StageRun:
    """One stage's run: its config checked, its output folder, its MLflow run and registration."""

    def __init__(
        self,
        cfg: DictConfig,
        name: str,
        default_run_name: str | None = None,
        tags: dict | None = None,
        resume_id: str | None = None,
        tracked: bool = True,
    ):
        """`name`: the stage (its MLflow tag); `default_run_name`: the run's name unless
        cfg.run_name gives one; `resume_id`: an MLflow run to continue (its config was logged
        when it started); `tracked=False`: no MLflow run (a process that is not the main one)."""
        check_config(cfg)  # before any work, and before a folder or a run exists
        self.cfg, self.name = cfg, name
        self.out = Path(str(cfg.paths.output_dir))
        self.uri = tracking_uri(cfg.tracking) if tracked else None
        self.tags = {"stage": name, "cycle": str(cfg.cycle), **(tags or {})}
        self.run_name = cfg.run_name or default_run_name or name
        self.resume_id = resume_id
        self.mlflow = None
        self._cm = None

    @property
    def run_id(self) -> str | None:
        """The MLflow run's id, None without tracking."""
        return self.mlflow.info.run_id if self.mlflow is not None else None

    def __enter__(self) -> StageRun:
        self.out.mkdir(parents=True, exist_ok=True)
        self._cm = mlflow_run(
            self.uri,
            None if self.uri is None else str(self.cfg.tracking.experiment),
            run_name=self.run_name,
            nested=bool(self.cfg.nested),
            tags=self.tags,
            run_id=self.resume_id,
        )
        self.mlflow = self._cm.__enter__()
        if self.mlflow is not None and self.resume_id is None:
            log_config(self.cfg, self.out)
        return self

    def register(self, adapter_dir: str | Path, what: str, tags: dict) -> str | None:
        """Register `adapter_dir` as a new version of the run's registered model when the config
        says `register` and the run is tracked (the registry lives in the tracking store);
        returns the version, or None."""
        if self.mlflow is None or not self.cfg.register:
            return None
        import mlflow

        name = str(self.cfg.registry.name)
        with stage("register", f"register {what} as a version of {name}") as bar:
            version = register_adapter(
                adapter_dir,
                self.cfg.model.path,
                name,
                tags={"run_id": self.run_id, "cycle": self.cfg.cycle, **tags},
            )
            bar.update(note=f"v{version}")
        mlflow.set_tag("registered_version", version)
        return version

    def __exit__(self, *exc) -> bool:
        # a stage run on its own uploads its console log; inside a cycle the cycle's run does
        if exc[0] is None and self.mlflow is not None and not self.cfg.nested:
            if (display := current()) is not None:
                display.log_to_mlflow()
        return bool(self._cm.__exit__(*exc))
