"""The run ledger: one SQLite file per project, ``outputs/mlpipeline.db``.

WAL mode, a busy timeout, short transactions through ``Ledger.tx``, and the
schema under named migrations. The runner parent is its only writer; a run's
status changes in one place, ``Ledger.set_status``.
"""
from __future__ import annotations

import enum
import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import LedgerError, StorageError

DB_NAME = "mlpipeline.db"


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Mode(str, enum.Enum):
    TEST = "test"
    RUN = "run"


MIGRATIONS: Sequence[Tuple[str, str]] = (
    ("0001_runs_and_metrics", """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uid TEXT NOT NULL UNIQUE,
            script TEXT NOT NULL,
            script_sha256 TEXT,
            version TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            params_sha256 TEXT,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER,
            child_pid INTEGER,
            model_dir TEXT,
            run_dir TEXT,
            started_at REAL,
            ended_at REAL,
            heartbeat_at REAL,
            exit_code INTEGER,
            signal INTEGER,
            error TEXT,
            traceback TEXT,
            steps INTEGER,
            eval_train_text TEXT,
            eval_test_text TEXT,
            command TEXT
        );
        CREATE INDEX runs_script_version ON runs (script, version, mode, id);
        CREATE INDEX runs_status ON runs (status);
        CREATE TABLE metrics (
            run_id INTEGER NOT NULL REFERENCES runs (id),
            split TEXT NOT NULL,
            name TEXT NOT NULL,
            step INTEGER,
            value REAL,
            recorded_at REAL NOT NULL
        );
        CREATE INDEX metrics_run ON metrics (run_id, name, step);
    """),
    ("0002_script_cache", """
        CREATE TABLE script_cache (
            sha256 TEXT PRIMARY KEY,
            info TEXT NOT NULL,
            created_at REAL NOT NULL
        );
    """),
    ("0003_reproducibility_and_imports", """
        ALTER TABLE runs ADD COLUMN git_commit TEXT;
        ALTER TABLE runs ADD COLUMN git_dirty INTEGER;
        ALTER TABLE runs ADD COLUMN python_version TEXT;
        ALTER TABLE runs ADD COLUMN packages TEXT;
        ALTER TABLE runs ADD COLUMN seed TEXT;
        ALTER TABLE runs ADD COLUMN source TEXT;
        ALTER TABLE runs ADD COLUMN source_key TEXT;
        CREATE UNIQUE INDEX runs_source_key ON runs (source_key) WHERE source_key IS NOT NULL;
        CREATE INDEX runs_started ON runs (started_at);
        CREATE INDEX metrics_name ON metrics (name, split);
    """),
    ("0004_daemon", """
        CREATE TABLE runners (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            mode TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            started_at REAL NOT NULL,
            heartbeat_at REAL,
            ended_at REAL,
            config_error TEXT,
            queue_at REAL
        );
        CREATE TABLE queue (
            runner_id INTEGER NOT NULL REFERENCES runners (id),
            position INTEGER NOT NULL,
            script TEXT NOT NULL,
            version TEXT,
            state TEXT NOT NULL,
            reason TEXT
        );
        CREATE INDEX queue_runner ON queue (runner_id, position);
        ALTER TABLE runs ADD COLUMN gpu TEXT;
        ALTER TABLE runs ADD COLUMN cancel_requested REAL;
        ALTER TABLE runs ADD COLUMN runner_id INTEGER;
    """),
)


@dataclass
class MetricRow:
    name: str
    value: float
    step: Optional[int] = None
    split: str = "train"


