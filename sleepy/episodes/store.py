"""The episode store: every attempt the agent makes, kept in SQLite so that sleep can learn from it.

One row per episode, created when the attempt starts and updated in its own transaction after every
step, so a process killed with SIGKILL loses at most the step it was in. WAL mode and a busy timeout
let several processes record into the same file at once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleepy.files import disk_full
from sleepy.koan.model import Koan

# Episodes that are over; "running" ones belong to a live process or to one that was killed, and
# "interrupted" marks those a stopped run left (or a killed one, once a resumed run starts the
# same attempt again).
FINISHED = ("done", "error")
STATUSES = ("running", "done", "error", "interrupted")

# Each entry moves the schema one version up; append, never edit (databases in the wild are at
# every version). schema_version holds the number of entries applied.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE episodes (
        episode_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        cycle INTEGER NOT NULL DEFAULT 0,
        task_id TEXT NOT NULL,
        attempt_idx INTEGER NOT NULL DEFAULT 0,
        family TEXT,
        pattern TEXT,
        model_id TEXT,
        adapter TEXT,
        edit_format TEXT,
        prompt_hash TEXT,
        error_signature TEXT,
        first_error_signature TEXT,
        final_error_signature TEXT,
        diff_unified TEXT NOT NULL DEFAULT '',
        passed INTEGER NOT NULL DEFAULT 0,
        steps INTEGER NOT NULL DEFAULT 0,
        steps_to_green INTEGER,
        wall_clock_ms INTEGER NOT NULL DEFAULT 0,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        timestamp TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'running',
        error TEXT,
        trajectory TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX episodes_run ON episodes (run_id, task_id, attempt_idx);
    CREATE INDEX episodes_signature ON episodes (error_signature, passed);
    """,
    # One live process records a run: two resuming the same run would each redo its open koans.
    """
    CREATE TABLE run_owners (
        run_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        heartbeat REAL NOT NULL
    );
    """,
    # The koans a day worked on, as it selected them: generated ones exist nowhere else, and sleep
    # reads them from here to pair the day's failures with their fixes.
    """
    CREATE TABLE koans (
        koan_id TEXT PRIMARY KEY,
        koan TEXT NOT NULL
    );
    """,
]
_SQLITE_MAGIC = b"SQLite format 3\x00"
# A run's owner that has not beaten for this long is taken to be dead (a killed process, or a
# machine that went away); on the same host a dead pid is noticed at once.
OWNER_STALE_S = 30.0


class EpisodeError(Exception):
    """A bad request to the store (unknown episode, unreadable file); the message says what to fix."""


class StoreFull(EpisodeError):
    """The disk holding the store is full: the write in hand is lost, every one before it is kept
    (each step is its own transaction)."""


class RunOwnedError(EpisodeError):
    """Another live process is recording this run."""


@dataclass
class Episode:
    """One attempt at one koan: what the agent saw, did, and how it ended."""

    run_id: str
    task_id: str
    attempt_idx: int = 0
    cycle: int = 0
    family: str | None = None
    pattern: str | None = None
    model_id: str | None = None
    adapter: str | None = None  # registry version (or path) of the adapter in use; None for base
    edit_format: str | None = None
    prompt_hash: str | None = None
    error_signature: str | None = None  # the koan's starting error, normalized: hint-memory key
    first_error_signature: str | None = None  # first error the agent's own checks hit
    final_error_signature: str | None = None  # error left at the end; None when passed
    diff_unified: str = ""  # buggy code -> the agent's final code
    passed: bool = False
    steps: int = 0
    steps_to_green: int | None = None
    wall_clock_ms: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    timestamp: str = ""  # UTC ISO-8601, when the episode started
    updated_at: str = ""
    status: str = "running"
    error: str | None = None  # why an episode ended in status "error"
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    episode_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def start_feedback(self) -> str | None:
        """What the sandbox said about the koan's buggy code when the episode started (the
        feedback the agent was first shown); None when the trajectory does not hold it."""
        start = self.trajectory[0] if self.trajectory else {}
        return start.get("feedback") if start.get("kind") == "start" else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Episode:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise EpisodeError(f"unknown episode fields {sorted(unknown)}")
        return cls(**d)


