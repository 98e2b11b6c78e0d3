"""`sleepy-sleep`: curate a day's failures and train a LoRA adapter on them, tracked and registered.

sleepy-sleep curate.episodes=outputs/day/.../episodes.sqlite
sleepy-sleep curate.day_run_id=<mlflow run id> adapter.rank=16
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from sleepy.config import CONF_PATH, ConfigError, exit_on_bad_overrides, one_line_errors
from sleepy.console import LOG_NAME, Display, report, stage, verbose_flag
from sleepy.episodes import EpisodeStore
from sleepy.koan import Koan, load_koans, save_evalset
from sleepy.koans.route import route_example
from sleepy.sandbox import Sandbox
from sleepy.sleep.curate import CurationError, LeakageError, curate
from sleepy.sleep.launch import LaunchError, is_main_process
from sleepy.stage import StageRun
from sleepy.stop import stops
from sleepy.tracking import TrackingError, missing_store, tracking_uri

TRAINING_KOANS = "training_koans.json"  # beside the adapter's run folder: every koan trained on


@dataclass
class SleepResult:
    adapter_dir: Path
    version: str | None
    run_id: str
    stats: dict
    metrics: dict
    training_koans: Path | None = None

    def record(self) -> dict:
        """What a cycle keeps of this sleep in its state.json."""
        return {
            "adapter": str(self.adapter_dir),
            "rows": self.stats["rows"],
            "run_id": self.run_id,
            "training_koans": str(self.training_koans),
        }


class SleepError(ValueError):
    """A sleep that cannot start or has nothing to learn; one line saying what to do."""


def check_day_run(cfg: DictConfig) -> None:
    """curate.day_run_id names a day's MLflow run: the store it is read from must be there and
    hold that run. A SleepError says what is wrong, before anything (a store) is created."""
    run_id = cfg.curate.day_run_id
    if cfg.curate.episodes or not run_id:
        return
    uri = tracking_uri(cfg.tracking)
    if uri is None:
        raise SleepError(
            f"curate.day_run_id={run_id} is read from the tracking store, and tracking is off: "
            "give the store (tracking=mlflow tracking.uri=...) or curate.episodes=PATH"
        )
    problem = missing_store(uri)
    if problem:
        raise SleepError(f"curate.day_run_id={run_id}: {problem}")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=uri).get_run(str(run_id))
    except MlflowException:
        raise SleepError(
            f"curate.day_run_id={run_id}: no such run in {uri} (`sleepy report` lists the runs; "
            "or give curate.episodes=PATH)"
        ) from None


def episodes_db(curate_cfg, work: Path) -> Path:
    """The episode database to learn from: a path, or the JSONL artifact of a day's MLflow run."""
    if curate_cfg.episodes:
        path = Path(curate_cfg.episodes)
        if not path.exists():
            raise FileNotFoundError(f"curate.episodes={path}: no such episode database")
        return path
    if not curate_cfg.day_run_id:
        raise SleepError("say what to learn from: curate.episodes=PATH or curate.day_run_id=RUN_ID")
    import mlflow

    client = mlflow.MlflowClient()
    names = [
        a.path for a in client.list_artifacts(curate_cfg.day_run_id) if a.path.endswith(".jsonl")
    ]
    if not names:
        raise SleepError(f"day run {curate_cfg.day_run_id} has no episodes .jsonl artifact")
    db = work / "episodes.sqlite"
    with EpisodeStore(db) as store:
        for name in names:
            local = mlflow.artifacts.download_artifacts(
                run_id=curate_cfg.day_run_id, artifact_path=name, dst_path=str(work)
            )
            store.import_jsonl(local)
    return db


def koans_for(store: EpisodeStore, koan_paths: list[str]) -> dict[str, Koan]:
    """Koans by id: the configured folders, then the koans the days recorded in the store."""
    koans: dict[str, Koan] = {}
    for p in koan_paths:
        if Path(p).exists():
            koans.update({k.id: k for k in load_koans(p)})
    koans.update(store.koans())
    return koans


def route_examples(curated) -> list[dict]:
    """What the Share router learns this task from: the koans it learned to fix (failures and
    their augmented variants); replayed successes, often of other families, are left out."""
    roles = curated.dataset["role"]
    return [
        route_example(k) for k, role in zip(curated.koans, roles, strict=True) if role != "replay"
    ]