class Ledger:
    """Open (creating or migrating) the ledger at ``path``."""

    def __init__(self, path: str, clock=time.time):
        self.path = path
        self.clock = clock
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
        self._shown = shown
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:
            raise LedgerError(f"{os.path.relpath(folder)}: exists but is not a folder; mlpipeline keeps its outputs "
                              f"there: move that file aside") from None
        except OSError as exc:
            raise LedgerError(f"{os.path.relpath(folder)}: cannot create the outputs folder ({exc.strerror})") from None
        try:
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout = 30000")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) or "readonly" in str(exc):
                raise LedgerError(f"{shown}: cannot open the ledger ({exc}); check that its folder exists and is "
                                  f"writable by you") from None
            raise LedgerError(f"{shown}: cannot use the ledger ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{shown}: not a usable SQLite ledger ({exc}); move it aside and run again "
                              f"(mlpipeline will not overwrite it)") from None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction. A write the disk refuses becomes a
        StorageError; the transaction is rolled back, so what was recorded stays."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "full" in text or "disk I/O" in text or "readonly" in text or "unable to open" in text:
                raise StorageError(f"{self._shown}: cannot write to the ledger ({text}); free some space (or fix the "
                                   f"folder's permissions) and run again: what was recorded is kept") from None
            raise

    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            applied = {row[0] for row in db.execute("SELECT name FROM migrations")}
            known = {name for name, _ in MIGRATIONS}
            unknown = sorted(applied - known)
            if unknown:
                raise LedgerError(f"{self._shown}: written by a newer mlpipeline (schema {unknown[-1]}); "
                                  f"upgrade mlpipeline to read it")
            for name, script in MIGRATIONS:
                if name not in applied:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, self.clock()))

    # -- runs ---------------------------------------------------------------

    def start_run(self, *, script: str, version: Optional[str], mode: Mode, host: str,
                  params: Optional[Dict[str, Any]] = None, **fields: Any) -> sqlite3.Row:
        """Insert a run as ``running`` and return its row."""
        now = self.clock()
        row = {
            "uid": uuid.uuid4().hex, "script": script, "version": version,
            "params": json.dumps(params or {}, sort_keys=True), "mode": Mode(mode).value,
            "status": RunStatus.RUNNING.value, "host": host, "pid": os.getpid(),
            "started_at": now, "heartbeat_at": now, **fields,
        }
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.tx() as db:
            cursor = db.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", tuple(row.values()))
            return db.execute("SELECT * FROM runs WHERE id = ?", (cursor.lastrowid,)).fetchone()

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "status" in fields:
            raise ValueError("change a run's status with set_status")
        self._update(run_id, fields)

    def set_status(self, run_id: int, status: RunStatus, **fields: Any) -> None:
        """The one place a run's status changes; a finished status stamps ``ended_at``."""
        status = RunStatus(status)
        fields["status"] = status.value
        if status.finished:
            fields.setdefault("ended_at", self.clock())
        self._update(run_id, fields)

    def _update(self, run_id: int, fields: Dict[str, Any]) -> None:
        if not fields:
            return
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self.tx() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))

    def add_metrics(self, run_id: int, rows: Iterable[MetricRow]) -> None:
        now = self.clock()
        values = [(run_id, r.split, r.name, r.step, r.value, now) for r in rows]
        if values:
            with self.tx() as db:
                db.executemany("INSERT INTO metrics (run_id, split, name, step, value, recorded_at) "
                               "VALUES (?, ?, ?, ?, ?, ?)", values)

    def get_run(self, run_id: int) -> Optional[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def succeeded_last(self, script: str) -> Dict[str, Tuple[str, str]]:
        """{version: (script_sha256, params_sha256)} for the versions of ``script``
        whose last execution-mode run succeeded: what ``-u`` compares against."""
        rows = self.conn.execute(
            "SELECT version, status, script_sha256, params_sha256 FROM runs WHERE id IN "
            "(SELECT MAX(id) FROM runs WHERE script = ? AND mode = 'run' AND version IS NOT NULL GROUP BY version)",
            (script,))
        return {r["version"]: (r["script_sha256"], r["params_sha256"]) for r in rows
                if r["status"] == RunStatus.SUCCEEDED.value}

    def metrics(self, run_id: int) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()

    def runs(self, ids: Optional[Sequence[int]] = None, limit: Optional[int] = None) -> List[sqlite3.Row]:
        if ids is not None:
            marks = ", ".join("?" for _ in ids)
            return self.conn.execute(f"SELECT * FROM runs WHERE id IN ({marks}) ORDER BY id", tuple(ids)).fetchall()
        sql = "SELECT * FROM runs ORDER BY id DESC"
        return self.conn.execute(sql + (" LIMIT ?" if limit else ""), ((limit,) if limit else ())).fetchall()

    def heartbeat(self, run_ids: Sequence[int], runner_id: Optional[int] = None) -> None:
        now = self.clock()
        with self.tx() as db:
            if run_ids:
                db.execute(f"UPDATE runs SET heartbeat_at = ? WHERE id IN ({','.join('?' * len(run_ids))})",
                           (now, *run_ids))
            if runner_id is not None:
                db.execute("UPDATE runners SET heartbeat_at = ? WHERE id = ?", (now, runner_id))

    def running_runs(self) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runs WHERE status = 'running' ORDER BY id").fetchall()

    def interrupt_stale(self, why: str, host: str, lock_holder: Optional[int]) -> List[sqlite3.Row]:
        """Mark ``running`` runs whose owning process is gone as ``interrupted``
        (runs of live processes, a test session's included, are left alone).
        Returns the rows it marked."""
        from .procs import owner_alive

        now = self.clock()
        stale = [row for row in self.running_runs() if not owner_alive(row, host, lock_holder, now)]
        for row in stale:
            self.set_status(row["id"], RunStatus.INTERRUPTED, ended_at=row["heartbeat_at"] or row["started_at"],
                            error=why)
        dead_runners = [r["id"] for r in self.conn.execute("SELECT * FROM runners WHERE ended_at IS NULL")
                        if not owner_alive(r, host, lock_holder, now)]
        if dead_runners:
            with self.tx() as db:
                db.executemany("UPDATE runners SET ended_at = COALESCE(heartbeat_at, started_at) WHERE id = ?",
                               [(i,) for i in dead_runners])
        return stale

    # -- runners, queue snapshots and cancel requests ----------------------

    def register_runner(self, mode: Mode, host: str, options: Dict[str, Any]) -> int:
        now = self.clock()
        with self.tx() as db:
            return db.execute("INSERT INTO runners (pid, host, mode, options, started_at, heartbeat_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              (os.getpid(), host, Mode(mode).value, json.dumps(options), now, now)).lastrowid

    def end_runner(self, runner_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE runners SET ended_at = ? WHERE id = ?", (self.clock(), runner_id))

    def latest_runner(self) -> Optional[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runners ORDER BY id DESC LIMIT 1").fetchone()

    def write_queue(self, runner_id: int, entries: Sequence[Tuple[str, Optional[str], str, Optional[str]]],
                    config_error: Optional[str]) -> None:
        """Replace the runner's queue snapshot: (script, version, state, reason) in run order."""
        with self.tx() as db:
            db.execute("DELETE FROM queue WHERE runner_id = ?", (runner_id,))
            db.executemany("INSERT INTO queue (runner_id, position, script, version, state, reason) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           [(runner_id, i, *entry) for i, entry in enumerate(entries)])
            db.execute("UPDATE runners SET config_error = ?, queue_at = ? WHERE id = ?",
                       (config_error, self.clock(), runner_id))

    def queue(self, runner_id: int) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM queue WHERE runner_id = ? ORDER BY position", (runner_id,)).fetchall()

    def request_cancel(self, run_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE runs SET cancel_requested = ? WHERE id = ?", (self.clock(), run_id))

    def cancel_requests(self, run_ids: Sequence[int]) -> List[int]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        return [r[0] for r in self.conn.execute(
            f"SELECT id FROM runs WHERE id IN ({marks}) AND cancel_requested IS NOT NULL", tuple(run_ids))]

    # -- script descriptions, cached by content -----------------------------

    def cached_script(self, sha256: str) -> Optional[Dict[str, Any]]:
        row = self.conn.execute("SELECT info FROM script_cache WHERE sha256 = ?", (sha256,)).fetchone()
        return json.loads(row[0]) if row else None

    def cache_script(self, sha256: str, info: Dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO script_cache (sha256, info, created_at) VALUES (?, ?, ?)",
                       (sha256, json.dumps(info), self.clock()))


def open_ledger(outputs_dir: str) -> Ledger:
    return Ledger(os.path.join(outputs_dir, DB_NAME))
