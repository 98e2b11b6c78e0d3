"""The console a person reads: a real (tiny) sleepy-cycle's output holds sleepy's overview and its
own words per stage and none of the libraries' warnings, log lines or progress bars, which are in
the run's log file (and in MLflow) instead; -v shows them; the closing table fits 100 columns."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from rich.console import Console

from sleepy.console import Display, verbose_flag
from sleepy.summary import summary_table

BIN = Path(sys.executable).parent
# What other libraries print when left alone (seen in `make demo` before they were switched off)
NOISE = (
    "Warning",  # FutureWarning, UserWarning, SADeprecationWarning, "WARNING mlflow..."
    "WARNING",
    "warnings.warn",
    " INFO ",  # mlflow's and alembic's log lines
    "alembic",
    "it/s",  # tqdm bars: Loading weights, trainer steps
    "s/it",
    "examples/s",  # datasets' map bars: Tokenizing, Truncating, Saving the dataset
    "Loading weights",
    "Saving the dataset",
    "Tokenizing train dataset",
    "Dropping fully masked",
    "{'loss'",  # the trainer's per-step dicts
    "'train_runtime'",
    "Successfully registered model",
    "Created version",
    "CloudPickle",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sleepy.koan import save_evalset
    from sleepy.koans.generate import generate

    tmp = tmp_path_factory.mktemp("console")
    ev = [k for fam in ("trait_bounds", "mutability") for k in generate(fam, 2, seed=99)]
    save_evalset(ev, tmp / "frozen.json")
    return tmp


def tiny_cycle_argv(world: Path, out: Path) -> list[str]:
    return [
        str(BIN / "sleepy-cycle"),
        "cycles=1",
        f"paths.outputs={out}",
        f"hydra.run.dir={out}/cycle/run",
        f"evalset={world / 'frozen.json'}",
        "lineage=console",
        "curriculum=[{families: [trait_bounds], generate: 2, source: null}]",
        "adapter.max_steps=2",
        "adapter.batch_size=4",
        "adapter.logging_steps=1",
        "adapter.target_modules=[q_proj,v_proj]",
        "curate.augment_k=1",
        "learning_set.k=1",
        "agent.max_attempts=1",
        "model.max_new_tokens=16",
        f"curate.evalset_paths=[{world / 'frozen.json'}]",
    ]


def run(argv: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    p = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    return out


def test_a_short_real_cycle_prints_sleepys_progress_and_no_library_noise(world, tmp_path):
    out_dir = tmp_path / "outputs"
    printed = run(tiny_cycle_argv(world, out_dir), tmp_path)

    noise = [n for n in NOISE if n in printed]
    assert not noise, f"third-party output on the console: {noise}\n{printed}"
    # the overview, then one line per stage in sleepy's words
    assert "sleepy-cycle · cycle 1/1 · day" in printed
    for stage in (
        "day on trait_bounds (2) 2/2",
        "curate 2 failed episodes of 2",
        "train LoRA r16 on",
        "steps/s",
        "consolidate 1 task adapter (share)",
        "register the merged adapter",
        "eval v1 on learning set",
        "eval champion base on learning set",
        "eval v1 on frozen (4) 4/4",
        "eval champion base on frozen (4) 4/4",
    ):
        assert stage in printed, f"no '{stage}' in\n{printed}"
    # the closing summary fits 100 columns and says where things are
    assert max(len(line) for line in printed.splitlines()) <= 100
    assert "learning set" in printed and "gate" in printed
    assert "plots:" in printed and "MLflow UI:" in printed and "ui --backend-store-uri" in printed

    # what was kept off the console is in the run's log file, and in MLflow with the cycle
    log = (out_dir / "cycle" / "run" / "sleepy.log").read_text()
    assert "py.warnings" in log and "mlflow" in log and "'train_runtime'" in log
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out_dir}/mlflow.db")
    exp = client.get_experiment_by_name("sleepy-cycle")
    [parent] = client.search_runs([exp.experiment_id], "tags.stage = 'cycle'")
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "logs")] == [
        "logs/sleepy.log"
    ]
    assert parent.info.run_name == "cycle 1 · console"
    assert parent.data.params["cycle"] == "1" and "adapter.rank" in parent.data.params


def test_verbose_shows_what_the_libraries_print(world, tmp_path):
    """-v: the same switches left on (a day of one koan loads the model with transformers)."""
    argv = [
        str(BIN / "sleepy-day"),
        "tracking=none",
        "koans.count=1",
        "koans.families=[mutability]",
        "agent.max_attempts=1",
        "model.max_new_tokens=8",
        f"paths.outputs={tmp_path / 'outputs'}",
    ]
    quiet = run(argv, tmp_path)
    loud = run([*argv, "-v"], tmp_path)
    assert "Loading weights" not in quiet and "Loading weights" in loud
    assert "day on mutability (1) 1/1" in quiet


SUMMARIES = [
    {
        "cycle": c,
        "families": [fam],
        "promoted": c != 3,
        "learning_pass_rate": 0.5,
        "champion_learning_pass_rate": 0.25,
        "repeat_error_rate": 1.0,
        "champion_repeat_error_rate": 0.96,
        "regressions": 3 - c,
        "learning_family": {"closures_iterators": 0.62 if c < 3 else 0.1, "result_handling": 0.33},
        "champion_learning_family": {},
        "decision": "promote: ..." if c != 3 else "reject: ...",
    }
    for c, fam in ((1, "closures_iterators"), (2, "result_handling"), (3, "concurrency"))
]


@pytest.mark.parametrize("width", [100, 80])
def test_closing_table_fits_and_never_cuts_a_word(width):
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(summary_table(SUMMARIES, "sleepy-cycle 2026-11-30_08-11-12_3b475b"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    for word in ("closures_iterators", "result_handling", "concurrency", "regressions", "LOST"):
        assert word in text
    if width < 100:  # too narrow for the columns: a block per cycle, every value named
        assert "cycle 3\n  learned: concurrency" in text and "  gate: reject" in text


def test_overview_estimates_from_the_cycles_run():
    d = Display("sleepy-cycle", console=Console(file=io.StringIO()), quiet=False)
    d.at(cycle=1, cycles=3)
    assert d.estimate(now=d.t0) is None  # nothing to go by before a cycle has finished
    d.cycle_seconds, d.done_cycles, d._cycle_t0 = [100.0], 1, None
    assert d.estimate(now=d.t0) == pytest.approx(200.0)  # two more cycles of 100 s


def test_dash_v_becomes_the_verbose_override():
    argv = ["sleepy-cycle", "-v", "cycles=2"]
    assert verbose_flag(argv) and argv == ["sleepy-cycle", "cycles=2", "verbose=true"]
    argv = ["sleepy-cycle", "cycles=2"]
    assert not verbose_flag(argv) and argv == ["sleepy-cycle", "cycles=2"]