_COLUMNS = [f.name for f in fields(Episode)]
# Fields a step may update besides appending to the trajectory.
_UPDATABLE = set(_COLUMNS) - {"episode_id", "run_id", "task_id", "timestamp", "trajectory"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    """JSON text SQLite can store: a model's reply may hold a lone surrogate (from a JSON reply's
    "\\ud800"), which UTF-8 cannot encode; escaped as \\ud800 it reads back as the same string."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def _text(value: Any) -> Any:
    """A text column SQLite can store: characters UTF-8 cannot encode become backslash escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    row = {k: _text(v) for k, v in values.items() if k != "trajectory"}
    if "trajectory" in values:
        row["trajectory"] = values["trajectory"]
    for key in ("error_signature", "first_error_signature", "final_error_signature"):
        if row.get(key) is not None:  # an ErrorSignature is stored as its readable form
            row[key] = str(row[key])
    if "passed" in row:
        row["passed"] = int(bool(row["passed"]))
    if "trajectory" in row:
        row["trajectory"] = _json(row["trajectory"])
    return row


def _from_row(row: sqlite3.Row, path: Path) -> Episode:
    d = dict(row)
    d["passed"] = bool(d["passed"])
    try:
        d["trajectory"] = json.loads(d["trajectory"])
    except (TypeError, json.JSONDecodeError) as e:
        raise EpisodeError(
            f"{path}: episode {d['episode_id']}: trajectory is not valid JSON ({e}); "
            "the row was edited outside sleepy"
        ) from None
    return Episode(**d)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


class EpisodeStore:
    """Episodes in one SQLite file. Safe to share between threads and between processes."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 60_000, create: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise EpisodeError(f"no episode database at {self.path}")
            try:
                self._create(busy_timeout_ms)
            except (sqlite3.OperationalError, OSError) as e:
                if disk_full(e):
                    raise self._full(e) from None
                raise
        self._check_file()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the lock up
        # front and waits (busy_timeout) instead of failing half-way through a transaction.
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._check_schema()
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a killed process (only an OS crash can lose the last
            # commits), and keeps one fsync per step out of the agent's way.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._db.close()
            if disk_full(e):
                raise self._full(e) from None
            raise EpisodeError(f"{self.path} is not a usable episode database: {e}") from None
        except EpisodeError:
            self._db.close()
            raise

    def _create(self, busy_timeout_ms: int) -> None:
        """A new database, built aside and linked into place whole: whoever opens the path sees
        either nothing or sleepy's schema, never a half-made file (so an empty file is foreign)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.new")
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("BEGIN IMMEDIATE")
                db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
                db.execute("COMMIT")
            finally:
                db.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:  # another process created it first: use theirs
                pass
        finally:
            tmp.unlink(missing_ok=True)

    def _check_file(self) -> None:
        """Refuse what is not sleepy's before anything is written to it."""
        if self.path.is_dir():
            raise EpisodeError(f"{self.path} is a folder, not an episode database")
        try:
            with self.path.open("rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
        except OSError as e:
            raise EpisodeError(f"{self.path}: cannot read ({e.strerror})") from None
        if not head:
            raise EpisodeError(
                f"{self.path} is not a usable episode database: it is an empty file; remove it "
                "or pick another path"
            )
        if head != _SQLITE_MAGIC:
            raise EpisodeError(
                f"{self.path} is not a usable episode database: it is not an SQLite file; pick "
                "another path"
            )

    def _check_schema(self) -> None:
        tables = {
            r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "schema_version" not in tables:
            shown = ", ".join(sorted(tables)[:5]) or "none"
            raise EpisodeError(
                f"{self.path} is an SQLite database but not sleepy's episode store "
                f"(tables: {shown}); sleepy will not change it: pick another path"
            )
        problems = [r[0] for r in self._db.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            first = " ".join(problems[0].split("\n")[:2]).replace("*** in database main *** ", "")
            raise EpisodeError(
                f"{self.path} fails SQLite's integrity check ({first}): restore it from a "
                "copy, or salvage it with `sqlite3 FILE .recover` into a new file"
            )

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    # in WAL mode the pages are written here: where a full disk shows first
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (SQLITE_FULL can end the transaction)
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                if disk_full(e):
                    raise self._full(e) from None
                raise

    def _full(self, e: BaseException) -> StoreFull:
        return StoreFull(
            f"the disk holding {self.path} is full ({e}): the step being recorded is lost, "
            "every episode and step before it is kept"
        )

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = 0
            else:
                version = row[0]
            if version > len(MIGRATIONS):
                raise EpisodeError(
                    f"{self.path} has schema version {version}, newer than this sleepy "
                    f"({len(MIGRATIONS)}): upgrade sleepy"
                )
            for sql in MIGRATIONS[version:]:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))

    @property
    def schema_version(self) -> int:
        return self._db.execute("SELECT version FROM schema_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- run ownership ------------------------------------------------------------------------

    @contextmanager
    def own_run(self, run_id: str, stale_after_s: float = OWNER_STALE_S) -> Iterator[None]:
        """Hold `run_id` for this process while the block runs; a heartbeat keeps the claim.

        Raises RunOwnedError when another live process holds it. A claim left by a process that
        died (its pid gone on this host, or no heartbeat for `stale_after_s`) is taken over.
        When the block ends (stopped by Ctrl-C or SIGTERM, or failed), an episode of the run
        still "running" is marked "interrupted": nobody records it any more, and a resumed run
        does it again.
        """
        me, host, pid = uuid.uuid4().hex, socket.gethostname(), os.getpid()
        with self._write() as db:
            row = db.execute(
                "SELECT host, pid, heartbeat FROM run_owners WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is not None:
                age = time.time() - row["heartbeat"]
                dead = row["host"] == host and not _pid_alive(row["pid"])
                if age < stale_after_s and not dead:
                    raise RunOwnedError(
                        f"run {run_id} is being recorded by another process (pid {row['pid']} on "
                        f"{row['host']}, alive {age:.0f} s ago) in {self.path}: wait for it to "
                        "finish, or use another run_id"
                    )
            db.execute(
                "INSERT OR REPLACE INTO run_owners (run_id, owner, host, pid, heartbeat) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, me, host, pid, time.time()),
            )
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(stale_after_s / 5):
                try:
                    with self._write() as db:
                        db.execute(
                            "UPDATE run_owners SET heartbeat = ? WHERE run_id = ? AND owner = ?",
                            (time.time(), run_id, me),
                        )
                except sqlite3.Error:  # a busy file: the next beat tries again
                    continue

        thread = threading.Thread(target=beat, daemon=True, name=f"sleepy-owner-{run_id}")
        thread.start()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            stop.set()
            thread.join()
            try:
                with self._write() as db:
                    db.execute(
                        "UPDATE episodes SET status = 'interrupted', updated_at = ? "
                        "WHERE run_id = ? AND status = 'running'",
                        (_now(), run_id),
                    )
                    db.execute(
                        "DELETE FROM run_owners WHERE run_id = ? AND owner = ?", (run_id, me)
                    )
            except StoreFull:
                # the run is already failing (on the same full disk): keep its reason; the claim
                # left behind names this pid, which a resume on this host sees is gone
                if not failed:
                    raise

    # -- recording ----------------------------------------------------------------------------

    def start_episode(self, run_id: str, task_id: str, **fields_: Any) -> str:
        """Create the episode row (status "running") and return its id.

        A "running" row for the same run, cycle, task and attempt can only be left over from a
        killed process; it is marked "interrupted" so the resumed attempt does not count twice.
        """
        bad = set(fields_) - _UPDATABLE - {"episode_id", "timestamp", "trajectory"}
        if bad:
            raise EpisodeError(f"unknown episode fields {sorted(bad)}")
        now = _now()
        episode = Episode(run_id=run_id, task_id=task_id, timestamp=now, updated_at=now)
        for key, value in fields_.items():
            setattr(episode, key, value)
        episode.episode_id = episode.episode_id or uuid.uuid4().hex
        episode.status = "running"
        row = _to_row(episode.to_dict())
        with self._write() as db:
            db.execute(
                "UPDATE episodes SET status = 'interrupted', updated_at = ? WHERE run_id = ? "
                "AND cycle = ? AND task_id = ? AND attempt_idx = ? AND status = 'running'",
                (now, run_id, episode.cycle, task_id, episode.attempt_idx),
            )
            db.execute(
                f"INSERT INTO episodes ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        return episode.episode_id

    def record_step(
        self, episode_id: str, step: dict[str, Any] | None = None, **updates: Any
    ) -> None:
        """Append one step (messages, tool call, observation...) and update fields, atomically.

        Counters `tokens_in` and `tokens_out` given here are added to the episode's totals; other
        fields are set.
        """
        self._update(episode_id, step, updates)

    def finish_episode(
        self, episode_id: str, passed: bool, status: str = "done", **updates: Any
    ) -> None:
        """Close an episode: its outcome plus any last fields (diff, final signature, wall clock)."""
        if status not in FINISHED:
            raise EpisodeError(f"finish status must be one of {FINISHED}, not {status!r}")
        self._update(episode_id, None, {**updates, "passed": passed, "status": status})

    def _update(
        self, episode_id: str, step: dict[str, Any] | None, updates: dict[str, Any]
    ) -> None:
        bad = set(updates) - _UPDATABLE
        if bad:
            raise EpisodeError(f"unknown episode fields {sorted(bad)}")
        if "status" in updates and updates["status"] not in STATUSES:
            raise EpisodeError(f"status must be one of {STATUSES}, not {updates['status']!r}")
        row = _to_row(updates)
        sets, args = [], []
        for key, value in row.items():
            if key in ("tokens_in", "tokens_out"):
                sets.append(f"{key} = {key} + ?")
            else:
                sets.append(f"{key} = ?")
            args.append(_text(value))
        if step is not None:
            # json_insert appends in SQL, so a step costs one small UPDATE, not a rewrite.
            sets += ["trajectory = json_insert(trajectory, '$[#]', json(?))", "steps = steps + 1"]
            args.append(_json(step))
        sets.append("updated_at = ?")
        args.append(_now())
        with self._write() as db:
            cur = db.execute(
                f"UPDATE episodes SET {', '.join(sets)} WHERE episode_id = ?", [*args, episode_id]
            )
            if cur.rowcount == 0:
                raise EpisodeError(f"no episode {episode_id!r} in {self.path}")

    def add(self, episode: Episode) -> bool:
        """Insert a whole episode as is (import). Returns False if its id is already there."""
        with self._write() as db:
            return self._insert(db, episode)

    def _insert(self, db: sqlite3.Connection, episode: Episode) -> bool:
        if episode.status not in STATUSES:
            raise EpisodeError(f"status must be one of {STATUSES}, not {episode.status!r}")
        if not episode.episode_id:
            episode.episode_id = uuid.uuid4().hex
        row = _to_row(episode.to_dict())
        cur = db.execute(
            f"INSERT OR IGNORE INTO episodes ({', '.join(row)}) "
            f"VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        return cur.rowcount == 1

    # -- reading ------------------------------------------------------------------------------

    def get(self, episode_id: str) -> Episode:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM episodes WHERE episode_id = ?", (episode_id,)
            ).fetchone()
        if row is None:
            raise EpisodeError(f"no episode {episode_id!r} in {self.path}")
        return _from_row(row, self.path)

    def episodes(
        self,
        run_id: str | None = None,
        cycle: int | None = None,
        passed: bool | None = None,
        family: str | None = None,
        task_id: str | None = None,
        status: str | Iterable[str] | None = FINISHED,
    ) -> list[Episode]:
        """Episodes matching every filter given, oldest first. By default only finished ones."""
        where, args = [], []
        for key, value in (
            ("run_id", run_id),
            ("cycle", cycle),
            ("family", family),
            ("task_id", task_id),
        ):
            if value is not None:
                where.append(f"{key} = ?")
                args.append(value)
        if passed is not None:
            where.append("passed = ?")
            args.append(int(passed))
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        sql = "SELECT * FROM episodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY timestamp, rowid", args).fetchall()
        return [_from_row(r, self.path) for r in rows]

    def finished_task_ids(self, run_id: str, max_attempts: int | None = None) -> set[str]:
        """Tasks a resumed run should skip: passed, or out of attempts.

        Without `max_attempts` any finished episode counts as the task being done.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT task_id, MAX(passed), COUNT(*) FROM episodes WHERE run_id = ? "
                "AND status IN ('done', 'error') GROUP BY task_id",
                (run_id,),
            ).fetchall()
        return {
            task for task, passed, n in rows if passed or max_attempts is None or n >= max_attempts
        }

    def successes_with_signature(self, signature: object, k: int = 3) -> list[Episode]:
        """Up to k most recent passed episodes that started from this error signature (hints)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM episodes WHERE error_signature = ? AND passed = 1 AND status = 'done' "
                "ORDER BY timestamp DESC, rowid DESC LIMIT ?",
                (str(signature), k),
            ).fetchall()
        return [_from_row(r, self.path) for r in rows]

    def stats(self, run_id: str | None = None, cycle: int | None = None, top: int = 5) -> dict:
        """Pass rate and most frequent starting error signatures, overall and per family."""
        eps = self.episodes(run_id=run_id, cycle=cycle)
        per_family: dict[str, list[Episode]] = {}
        for e in eps:
            per_family.setdefault(e.family or "(none)", []).append(e)

        def summary(group: list[Episode]) -> dict:
            counts: dict[str, list[int]] = {}
            for e in group:
                c = counts.setdefault(e.error_signature or "(none)", [0, 0])
                c[0] += 1
                c[1] += e.passed
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
            n = len(group)
            passed = sum(e.passed for e in group)
            return {
                "episodes": n,
                "passed": passed,
                "pass_rate": passed / n if n else 0.0,
                "top_signatures": [
                    {"signature": sig, "episodes": c[0], "passed": c[1]} for sig, c in ranked
                ],
            }

        return {
            "total": summary(eps),
            "families": {fam: summary(group) for fam, group in sorted(per_family.items())},
        }

    # -- the day's koans ----------------------------------------------------------------------

    def add_koans(self, koans: Iterable[Koan]) -> int:
        """Keep the koans a day selected (a koan already here is kept as it was); returns how
        many were new."""
        rows = [(k.id, _json(k.to_dict())) for k in koans]
        with self._write() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO koans (koan_id, koan) VALUES (?, ?)", rows)
            return db.total_changes - before

    def koans(self) -> dict[str, Koan]:
        """The koans the days recorded here worked on, by id."""
        with self._lock:
            rows = self._db.execute("SELECT koan_id, koan FROM koans ORDER BY koan_id").fetchall()
        return {r[0]: Koan.from_dict(json.loads(r[1]), f"{self.path} (koan {r[0]})") for r in rows}

    # -- exchange -----------------------------------------------------------------------------

    def export_jsonl(
        self, out: str | Path, run_id: str | None = None, all_statuses: bool = False
    ) -> int:
        """Write episodes as JSON lines; returns how many."""
        eps = self.episodes(run_id=run_id, status=None if all_statuses else FINISHED)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for e in eps:
                f.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
        return len(eps)

    def import_jsonl(self, path: str | Path) -> tuple[int, int]:
        """Add the episodes of a JSONL file; ones already here (same episode_id) are skipped.

        Returns (added, skipped), so importing the same file twice adds nothing the second time.
        """
        path = Path(path)
        if not path.exists():
            raise EpisodeError(f"no such file: {path}")
        episodes = []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    episode = Episode.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError, EpisodeError) as e:
                    raise EpisodeError(f"{path}:{lineno}: not an episode: {e}") from None
                if not episode.episode_id:
                    raise EpisodeError(f"{path}:{lineno}: episode has no episode_id")
                episodes.append(episode)
        # All or nothing: a file that fails half-way leaves the store as it was.
        with self._write() as db:
            added = sum(self._insert(db, e) for e in episodes)
        return added, len(episodes) - added
