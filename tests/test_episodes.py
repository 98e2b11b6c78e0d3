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


# -- files that are not sleepy's, and damaged ones --------------------------------------------


def test_an_empty_file_is_refused_not_migrated(tmp_path, capsys):
    empty = tmp_path / "episodes.sqlite"
    empty.touch()
    assert sleepy_main(["episodes", "stats", "--db", str(empty)]) == 1
    err = capsys.readouterr().err
    assert (
        "not a usable episode database: it is an empty file" in err
        and len(err.strip().splitlines()) == 1
    )
    assert empty.stat().st_size == 0  # untouched: no tables, no WAL


def test_somebody_elses_sqlite_database_is_refused_not_migrated(tmp_path, capsys):
    other = tmp_path / "inventory.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE parts (name TEXT)")
        c.execute("INSERT INTO parts VALUES ('bolt')")
    before = other.read_bytes()
    assert sleepy_main(["episodes", "stats", "--db", str(other)]) == 1
    err = capsys.readouterr().err
    assert "not sleepy's episode store (tables: parts)" in err
    assert other.read_bytes() == before
    with sqlite3.connect(other) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with pytest.raises(EpisodeError, match="not sleepy's episode store"):
        EpisodeStore(other)  # for writing too


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    notes = tmp_path / "notes.sqlite"
    notes.write_text("these are my notes\n")
    with pytest.raises(EpisodeError, match="it is not an SQLite file"):
        EpisodeStore(notes)
    assert notes.read_text() == "these are my notes\n"


def test_a_damaged_database_fails_its_integrity_check_with_a_clear_error(tmp_path):
    db = tmp_path / "ep.sqlite"
    with EpisodeStore(db) as store:
        for i in range(200):
            record(store, "run1", f"k{i}", passed=i % 2 == 0)
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        pages = c.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 4
    data = bytearray(db.read_bytes())
    for p in range(2, pages - 1):  # scribble over the middle of every page but the first
        mid = p * page + page // 2
        data[mid : mid + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))
    with pytest.raises(EpisodeError) as e:
        EpisodeStore(db, create=False)
    msg = str(e.value)
    assert str(db) in msg and "\n" not in msg
    assert "integrity check" in msg or "not a usable episode database" in msg


def test_a_trajectory_that_is_not_json_names_the_file_and_episode(tmp_path):
    db = tmp_path / "ep.sqlite"
    with EpisodeStore(db) as store:
        eid = record(store, "run1", "k1", passed=True)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE episodes SET trajectory = '[{\"step\": ' WHERE episode_id = ?", (eid,))
    with EpisodeStore(db, create=False) as store:
        with pytest.raises(EpisodeError) as e:
            store.episodes()
    assert str(db) in str(e.value) and eid in str(e.value) and "not valid JSON" in str(e.value)


def test_processes_creating_the_same_new_database_at_once_all_succeed(tmp_path):
    """A new database appears whole, so nobody mistakes another's half-made file for foreign."""
    db = tmp_path / "new" / "ep.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), f"w{w}", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    with EpisodeStore(db, create=False) as store:
        assert len(store.episodes()) == 8
    assert sorted(f.name for f in db.parent.iterdir() if f.name.endswith(".new")) == []


# -- one live process per run -------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from sleepy.episodes import EpisodeStore
    store = EpisodeStore(sys.argv[1])
    with store.own_run(sys.argv[2]):
        print("holding", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    print("released", flush=True)
""")


def hold_run(tmp_path, db, run_id) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_run_held_by_a_live_process_is_refused_then_free_after_it_ends(tmp_path):
    from sleepy.episodes.store import RunOwnedError

    db = tmp_path / "ep.sqlite"
    holder = hold_run(tmp_path, db, "day1")
    try:
        with EpisodeStore(db) as store:
            with pytest.raises(RunOwnedError) as e:
                with store.own_run("day1"):
                    pass
            assert f"pid {holder.pid}" in str(e.value) and "\n" not in str(e.value)
            with store.own_run("day2"):  # other runs are free
                pass
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    with EpisodeStore(db) as store, store.own_run("day1"):
        pass


def test_a_killed_owner_does_not_block_the_resume(tmp_path):
    db = tmp_path / "ep.sqlite"
    holder = hold_run(tmp_path, db, "day1")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with EpisodeStore(db) as store, store.own_run("day1"):
        pass  # the dead pid's claim is taken over at once


def test_a_silent_owner_on_another_host_is_taken_over_once_stale(tmp_path):
    import time

    from sleepy.episodes.store import RunOwnedError

    db = tmp_path / "ep.sqlite"
    with EpisodeStore(db) as store:
        pass
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO run_owners VALUES ('day1', 'x', 'elsewhere', 1, ?)", (time.time(),))
    with EpisodeStore(db) as store:
        with pytest.raises(RunOwnedError, match="on elsewhere"):
            with store.own_run("day1"):
                pass
    with sqlite3.connect(db) as c:
        c.execute("UPDATE run_owners SET heartbeat = heartbeat - 3600")
    with EpisodeStore(db) as store, store.own_run("day1"):
        pass