def run_sleep(cfg: DictConfig) -> SleepResult:
    """Curate the day's failures into an SFT set and train the adapter the config's trainer
    makes (adapter._target_); register it when cfg.register."""
    import mlflow

    trainer = get_class(cfg.adapter._target_)
    if trainer.in_basis and not get_class(cfg.consolidation._target_).new_tasks_in_basis:
        raise ConfigError(
            "adapter=coefficients trains in a Share basis with the consolidation's p and phi: "
            "use consolidation=share or consolidation=uwsh"
        )
    # Under `accelerate launch` every process curates the same set and trains its share of the
    # batches; only the main one writes files, logs to MLflow and registers the adapter.
    main = is_main_process()
    check_day_run(cfg)  # before the sleep's own run exists in the store
    with StageRun(cfg, "sleep", tracked=main) as run:
        out = run.out
        work = out if main else out / f"rank{os.environ['RANK']}"
        if not main and tracking_uri(cfg.tracking):
            # curate.day_run_id still downloads the day's episodes; reading needs the store the
            # day wrote, and creating one is the main process's job
            mlflow.set_tracking_uri(tracking_uri(cfg.tracking))
        db = episodes_db(cfg.curate, work)
        with EpisodeStore(db, create=False) as store:
            episodes = store.episodes(run_id=cfg.curate.run_id)
            koans = koans_for(store, list(cfg.curate.koan_paths))
        failed = sum(not e.passed for e in episodes)
        with stage("sleep", f"curate {failed} failed episodes of {len(episodes)}") as bar:
            curated = curate(
                episodes,
                koans,
                cfg.model.prompt_template,
                cfg.model.edit_format,
                replay_ratio=cfg.curate.replay_ratio,
                augment_k=cfg.curate.augment_k,
                seed=cfg.curate.seed,
                evalset_paths=list(cfg.curate.evalset_paths),
                cluster_distance=cfg.curate.cluster_distance,
                sandbox=Sandbox.from_config(OmegaConf.to_object(cfg.sandbox)),
            )
            bar.update(note=f"{curated.stats['rows']} training rows")
        if main:
            curated.dataset.save_to_disk(str(out / "dataset"))
            # What this sleep trained on, koan by koan: the eval keeps its learning sets disjoint.
            save_evalset(curated.koans, out / TRAINING_KOANS, name="training")
            (out / "clusters.json").write_text(
                json.dumps({"clusters": curated.clusters, "stats": curated.stats}, indent=2)
            )
        if run.mlflow is not None:
            _log_curation(curated)
        extra = {
            "cycle": cfg.cycle,
            "run_id": run.run_id,
            "route_examples": route_examples(curated),
        }
        result, method = trainer.train(cfg, curated.dataset, out, extra)
        if not main:  # the main process saves and registers what all of them trained
            return SleepResult(
                result.adapter_dir, None, str(cfg.run_id), curated.stats, result.metrics
            )
        if run.mlflow is not None:
            mlflow.set_tag("adapter_method", method)
            # train_steps, train_epochs, train_final_loss, ... and train_stopped_early_at (only
            # when early stopping ended training, with its reason as the train_stop_reason tag)
            mlflow.log_metrics(
                {f"train_{k}": v for k, v in result.metrics.items() if isinstance(v, int | float)}
            )
            if result.metrics.get("stop_reason"):
                mlflow.set_tag("train_stop_reason", result.metrics["stop_reason"])
            mlflow.log_artifacts(str(result.adapter_dir), "adapter_files")
        families = ",".join(result.info.families)
        version = run.register(
            result.adapter_dir, "the adapter", {"method": method, "families": families}
        )
        return SleepResult(
            result.adapter_dir,
            version,
            run.run_id or str(cfg.run_id),
            curated.stats,
            result.metrics,
            out / TRAINING_KOANS,
        )


def _log_curation(curated) -> None:
    import mlflow

    mlflow.log_metrics({f"curate_{k}": v for k, v in curated.stats.items()})
    mlflow.log_dict({"clusters": curated.clusters, "stats": curated.stats}, "curate/clusters.json")
    preview = curated.dataset.select(range(min(20, len(curated.dataset))))
    mlflow.log_table(
        {
            "koan_id": preview["koan_id"],
            "family": preview["family"],
            "signature": preview["signature"],
            "cluster": preview["cluster"],
            "role": preview["role"],
            "completion": [c[0]["content"] for c in preview["completion"]],
        },
        "curate/preview.json",
    )


@hydra.main(version_base=None, config_path=CONF_PATH, config_name="sleep")
@one_line_errors(
    "sleepy-sleep",
    LeakageError,
    CurationError,
    SleepError,
    TrackingError,
    FileNotFoundError,
    LaunchError,
)
def _sleep(cfg: DictConfig) -> None:
    if cfg.accelerate.launch:  # accelerate=single_gpu|multi_gpu|cpu: run again under it
        from hydra.core.hydra_config import HydraConfig

        from sleepy.sleep.launch import relaunch

        sys.exit(relaunch(cfg, "sleepy.sleep", list(HydraConfig.get().overrides.task)))
    log = Path(str(cfg.paths.output_dir)) / LOG_NAME
    with Display("sleepy-sleep", log, bool(cfg.verbose)):
        r = run_sleep(cfg)
    if not is_main_process():
        return
    report(
        log,
        f"adapter: {r.adapter_dir}  version: {r.version}  rows: {r.stats['rows']}  "
        f"final loss: {r.metrics['final_loss']:.3f}",
    )


def main() -> None:
    with stops("sleepy-sleep"):
        verbose_flag()
        exit_on_bad_overrides("sleep", "sleepy-sleep")
        _sleep()


if __name__ == "__main__":
    main()
