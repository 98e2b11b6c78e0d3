"""Config values are checked, before any work starts, against the structured configs that declare
them (each key's type and range in one dataclass field): each bad value or key is refused with one
line naming the key and what it allows, and a required value left out with one line naming the
key and an example, before any folder or MLflow run is made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sleepy.config import ConfigError, check_config, compose_config


@pytest.mark.parametrize(
    "config, override, message",
    [
        ("day", "agent.concurrency=0", "agent.concurrency=0: must be an integer >= 1"),
        ("day", "agent.max_attempts=abc", "agent.max_attempts='abc': must be an integer >= 1"),
        ("day", "agent.temperature=nan", "agent.temperature=nan: must be a number >= 0"),
        ("sleep", "adapter.rank=0", "adapter.rank=0: must be an integer >= 1"),
        ("sleep", "adapter.rank=-5", "adapter.rank=-5: must be an integer >= 1"),
        ("sleep", "adapter.rank=abc", "adapter.rank='abc': must be an integer >= 1"),
        ("sleep", "adapter.max_steps=-1", "adapter.max_steps=-1: must be an integer >= 1 or null"),
        ("sleep", "adapter.learning_rate=0", "adapter.learning_rate=0.0: must be a number > 0"),
        ("sleep", "adapter.patience=0", "adapter.patience=0: must be an integer >= 1"),
        ("sleep", "adapter.min_delta=-1", "adapter.min_delta=-1.0: must be a number >= 0"),
        ("sleep", "adapter.warn_epochs=0", "adapter.warn_epochs=0.0: must be a number > 0"),
        (
            "sleep",
            "adapter.eval_fraction=0.9",
            "adapter.eval_fraction=0.9: must be a number >= 0 and <= 0.5",
        ),
        ("cycle", "gate.min_gain=abc", "gate.min_gain='abc': must be a number >= -1 and <= 1"),
        ("cycle", "gate.max_regressions=-1", "gate.max_regressions=-1: must be an integer >= 0"),
        ("cycle", "cycles=0", "cycles=0: must be an integer >= 1"),
        ("consolidate", "consolidation.k_min=0", "consolidation.k_min=0: must be an integer >= 1"),
        (
            "consolidate",
            "consolidation.route_confidence=1.5",
            "consolidation.route_confidence=1.5: must be a number >= 0 and <= 1",
        ),
        (
            "cycle",
            "consolidation.router=nearest",
            "consolidation.router='nearest': must be one of learned, signature",
        ),
        (
            "day",
            "sandbox.limits.run_timeout=-1",
            "sandbox.limits.run_timeout=-1.0: must be a number > 0",
        ),
        ("day", "koans.cout=3", "unknown key 'koans.cout' (KoansConfig has: source, evalset"),
        ("cycle", "koans.cout=3", "unknown key 'koans.cout' (KoansConfig has:"),
        ("day", "+koans.cout=3", "unknown key 'koans.cout' (KoansConfig has:"),
        ("cycle", "gate.min_gian=1", "unknown key 'gate.min_gian' (Gate has: min_gain,"),
        ("eval", "gate.min_gian=1", "unknown key 'gate.min_gian' (Gate has: min_gain,"),
        ("sleep", "adapter.rnak=4", "unknown key 'adapter.rnak' (AdapterConfig has:"),
        ("sleep", "curate.agument_k=4", "unknown key 'curate.agument_k' (CurateConfig has:"),
        ("cycle", "learning_set.kk=4", "unknown key 'learning_set.kk' (LearningSetConfig has:"),
        (
            "cycle",
            "curriculum=[{families: [lifetimes], cout: 3}]",
            "unknown key 'cout' (CurriculumEntry has: families, count,",
        ),
        (
            "cycle",
            "curriculum=[{families: [lifetimes]},{families: [trait_bounds], generate: -2}]",
            "curriculum[1].generate=-2: must be an integer >= 0",
        ),
        (
            "cycle",
            "consolidation=ties | consolidation.density=2",
            "consolidation.density=2.0: must be",
        ),
    ],
)
def test_bad_values_are_one_line_naming_key_and_range(config, override, message):
    extra = ["tasks=[a]"] if config == "consolidate" else []
    extra += ["candidate=base"] if config == "eval" else []
    with pytest.raises(ConfigError) as e:
        check_config(compose_config(config, [*override.split(" | "), *extra]))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "config, overrides",
    [
        ("day", []),
        ("sleep", ["curate.episodes=day/episodes.sqlite"]),
        ("sleep", ["adapter=coefficients", "curate.day_run_id=0123abcd"]),
        ("consolidate", ["tasks=[a]", "consolidation=uwsh"]),
        ("eval", ["candidate=base"]),
        ("cycle", ["experiment=demo"]),
        ("cycle", ["experiment=smoke"]),
        ("cycle", ["experiment=three_families", "tracking=none"]),
    ],
)
def test_the_shipped_configs_pass(config, overrides):
    check_config(compose_config(config, overrides))


def run(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def test_day_with_no_concurrency_stops_at_once_instead_of_spinning(tmp_path):
    proc = run("sleepy.day", "agent.concurrency=0", f"paths.outputs={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2
    assert last_line(proc) == ("sleepy-day: error: agent.concurrency=0: must be an integer >= 1")
    assert not list(tmp_path.rglob("episodes.sqlite"))


def test_sleep_with_a_bad_rank_fails_before_curation_and_leaves_no_mlflow_run(tmp_path):
    proc = run(
        "sleepy.sleep", "adapter.rank=abc", "curate.episodes=none.sqlite",
        f"paths.outputs={tmp_path}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert last_line(proc) == "sleepy-sleep: error: adapter.rank='abc': must be an integer >= 1"
    assert not (tmp_path / "mlflow.db").exists()


def test_cycle_with_a_bad_gate_fails_before_the_first_day(tmp_path):
    proc = run("sleepy.cycle", "gate.min_gain=abc", f"paths.outputs={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "gate.min_gain='abc': must be a number >= -1 and <= 1" in last_line(proc)
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.rglob("state.json"))


def test_run_koans_refuses_zero_concurrency():
    from sleepy.day.loop import run_koans

    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        run_koans([object()], lambda k: None, None, concurrency=0)


@pytest.mark.parametrize(
    "module, prog, key, example",
    [
        ("sleepy.eval", "sleepy-eval", "candidate", "candidate=models:/"),
        ("sleepy.consolidate", "sleepy-consolidate", "tasks", "tasks=["),
        ("sleepy.sleep", "sleepy-sleep", "curate.episodes", "curate.episodes=outputs/day/"),
    ],
)
def test_a_stage_without_its_required_value_is_one_line_and_leaves_nothing(
    tmp_path, module, prog, key, example
):
    """The first command a newcomer types, with no arguments: it used to end in Hydra's 'Error
    executing job' and a traceback, after making outputs/ (and, for sleep, a FAILED run)."""
    proc = run(module, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"{prog}: error: ") and key in lines[0] and example in lines[0]
    assert list(tmp_path.iterdir()) == []  # no outputs/ folder, no mlflow.db


@pytest.mark.parametrize("module", ["sleepy.day", "sleepy.cycle"])
def test_info_defaults_lists_the_schemas(tmp_path, module):
    """It failed with "Could not load 'schema/agent'" on every entrypoint."""
    proc = run(module, "--info", "defaults", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    name = module.rsplit(".", 1)[1]
    assert f"schema/{name}" in proc.stdout and "schema/agent" in proc.stdout
