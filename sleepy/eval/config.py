"""The `sleepy-eval` config (sleepy/conf/eval.yaml extends it): the day's keys, plus what is
judged against what, and the learning set sleepy-cycle builds. Types and ranges are checked when
the config is composed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sleepy.config import ranged, required
from sleepy.day.config import DayConfig, KoansConfig


@dataclass
class EvalKoansConfig(KoansConfig):
    source: str | None = None
    evalset: str | None = "frozen"  # the frozen suite: regressions (evalsets/frozen.json, a path)
    # an evalset file of what the lineage failed on (sleepy-cycle builds one per cycle); null:
    # the gain is measured on the frozen suite
    learning_set: str | None = None


@dataclass
class LineageConfig:
    name: str = "default"  # one sequence of cycles (each sweep job is its own lineage)
    # episode databases (globs) of this lineage: failures of earlier cycles (cycle < this
    # cycle) define a repeated error
    episodes: list[str] = field(default_factory=list)


@dataclass
class LearningSetConfig:
    """What each cycle's eval measures learning on (built per cycle from the days' failures)."""

    k: int = ranged(4, ge=1)  # fresh programs per failed template pattern (reserved eval seeds)
    mutants: bool = True  # failed hand-written/mutated koans: k mutants of other corpus programs
    # a `sleepy koans harvest` folder: + k mutants per failure of its eval-side programs
    programs: str | None = None


@dataclass
class EvalConfig(DayConfig):
    task: str = "eval"
    # models:/sleepy-fixer/3 | 3 | an alias | an adapter folder | base
    candidate: str = required("candidate=models:/sleepy-fixer/3 (or an adapter folder, or base)")
    # alias (or version, path, base); the base model when the alias is unset
    champion: str = "champion"
    promote: bool = True  # move the champion alias when the gate says so
    # a new task's routes that broke frozen koans go back where the champion sent them (all of an
    # error it never trained on; of one it did, the queries nearer the broken koan of another
    # family than its own examples); both sets are measured once more before the gate decides
    withdraw_routes: bool = True
    koans: EvalKoansConfig = field(default_factory=EvalKoansConfig)
    gate: Any = None
    lineage: LineageConfig = field(default_factory=LineageConfig)
