"""Episode store on a real SQLite file: recording, resume, hints, export/import, several writers, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from sleepy.cli import main as sleepy_main
from sleepy.episodes import Episode, EpisodeError, EpisodeStore
from sleepy.episodes.store import MIGRATIONS

SIG = "E0382 borrow of moved value: <id>"


def record(
    store: EpisodeStore,
    run_id: str,
    task: str,
    passed: bool,
    attempt: int = 0,
    family: str = "borrow_checker",
    sig: str = SIG,
) -> str:
    eid = store.start_episode(
        run_id,
        task,
        attempt_idx=attempt,
        family=family,
        error_signature=sig,
        model_id="sleepy-tiny",
        edit_format="whole_file",
    )
    store.record_step(
        eid,
        {"action": "write_file", "observation": "error[E0382]"},
        tokens_in=10,
        tokens_out=5,
        first_error_signature=sig,
    )
    store.record_step(eid, {"action": "run_tests", "observation": "ok"}, tokens_in=12, tokens_out=7)
    store.finish_episode(
        eid,
        passed=passed,
        diff_unified=f"--- a\n+++ b\n+fix {task}\n",
        steps_to_green=2 if passed else None,
        final_error_signature=None if passed else sig,
        wall_clock_ms=42,
    )
    return eid


def test_episode_fields_round_trip(tmp_path):
    with EpisodeStore(tmp_path / "ep.sqlite") as store:
        assert store.schema_version == len(MIGRATIONS)
        eid = record(store, "run1", "koan-a", passed=True)
        e = store.get(eid)
    assert (e.run_id, e.task_id, e.family, e.model_id, e.edit_format) == (
        "run1",
        "koan-a",
        "borrow_checker",
        "sleepy-tiny",
        "whole_file",
    )
    assert e.passed is True and e.status == "done" and e.steps == 2 and e.steps_to_green == 2
    assert (e.tokens_in, e.tokens_out) == (22, 12)  # counters add up across steps
    assert e.error_signature == SIG and e.first_error_signature == SIG
    assert e.final_error_signature is None
    assert [s["action"] for s in e.trajectory] == ["write_file", "run_tests"]
    assert e.wall_clock_ms == 42 and e.timestamp and "+fix koan-a" in e.diff_unified


def test_trajectory_is_saved_after_every_step(tmp_path):
    store = EpisodeStore(tmp_path / "ep.sqlite")
    eid = store.start_episode("run1", "koan-a")
    store.record_step(eid, {"step": 1})
    # A second connection (another process would see the same) reads the committed step at once.
    other = EpisodeStore(tmp_path / "ep.sqlite")
    assert other.get(eid).trajectory == [{"step": 1}]
    assert other.get(eid).status == "running"
    assert other.episodes(run_id="run1") == []  # unfinished episodes are not results
    assert len(other.episodes(run_id="run1", status=None)) == 1


def test_bad_input_gives_clear_errors(tmp_path):
    store = EpisodeStore(tmp_path / "ep.sqlite")
    with pytest.raises(EpisodeError, match="no episode 'nope'"):
        store.record_step("nope", {"x": 1})
    with pytest.raises(EpisodeError, match="unknown episode fields"):
        store.start_episode("r", "t", colour="red")
    with pytest.raises(EpisodeError, match="no episode database"):
        EpisodeStore(tmp_path / "missing.sqlite", create=False)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(EpisodeError, match="not a usable episode database"):
        EpisodeStore(tmp_path / "junk.sqlite")


def test_resume_skips_finished_tasks_and_retires_stale_running_rows(tmp_path):
    store = EpisodeStore(tmp_path / "ep.sqlite")
    record(store, "run1", "a", passed=True)
    record(store, "run1", "b", passed=False, attempt=0)
    stale = store.start_episode("run1", "c")  # its process was killed mid-episode
    record(store, "run2", "c", passed=True)  # another run does not count for run1
    assert store.finished_task_ids("run1") == {"a", "b"}
    assert store.finished_task_ids("run1", max_attempts=2) == {"a"}  # b has an attempt left
    # The resumed run starts c again: the killed attempt is retired, not counted twice.
    record(store, "run1", "c", passed=True)
    assert store.get(stale).status == "interrupted"
    assert sorted(e.task_id for e in store.episodes(run_id="run1")) == ["a", "b", "c"]


def test_queries_and_hint_memory(tmp_path):
    store = EpisodeStore(tmp_path / "ep.sqlite")
    for i in range(4):
        record(store, "run1", f"k{i}", passed=i != 0)
    record(
        store,
        "run1",
        "other",
        passed=True,
        sig="E0499 cannot borrow <id> as mutable more than once",
    )
    record(store, "run2", "k9", passed=True, family="lifetimes")
    assert len(store.episodes(run_id="run1", passed=True)) == 4
    assert len(store.episodes(family="lifetimes")) == 1
    hints = store.successes_with_signature(SIG, k=2)
    assert len(hints) == 2 and all(h.passed and h.error_signature == SIG for h in hints)
    assert [h.task_id for h in hints] == ["k9", "k3"]  # most recent first
    stats = store.stats(run_id="run1")
    bc = stats["families"]["borrow_checker"]
    assert (bc["episodes"], bc["passed"]) == (5, 4) and bc["pass_rate"] == pytest.approx(0.8)
    assert bc["top_signatures"][0] == {"signature": SIG, "episodes": 4, "passed": 3}


def test_export_import_is_idempotent(tmp_path):
    src = EpisodeStore(tmp_path / "a.sqlite")
    for i in range(3):
        record(src, "run1", f"k{i}", passed=i % 2 == 0)
    src.start_episode("run1", "unfinished")
    out = tmp_path / "eps.jsonl"
    assert src.export_jsonl(out) == 3
    dst = EpisodeStore(tmp_path / "b.sqlite")
    assert dst.import_jsonl(out) == (3, 0)
    assert dst.import_jsonl(out) == (0, 3)
    assert [e.to_dict() for e in dst.episodes()] == [e.to_dict() for e in src.episodes()]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + '{"run_id": "r", "colour": 1}\n')
    with pytest.raises(EpisodeError, match=r"bad.jsonl:4: not an episode"):
        dst.import_jsonl(bad)


def test_cli_export_import_stats(tmp_path, capsys):
    db = tmp_path / "a.sqlite"
    with EpisodeStore(db) as store:
        record(store, "run1", "k1", passed=True)
        record(store, "run1", "k2", passed=False)
    out = tmp_path / "e.jsonl"
    assert sleepy_main(["episodes", "export", "--db", str(db), "--out", str(out)]) == 0
    db2 = tmp_path / "b.sqlite"
    assert sleepy_main(["episodes", "import", "--db", str(db2), str(out)]) == 0
    assert sleepy_main(["episodes", "import", "--db", str(db2), str(out)]) == 0
    assert "added 0, already present 2" in capsys.readouterr().out
    assert sleepy_main(["episodes", "stats", "--db", str(db2), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["families"]["borrow_checker"]["pass_rate"] == 0.5
    assert sleepy_main(["episodes", "stats", "--db", str(db2)]) == 0
    assert "borrow_checker" in capsys.readouterr().out
    assert sleepy_main(["episodes", "stats", "--db", str(tmp_path / "none.sqlite")]) == 1
    assert "no episode database at" in capsys.readouterr().err


WRITER = textwrap.dedent("""
    import sys
    from sleepy.episodes import EpisodeStore
    db, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = EpisodeStore(db)
    for i in range(n):
        eid = store.start_episode(run, f"task{i}", family="borrow_checker")
        for s in range(3):
            store.record_step(eid, {"step": s}, tokens_out=1)
            print(f"{i} {s}", flush=True)  # printed only after the step is committed
        store.finish_episode(eid, passed=True)
