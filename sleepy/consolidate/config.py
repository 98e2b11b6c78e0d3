"""Share's settings, as the `consolidation=share` config group holds them (registered with Hydra's
ConfigStore, so a bad type is refused when the config is composed): the one place their defaults
live. consolidation=uwsh overrides threshold, k_max and phi."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sleepy.adapters.router import ROUTERS
from sleepy.config import StageConfig, ranged, required


@dataclass
class ShareConfig:
    _target_: str = "sleepy.consolidate.methods.Share"
    method: str = "share"
    # Defaults chosen by the forgetting sweep in the README (three families learned in turn, each
    # measured on its learning set after every sleep): with the router, 1.0 / 64 kept every family
    # at its post-sleep rate (0.62 / 0.21 / 0.50), 0.95 / 48 nearly (0.58 / 0.21 / 0.50), the
    # paper's 0.6 lost them all; averaged (route=off) forgets at every threshold. 1.0 keeps each
    # task exactly.
    threshold: float = ranged(1.0, gt=0, le=1)  # explained variance that picks k ...
    k_min: int = ranged(2, ge=1)  # ... clamped to [k_min, k_max]
    k_max: int = ranged(64, ge=1)
    previous: str | None = (
        None  # the previous bundle (set by sleepy-cycle): earlier tasks come from it
    )
    pool: list[str] = field(
        default_factory=list
    )  # adapters that shape the basis but are no task (UWSH)
    p: int = ranged(
        2, ge=1
    )  # pseudo-rank of a new task's coefficients (Phase 2, adapter=coefficients)
    phi: int = ranged(1, ge=0)  # temporary basis vectors a new task may add (Phase 2; UWSH: 0)
    # routing: an unseen error signature goes to the task of the nearest learned one within this
    # cosine distance, else to the base model. Curation clusters failures at 0.6; routing at 0.6
    # sent other families' errors to the wrong adapter and broke known koans. Each bundle records
    # its own in router.json.
    route_distance: float = ranged(0.3, ge=0, le=2)
    # learned: a classifier over the signature and rustc's text picks a task or the base model
    # (sleepy.adapters.router); signature: the signature table above alone (to compare with)
    router: str = ranged("learned", choices=ROUTERS)
    # the learned router's least probability for a task; below it the base model answers
    route_confidence: float = ranged(0.5, ge=0, le=1)
    # koans of families no task learned, the base model's examples (share.yaml: the corpus);
    # koans the evalsets hold are left out, so no frozen koan trains the router
    route_koans: list[str] = field(default_factory=list)
    route_evalsets: list[str] = field(default_factory=list)


@dataclass
class MergeConfig:
    """PEFT's add_weighted_adapter merges (consolidation=mean|ties|dare_ties|svd)."""

    _target_: str = "sleepy.consolidate.methods.PeftMerge"
    method: str = "mean"
    combination_type: str = "cat"
    density: float | None = ranged(None, gt=0, le=1)  # ties, dare_ties: weights kept
    svd_rank: int | None = ranged(None, ge=1)  # the *_svd types: the merged rank
    weighting: str = ranged("mean", choices=("mean", "sum"))  # each task 1/n, or 1


@dataclass
class LatestConfig:
    """consolidation=none: the newest task's adapter alone."""

    _target_: str = "sleepy.consolidate.methods.Latest"


@dataclass
class ConsolidateConfig(StageConfig):
    task: str = "consolidate"
    # adapter folders or models:/ URIs, oldest first (a list, or name: source)
    tasks: Any = required("'tasks=[outputs/sleep/<run_id>/adapter,models:/sleepy-fixer/3]'")
    register: bool = True
    consolidation: Any = None
