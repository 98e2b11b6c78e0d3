"""The `sleepy-sleep` config (sleepy/conf/sleep.yaml extends it): how failures are curated and
what trains on them. Types and ranges are checked when the config is composed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from sleepy.config import StageConfig, ranged


@dataclass
class AdapterConfig:
    """A LoRA adapter trained with trl's SFTTrainer (adapter=lora)."""

    _target_: str = "sleepy.sleep.trainers.LoRA"
    method: str = "lora"
    rank: int = ranged(16, ge=1)
    alpha: float = ranged(32.0, gt=0)
    dropout: float = ranged(0.0, ge=0, le=0.99)
    target_modules: list[str] = field(
        default_factory=lambda: (
            ["q_proj", "k_proj", "v_proj", "o_proj"] + ["gate_proj", "up_proj", "down_proj"]
        )
    )
    learning_rate: float = ranged(3.0e-3, gt=0)
    max_steps: int | None = ranged(300, ge=1)  # or null and set epochs
    epochs: float | None = ranged(None, gt=0)
    batch_size: int = ranged(8, ge=1)
    warmup_steps: int = ranged(10, ge=0)
    max_length: int = ranged(768, ge=16)  # longer rows are dropped (and counted), never cut
    logging_steps: int = ranged(5, ge=1)
    # train in bf16 on a GPU (never on a CPU); under `accelerate launch`, what its
    # mixed_precision settles
    bf16: bool = True
    gradient_checkpointing: bool = False  # on a GPU, less memory for more time (never on a CPU)
    # more epochs than this over the rows, with the loss near zero, is a warning: memorising them
    warn_epochs: float = ranged(8.0, gt=0)
    # stop once the loss has not improved by min_delta for `patience` logging intervals in a
    # row: the training loss as logged every logging_steps, or the held-out rows' eval loss
    early_stopping: bool = False
    patience: int = ranged(3, ge=1)
    min_delta: float = ranged(0.01, ge=0)
    # hold out this fraction of the rows (at least one) and log their loss every logging_steps;
    # early stopping then watches it instead of the training loss (0: no split)
    eval_fraction: float = ranged(0.0, ge=0, le=0.5)


@dataclass
class CoefficientsConfig(AdapterConfig):
    """Share Phase 2 / UWSH: a new task trained as coefficients in the lineage's basis
    (adapter=coefficients); the first task, with no basis yet, trains the LoRA above."""

    _target_: str = "sleepy.sleep.trainers.Coefficients"
    method: str = "coefficients"
    bundle: str | None = None  # a Share bundle folder (sleepy-cycle sets the lineage's)
    # coefficients start small and random: a higher rate than LoRA's
    coeff_learning_rate: float = ranged(1.5e-2, gt=0)


@dataclass
class CurateConfig:
    """What sleep learns from: the day's failures, deduplicated and clustered by signature."""

    episodes: str | None = None  # path to an episodes.sqlite ...
    day_run_id: str | None = None  # ... or the MLflow run id of a day (its episodes artifact)
    run_id: str | None = None  # only episodes of this day run (null: all in the file)
    # where the episodes' koans are found (plus the koans saved beside the db)
    koan_paths: list[str] = field(default_factory=lambda: ["${paths.koans}"])
    replay_ratio: float = ranged(0.0, ge=0)  # successes added as replay, per failure
    # per failed pattern: template variants, and mutants of other programs (0: off)
    augment_k: int = ranged(16, ge=0)
    cluster_distance: float = ranged(0.6, gt=0, le=2)  # cosine distance merging failures
    # never train on these (checked, with an error naming the koan)
    evalset_paths: list[str] = field(default_factory=lambda: ["${paths.evalsets}/frozen.json"])
    seed: int = ranged(0, ge=0)


@dataclass
class SleepConfig(StageConfig):
    needs_one_of: ClassVar = (
        ("curate.episodes", "curate.day_run_id"),
        "say what to learn from: curate.episodes=PATH or curate.day_run_id=RUN_ID (a day's "
        "MLflow run), e.g. curate.episodes=outputs/day/<run_id>/episodes.sqlite",
    )
    task: str = "sleep"
    register: bool = True  # register the adapter as a new version in the MLflow registry
    adapter: Any = None
    curate: CurateConfig = field(default_factory=CurateConfig)
    consolidation: Any = None  # adapter=coefficients trains in its basis with its p and phi
    accelerate: Any = None  # none | single_gpu | multi_gpu | cpu: `launch` and its config
