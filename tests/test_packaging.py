"""An installed sleepy, not the checkout: the wheel carries its configs (pkg://sleepy.conf), the
corpus and the frozen suite, so `sleepy-day` runs from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # builds the wheel and runs a day with it
def test_the_wheel_runs_a_day_from_another_directory(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("sleepy-*.whl")
    # the wheel alone; its dependencies are the ones this interpreter already has
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}

    where = subprocess.run(
        [sys.executable, "-c", "import sleepy.config as c; print(c.__file__, c.DATA_ROOT)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    module, data = where.stdout.split()
    assert Path(module).is_relative_to(target) and Path(data) == target / "sleepy" / "data"

    day = subprocess.run(
        [str(target / "bin" / "sleepy-day"), "koans.count=3"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert day.returncode == 0, day.stderr[-2000:]
    assert ": 3 episodes, pass rate" in day.stdout
    assert list((elsewhere / "outputs" / "day").glob("*/episodes.sqlite"))
