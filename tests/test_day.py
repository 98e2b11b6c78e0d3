"""sleepy-day end to end: the tiny model on CPU, episodes in a real SQLite file, the run in a real
MLflow sqlite store under tmp_path; kill -9 then resume; the one-line errors."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest
from support import stage_config

from sleepy.config import override_problem
from sleepy.day.run import DayError, run_day
from sleepy.episodes import EpisodeStore
from sleepy.koan.model import save_koan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def koan_dir(tmp_path_factory, generated) -> Path:
    out = tmp_path_factory.mktemp("koans")
    for family in ("borrow_checker", "mutability"):
        for k in generated(family, 3, seed=7):
            save_koan(k, out)
    return out


def day_cfg(tmp_path: Path, *overrides: str):
    return stage_config(
        "day", tmp_path, "agent.max_new_tokens=16", "agent.max_attempts=2", *overrides, out="run"
    )


def finished(db: Path, run_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as c:
        return c.execute(
            "SELECT task_id, episode_id FROM episodes WHERE run_id = ? "
            "AND status IN ('done', 'error') ORDER BY task_id",
            (run_id,),
        ).fetchall()


def test_tiny_day_end_to_end(tmp_path, koan_dir):
    cfg = day_cfg(
        tmp_path, "model=tiny", f"koans.source={koan_dir}", "koans.count=4", "run_id=t1", "cycle=3"
    )
    result = run_day(cfg)
    assert result.selected == 4 and result.skipped == 0
    with EpisodeStore(result.episodes_db) as store:
        eps = store.episodes(run_id="t1")
    assert len(eps) == 4 and len({e.task_id for e in eps}) == 4
    assert all(
        e.model_id == "sleepy-tiny"
        and e.edit_format == "search_replace"
        and e.cycle == 3
        and e.steps >= 1
        and e.tokens_out > 0
        and e.error_signature
        for e in eps
    )

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = mlflow.search_runs(experiment_names=["sleepy-day"], output_format="list")
    assert run.info.run_id == result.mlflow_run_id
    assert run.data.metrics["episodes"] == 4
    assert run.data.metrics["pass_rate"] == sum(e.passed for e in eps) / 4
    assert any(k.startswith("pass_rate_") for k in run.data.metrics)
    assert {"tokens_in", "tokens_out", "wall_time_s"} <= set(run.data.metrics)
    # steps to green are logged only when a koan was fixed: none is no median of 0
    assert ("median_steps_to_green" in run.data.metrics) == any(e.passed for e in eps)
    tags = run.data.tags
    assert (tags["model"], tags["backend"], tags["adapter"], tags["cycle"]) == (
        "sleepy-tiny",
        "hf",
        "none",
        "3",
    )
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"episodes.jsonl", "config.yaml"} <= arts
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)
    lines = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 4

    with pytest.raises(DayError, match="resume=true"):
        run_day(cfg)  # the same run again without resume would duplicate it
    # resumed with another adapter, its pass rate would mix two models' episodes
    cfg.resume, cfg.backend.adapter = True, str(tmp_path / "another-adapter")
    with pytest.raises(DayError, match="finished episodes were made with adapter none, not "):
        run_day(cfg)


@pytest.mark.slow  # a day killed and resumed in subprocesses
def test_kill_mid_run_then_resume_loses_nothing_and_duplicates_nothing(tmp_path, koan_dir):
    args = [
        sys.executable,
        "-m",
        "sleepy.day",
        "model=tiny",
        f"koans.source={koan_dir}",
        "run_id=killed",
        f"paths.outputs={tmp_path}",
        "agent.concurrency=1",
        "agent.max_new_tokens=16",
        "agent.max_attempts=2",
    ]
    db = tmp_path / "day" / "killed" / "episodes.sqlite"
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists() and len(finished(db, "killed")) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the day ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    before = finished(db, "killed")
    assert 2 <= len(before) < 6

    done = subprocess.run(
        [*args, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    after = finished(db, "killed")
    assert len(after) == 6 and len({t for t, _ in after}) == 6  # every koan once
    assert set(before) <= set(after)  # what was recorded before the kill is kept as it was
    with sqlite3.connect(db) as c:
        assert (
            c.execute("SELECT COUNT(*) FROM episodes WHERE status = 'running'").fetchone()[0] == 0
        )

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["sleepy-day"], output_format="list")
    assert len(runs) == 1 and runs[0].data.metrics["episodes"] == 6  # the resumed run continued
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id)}
    assert ".hydra" in arts


def test_a_second_day_on_a_run_another_process_holds_is_a_one_line_error(tmp_path, koan_dir):
    """Two sleepy-day processes resuming one run_id used to record every open koan twice."""
    db = tmp_path / "day" / "shared" / "episodes.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from sleepy.episodes import EpisodeStore; "
            "s = EpisodeStore(sys.argv[1]); c = s.own_run('shared'); c.__enter__(); "
            "print('holding', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        second = subprocess.run(
            [
                sys.executable, "-m", "sleepy.day", "model=tiny", f"koans.source={koan_dir}",
                "run_id=shared", "resume=true", f"paths.outputs={tmp_path}", "tracking=none",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert second.returncode == 2
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and "run shared is being recorded by another process" in err[0]
    assert f"pid {holder.pid}" in err[0]
    assert finished(db, "shared") == []  # the refused day recorded nothing


def test_empty_selection_is_a_one_line_error(tmp_path, koan_dir):
    with pytest.raises(DayError) as e:
        run_day(day_cfg(tmp_path, f"koans.source={koan_dir}", "koans.families=[lifetimes]"))
    assert "no koans selected" in str(e.value) and "borrow_checker" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(DayError, match="koans.ids: no koan 'nope'"):
        run_day(day_cfg(tmp_path, f"koans.source={koan_dir}", "koans.ids=[nope]"))


def test_unreachable_backend_is_a_one_line_error(tmp_path, koan_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cfg = day_cfg(
        tmp_path,
        "backend=openai",
        f"backend.base_url=http://127.0.0.1:{port}/v1",
        "backend.retries=0",
        "backend.timeout=5",
        f"koans.source={koan_dir}",
        "koans.count=2",
        "tracking=none",
        "run_id=down",
    )
    with pytest.raises(DayError) as e:
        run_day(cfg)
    assert "cannot reach" in str(e.value) and str(port) in str(e.value) and "\n" not in str(e.value)


def test_a_bare_day_on_the_whole_corpus_says_it_will_take_hours(tmp_path, capsys):
    """`sleepy-day` with no selection meets every koan of the corpus: it says so, with the
    override that makes a short day, before any koan runs (here the backend is down, so it
    stops right after)."""
    from sleepy.day.run import LONG_DAY

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bare = day_cfg(
        tmp_path, "backend=openai", f"backend.base_url=http://127.0.0.1:{port}/v1",
        "backend.retries=0", "backend.timeout=5", "tracking=none", "run_id=bare",
    )  # fmt: skip
    with pytest.raises(DayError):
        run_day(bare)
    said = " ".join(capsys.readouterr().err.split())
    n = int(said.split(" koans selected")[0].split()[-1])
    assert n > LONG_DAY and "takes hours on a CPU; koans.count=20" in said
    short = day_cfg(
        tmp_path, "backend=openai", f"backend.base_url=http://127.0.0.1:{port}/v1",
        "backend.retries=0", "backend.timeout=5", "tracking=none", "run_id=short",
        "koans.count=3",
    )  # fmt: skip
    with pytest.raises(DayError):
        run_day(short)
    assert "koans selected" not in capsys.readouterr().err


def test_bad_override_names_the_groups_options():
    assert override_problem("day", ["agent=nonexistent"]) == (
        "no agent 'nonexistent' (options for agent: default, lines, search_replace, udiff, whole_file)"
    )
    assert "model" in override_problem("day", ["model=gpt9"])
    assert "koans.nope" in override_problem("day", ["koans.nope=1"])
    assert override_problem("day", ["agent=udiff", "model=qwen2.5-coder-0.5b-instruct"]) is None
    done = subprocess.run(
        [sys.executable, "-m", "sleepy.day", "agent=nonexistent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sleepy-day: error: no agent 'nonexistent' "
        "(options for agent: default, lines, search_replace, udiff, whole_file)"
    ]


def test_day_over_the_openai_backend_against_sleepy_serve(tmp_path, koan_dir):
    serve = pytest.importorskip("sleepy.serve")
    from sleepy.llm.hf import HFBackend
    from sleepy.tiny import MODEL_DIR

    backend = HFBackend(MODEL_DIR, model_id="sleepy-tiny", max_new_tokens=16)
    with serve.OpenAIServer(backend, port=0) as server:
        cfg = day_cfg(
            tmp_path,
            "backend=openai",
            f"backend.base_url={server.url}",
            f"koans.source={koan_dir}",
            "koans.count=2",
            "tracking=none",
            "run_id=served",
        )
        result = run_day(cfg)
    with EpisodeStore(result.episodes_db) as store:
        eps = store.episodes(run_id="served")
    assert len(eps) == 2 and all(e.status == "done" and e.tokens_out > 0 for e in eps)
    assert all(e.trajectory[1]["reply"] is not None for e in eps)


class LongReplies(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose model answers every prompt with 2 KB of prose (no edit):
    each step stores it in the episode's trajectory, so the store grows fast."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        reply = "I am not sure where the mistake is. " * 60
        data = json.dumps(
            {
                "id": "c", "object": "chat.completion", "created": 0, "model": "sleepy-tiny",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (a real file system that runs out of space), mounted for the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_ends_the_day_with_one_line_and_resuming_loses_nothing(
    tmp_path, koan_dir, small_disk
):
    server = ThreadingHTTPServer(("127.0.0.1", 0), LongReplies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = small_disk / "episodes.sqlite"
    # room for the database and a few episodes, then none: what is left goes when the test frees it
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1536 << 10))
    args = [
        sys.executable, "-m", "sleepy.day", "backend=openai",
        f"backend.base_url=http://127.0.0.1:{server.server_port}/v1", f"koans.source={koan_dir}",
        f"paths.outputs={tmp_path}", f"paths.episodes_db={db}", "tracking=none",
        "agent.concurrency=1", "agent.max_attempts=3",
    ]  # fmt: skip
    try:
        full = subprocess.run(
            [*args, "run_id=full"], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert full.returncode == 2
        assert "Traceback" not in full.stderr, full.stderr[-3000:]
        # the day's closing progress line, then one line saying what happened and how to go on
        line = full.stderr.strip().splitlines()[-1]
        assert sum("error" in x for x in full.stderr.splitlines()) == 1, full.stderr
        assert line.startswith(f"sleepy-day: error: the disk holding {db} is full")
        assert (
            "every episode and step before it is kept; free space, then resume: sleepy-day" in line
        )
        assert line.endswith("run_id=full resume=true")
        before = finished(db, "full")
        assert 1 <= len(before) < 6  # it filled up mid-run

        filler.unlink()
        # the command it prints, as given: sleepy-day is `python -m sleepy.day`
        command = shlex.split(line.split("then resume: ", 1)[1])
        assert command[0] == "sleepy-day"
        resumed = subprocess.run(
            [sys.executable, "-m", "sleepy.day", *command[1:]],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = finished(db, "full")
    assert len(after) == 6 and len({t for t, _ in after}) == 6  # every koan once
    assert set(before) <= set(after)  # what was recorded before the disk filled is kept as it was
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM episodes WHERE status = 'running'").fetchone() == (
            0,
        )


def test_a_day_meets_mutants_of_train_side_programs_only():
    """koans.mutants: the family's mistakes in programs a person wrote, never an eval-side program
    (those are the learning set's new programs: a day's failures are trained on)."""
    from omegaconf import OmegaConf

    from sleepy.day import select_koans
    from sleepy.day.config import KoansConfig
    from sleepy.koans.harvest import program_side
    from sleepy.koans.mutate import load_programs

    every, _ = load_programs(["koans"])
    code = {p.id: p.code for p in every}
    assert {program_side(c) for c in code.values()} == {"train", "eval"}  # both sides are there
    kcfg = OmegaConf.structured(KoansConfig(**
        {"evalset": None, "source": None, "families": ["mutability"], "ids": [], "count": None,
         "seed": 3, "generate": 0, "patterns": [], "mutants": 3, "programs": "koans"})
    )  # fmt: skip
    koans = select_koans(kcfg, "evalsets")
    assert len(koans) == 3
    assert {k.source for k in koans} == {"mutated"} and {k.family for k in koans} == {"mutability"}
    assert all(program_side(code[k.meta["parent"]]) == "train" for k in koans)


def test_day_mutants_from_a_missing_folder_say_what_to_make(tmp_path):
    from omegaconf import OmegaConf

    from sleepy.day import DayError, select_koans
    from sleepy.day.config import KoansConfig

    kcfg = OmegaConf.structured(KoansConfig(**
        {"evalset": None, "source": None, "families": ["mutability"], "ids": [], "count": None,
         "seed": 3, "generate": 0, "patterns": [], "mutants": 2, "programs": str(tmp_path / "no")})
    )  # fmt: skip
    with pytest.raises(DayError, match="make programs"):
        select_koans(kcfg, "evalsets")
