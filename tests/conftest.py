"""Fixtures the test modules share.

- `compose`: a stage's config composed the way its entrypoint composes it (pkg://sleepy.conf,
  structured configs checked), with outputs, the run's folder and the MLflow store in the test's
  own tmp_path (support.stage_config, for helpers that take the folder).
- `generated`: koans from the generator, validated with real rustc, made once per session for
  each (family, n, seed) however many modules ask.

Tiers: tests marked `slow` (the long end-to-end ones) are left out of `make test`, which CI runs
and which still runs the full cycle once; `make test-all` runs every test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig
from support import stage_config

from sleepy.koans import Koan
from sleepy.koans.generate import generate


@pytest.fixture
def compose(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose(name, *overrides, out=None, root=tmp_path) -> the stage's config (stage_config)."""

    def make(name: str, *overrides: str, out: str | None = None, root: Path | None = None):
        return stage_config(name, root or tmp_path, *overrides, out=out)

    return make


@pytest.fixture(scope="session")
def generated() -> Callable[..., list[Koan]]:
    """generated(family, n, seed, validate=True) -> n koans of the family's templates."""
    made: dict[tuple, list[Koan]] = {}

    def make(family: str, n: int, seed: int, validate: bool = True) -> list[Koan]:
        key = (family, n, seed, validate)
        if key not in made:
            made[key] = generate(family, n, seed=seed, validate=validate)
        return list(made[key])

    return make
