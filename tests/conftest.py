"""Fixtures the test modules share.

- `compose`: a stage's config composed the way its entrypoint composes it (pkg://sleepy.conf,
  structured configs checked), with outputs, the run's folder and the MLflow store in the test's
  own tmp_path (support.stage_config, for functions that take the folder).
- `generated`: koans from the generator, validated with real rustc, made once per test run for
  each (family, n, seed) however many modules ask.

Tiers: tests marked `slow` (the long end-to-end ones) are left out of `make test`, which CI runs
and which still runs the full cycle once; `make test-all` runs every test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig
from support import stage_config

from sleepy.koan import Koan
from sleepy.koans.generate import generate


@pytest.fixture
def compose(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose(name, *overrides, out=None, root=tmp_path) -> the stage's config (stage_config)."""

    def make(name: str, *overrides: str, out: str | None = None, root: Path | None = None):
        return stage_config(name, root or tmp_path, *overrides, out=out)

    return make


@functools.cache
def _generate(family: str, n: int, seed: int, validate: bool) -> tuple[Koan, ...]:
    return tuple(generate(family, n, seed=seed, validate=validate))


@pytest.fixture(scope="module")
def generated() -> Callable[..., list[Koan]]:
    """generated(family, n, seed, validate=True) -> n koans of the family's templates (made once
    per test run for each set of arguments)."""

    def make(family: str, n: int, seed: int, validate: bool = True) -> list[Koan]:
        return list(_generate(family, n, seed, validate))

    return make
