"""The `sleepy-day` config (sleepy/conf/day.yaml extends it): which koans the agent meets, and
every key a day reads. Types and ranges are checked when the config is composed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sleepy.config import StageConfig, ranged


@dataclass
class KoansConfig:
    """Which koans a day (or an eval) meets."""

    source: str | None = "${paths.koans}"  # a folder of koan JSON files (or one file)
    evalset: str | None = None  # a name in evalsets/ (or a path) instead of source
    families: list[str] = field(default_factory=list)  # [] = every family
    ids: list[str] = field(default_factory=list)  # [] = every koan; else exactly these
    count: int | None = ranged(None, ge=1)  # null = all selected; else a seeded sample
    seed: int = ranged(0, ge=0)
    generate: int = ranged(0, ge=0)  # fresh generated koans per family (validated with rustc)
    patterns: list[str] = field(default_factory=list)  # [] = every template pattern
    # mistakes injected into train-side programs (sleepy koans mutate), per family
    mutants: int = ranged(0, ge=0)
    programs: str | None = "${paths.koans}"  # the mutants' programs: a harvest folder or the corpus


@dataclass
class DayConfig(StageConfig):
    task: str = "day"
    resume: bool = False  # true: continue run_id, skipping the koans it already finished
    koans: KoansConfig = field(default_factory=KoansConfig)
    agent: Any = None  # the policy (sleepy.day.loop.AgentConfig)
    label: str | None = None  # the progress line's words ("day on lifetimes"); null: the families
    stage_name: str = "day"  # the stage the progress line names (an eval's pass says "eval")
