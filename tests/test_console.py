"""The console a person reads: a real (tiny) sleepy-cycle's output holds sleepy's overview and its
own words per stage and none of the libraries' warnings, log lines or progress bars, which are in
the run's log file (and in MLflow) instead; -v shows them; the closing table fits 100 columns."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import mlflow
import pytest
from rich.console import Console

from sleepy.console import Display, Stage, stage, verbose_flag
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


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    p = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return p


def test_a_short_real_cycle_prints_sleepys_progress_and_no_library_noise(world, tmp_path):
    out_dir = tmp_path / "outputs"
    done = run(tiny_cycle_argv(world, out_dir), tmp_path)
    printed = done.stdout + done.stderr

    noise = [n for n in NOISE if n in printed]
    assert not noise, f"third-party output on the console: {noise}\n{printed}"
    # the overview, then one line per stage in sleepy's words
    assert "sleepy-cycle · cycle 1/1 · day" in printed
    for words in (
        "day on trait_bounds (2) 2/2",
        "curate 2 failed episodes of 2",
        "train LoRA r16 on",
        "epochs over",  # the training line closes with what was trained
        "consolidate 1 task adapter (share)",
        "register the merged adapter",
        "eval v1 on learning set",
        "eval champion base on learning set",
        "eval v1 on frozen (4) 4/4",
        "eval champion base on frozen (4) 4/4",
    ):
        assert words in printed, f"no '{words}' in\n{printed}"
    # piped: each stage also said when it started
    assert "start: day on trait_bounds (2) · 2 to do" in done.stderr
    assert "start: train LoRA r16 on" in done.stderr
    # the closing summary fits 100 columns and says where things are; the MLflow command is on
    # a line of its own, whole; the gate's reasons one a line
    closing = done.stdout.splitlines()
    [command] = [line for line in closing if "ui --backend-store-uri" in line]
    assert f"sqlite:///{out_dir}/mlflow.db" in command and command.endswith("--port 5000")
    assert max(len(line) for line in closing if line != command) <= 100
    assert "learning set" in printed and "plots:" in printed and "MLflow UI:" in printed
    gate = closing.index(next(line for line in closing if line.startswith("cycle 1 gate: ")))
    assert closing[gate].split(": ")[1] in ("promote", "reject")
    reasons = [line for line in closing[gate + 1 :] if line.startswith("  - ")]
    assert len(reasons) >= 2 and any("learning-set pass rate" in r for r in reasons)

    # what was kept off the console is in the run's log file, and in MLflow with the cycle
    log = (out_dir / "cycle" / "run" / "sleepy.log").read_text()
    # and so is sleepy's own progress and the closing table, as printed
    assert "INFO sleepy: start: day on trait_bounds (2) · 2 to do" in log
    assert "INFO sleepy: ✓ day on trait_bounds (2) 2/2" in log
    assert closing[gate] in log and command in log
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
    quiet = run(argv, tmp_path).stderr
    loud = run([*argv, "-v"], tmp_path).stderr
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


# -- off a terminal: plain lines and heartbeats, the same in the log file ---------------------------


def test_heartbeat_says_done_total_elapsed_and_time_left_at_the_rate_so_far(tmp_path):
    now = [100.0]
    console = Console(file=io.StringIO(), width=200)  # a file: no bars, plain lines
    log = tmp_path / "sleepy.log"
    d = Display(
        "sleepy-cycle", log, console=console, quiet=False, heartbeat=0, clock=lambda: now[0]
    )
    with d:
        d.at(cycle=1, cycles=2, phase="sleep")
        assert d.heartbeat_lines() == ["… sleepy-cycle · cycle 1/2 · sleep · 0:00 elapsed · "
                                       "run estimate after cycle 1"]  # fmt: skip
        with stage("train", "train LoRA r16 on 30 rows", total=100, unit="step") as bar:
            assert d.heartbeat_lines() == [
                "… cycle 1/2 · train LoRA r16 on 30 rows: step 0/100 · 0:00 elapsed · "
                "time left unknown"
            ]
            now[0] += 80  # 40 steps in 80 s: 60 steps at that rate are 120 s
            bar.update(completed=40, note="loss 0.812 · epoch 1.33")
            [line] = d.heartbeat_lines()
            assert line == (
                "… cycle 1/2 · train LoRA r16 on 30 rows: step 40/100 · loss 0.812 · epoch 1.33 "
                "· 1:20 elapsed · about 2:00 left"
            )
            # the overview has the stage's estimate before a cycle has finished
            assert "train about 2:00 left" in d.overview_text()
            d.beat()
    printed = console.file.getvalue()
    assert printed.index("start: train LoRA r16 on 30 rows · 100 steps") < printed.index(line)
    assert "✓ train LoRA r16 on 30 rows 40/100  loss 0.812 · epoch 1.33  1:20" in printed
    logged = log.read_text()
    for plain in ("start: train LoRA r16 on 30 rows · 100 steps", line, "✓ train LoRA r16"):
        assert plain in logged


def test_on_a_terminal_the_plain_lines_go_to_the_log_file_only(tmp_path):
    console = Console(file=io.StringIO(), width=100, force_terminal=True, force_interactive=True)
    log = tmp_path / "sleepy.log"
    with Display("sleepy-day", log, console=console, quiet=False, heartbeat=0) as d:
        with stage("day", "day on mutability (2)", total=2) as bar:
            bar.advance()
            d.beat()
    assert "start:" not in console.file.getvalue() and "… day on" not in console.file.getvalue()
    logged = log.read_text()
    assert "start: day on mutability (2) · 2 to do" in logged
    assert "… day on mutability (2): 1/2 · " in logged and "✓ day on mutability (2) 1/2" in logged


def test_at_80_columns_a_long_stage_label_gives_way_to_the_count_and_time_left():
    now = [0.0]
    console = Console(width=80, file=io.StringIO())
    d = Display("sleepy-cycle", console=console, quiet=False, heartbeat=0, clock=lambda: now[0])
    label = "eval champion v12 on learning set of lineage 2026-11-30_08-11-12_3b475b (24)"
    bar = Stage(d, "eval", label, 24, inner=True)
    now[0] += 35  # 7 koans in 35 s: 17 more at that rate are 85 s
    bar.advance(7, note="3 passed")
    console.print(d.progress.get_renderable())
    [row] = console.file.getvalue().splitlines()
    assert len(row) <= 80
    # the count, the note and the times stay whole
    assert "7/24" in row and "3 passed" in row and "0:00:35" in row and "1:25 left" in row
    assert "eval champion" in row and "…" in row and label not in row  # the label is cut


def tiny_day_argv(out: Path, run_id: str) -> list[str]:
    return [
        str(BIN / "sleepy-day"),
        "tracking=none",
        "koans.count=3",
        "koans.families=[mutability]",
        "agent.max_attempts=1",
        "agent.concurrency=1",  # one koan after another: the count moves while the day runs
        "model.max_new_tokens=8",
        f"run_id={run_id}",
        f"paths.outputs={out}",
    ]


def quick_heartbeats() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TERM")}
    return {**env, "SLEEPY_HEARTBEAT_S": "0.05"}


HEARTBEAT = re.compile(r"^… (.+): (\d+)/(\d+) · .*\d+:\d\d elapsed · (about \d+:\d\d left|time left unknown)$")  # fmt: skip


def test_a_piped_day_says_when_each_stage_starts_and_how_far_it_is(tmp_path):
    """Piped, as in `sleepy-day > log 2>&1`, CI or nohup: a plain line when each stage starts,
    heartbeats with done/total and time left while it runs, a line when it ends, and the same
    lines in the run's sleepy.log, with the closing line the entrypoint prints."""
    out = tmp_path / "outputs"
    p = subprocess.run(
        tiny_day_argv(out, "piped"),
        cwd=tmp_path,
        env=quick_heartbeats(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    lines = p.stderr.splitlines()
    ended = [ln[2:] for ln in lines if ln.startswith("✓ ")]
    assert any(e.startswith("day on mutability (3) 3/3") for e in ended), p.stderr
    for end in ended:  # every stage that ended said when it started, before it ended
        starts = [i for i, ln in enumerate(lines) if ln.startswith("start: ") and
                  end.startswith(ln[len("start: "):].split(" · ")[0])]  # fmt: skip
        assert starts and starts[0] < lines.index(f"✓ {end}"), f"no start line for {end}"
    beats = [m for ln in lines if (m := HEARTBEAT.match(ln))]
    day = [m for m in beats if m[1] == "day on mutability (3)" and m[3] == "3"]
    assert day, p.stderr
    # once a koan is done, the time left at the rate so far
    assert any(1 <= int(m[2]) < 3 and m[4].startswith("about ") for m in day), p.stderr

    log = (out / "day" / "piped" / "sleepy.log").read_text()
    logged = [ln.split(" INFO sleepy: ", 1)[1] for ln in log.splitlines() if " INFO sleepy: " in ln]
    assert "start: day on mutability (3) · 3 to do" in logged
    assert any(ln.startswith("✓ day on mutability (3) 3/3") for ln in logged)
    assert any(HEARTBEAT.match(ln) for ln in logged)
    assert p.stdout.strip() in logged  # the closing line: "run piped: 2 episodes, ..."


def run_on_a_terminal(argv: list[str], cwd: Path, env: dict) -> str:
    """What `argv` prints on a pseudo-terminal of 100 columns (stdout and stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(
        argv, cwd=cwd, env={**env, "TERM": "xterm-256color"}, stdin=slave, stdout=slave,
        stderr=slave, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 600)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_the_day_shows_bars_and_its_log_still_has_the_plain_lines(tmp_path):
    out = tmp_path / "outputs"
    shown = run_on_a_terminal(tiny_day_argv(out, "tty"), tmp_path, quick_heartbeats())
    assert "day on mutability (3) 3/3" in shown
    assert "start: " not in shown and "time left unknown" not in shown  # bars, not plain lines
    log = (out / "day" / "tty" / "sleepy.log").read_text()
    assert "INFO sleepy: start: day on mutability (3) · 3 to do" in log
    assert any(HEARTBEAT.match(ln.split(" INFO sleepy: ")[-1]) for ln in log.splitlines())
    assert "INFO sleepy: ✓ day on mutability (3) 3/3" in log
    assert "INFO sleepy: run tty: 3 episodes" in log