""")


def test_several_processes_write_at_once(tmp_path):
    db = tmp_path / "ep.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), f"w{w}", "15"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    store = EpisodeStore(db)
    eps = store.episodes()
    assert len(eps) == 60
    assert all(e.steps == 3 and e.tokens_out == 3 and len(e.trajectory) == 3 for e in eps)
    assert {e.run_id for e in eps} == {"w0", "w1", "w2", "w3"}


def test_sigkill_mid_run_keeps_every_committed_step(tmp_path):
    db = tmp_path / "ep.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), "run1", "100000"], stdout=subprocess.PIPE, text=True
    )
    seen = [proc.stdout.readline().split() for _ in range(20)]  # 6 episodes done, 7th at step 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read().split("\n")  # lines flushed before the kill (committed steps too)
    committed = [line.split() for line in rest if line] + seen
    last_ep, last_step = max((int(i), int(s)) for i, s in committed)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = EpisodeStore(db)
    done = store.episodes(run_id="run1")
    assert len(done) >= 6 and all(e.steps == 3 for e in done)
    assert all(f"task{i}" in {e.task_id for e in done} for i in range(last_ep))
    current = store.episodes(run_id="run1", task_id=f"task{last_ep}", status=None)[0]
    assert current.steps >= last_step + 1  # the step it printed is in the database
    # Resuming carries on after the finished tasks and retires the killed one.
    finished = store.finished_task_ids("run1")
    assert f"task{last_ep}" not in finished or current.status == "done"
    store.start_episode("run1", f"task{last_ep}", family="borrow_checker")
    assert store.get(current.episode_id).status in ("interrupted", "done")


def test_episode_from_dict_rejects_unknown_fields():
    with pytest.raises(EpisodeError, match="colour"):
        Episode.from_dict({"run_id": "r", "task_id": "t", "colour": "red"})
