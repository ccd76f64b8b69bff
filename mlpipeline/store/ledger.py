"""The run ledger, write side: one SQLite file per project, ``outputs/mlpipeline.db``.

WAL mode, a busy timeout, short transactions through ``Ledger.tx``, and the
schema under named migrations that only the writer applies. The runner (or a
test session) is its only writer; a run's status changes in one place,
``Ledger.set_status``. Readers open it read-only through ``reader.Reader``;
other processes ask the runner to act through ``add_request``.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..core.errors import LedgerError, StorageError, display, unwritable
from ..core.lifecycle import MetricRow, Mode, RunStatus
from .reads import Reads
from .schema import APPLICATION_ID, DB_NAME, MIGRATIONS, unknown_migrations

__all__ = ["DB_NAME", "Ledger", "add_request", "open_ledger"]

WAL_CHECKPOINT_ABOVE = 16 << 20  # bytes of WAL after which the writer truncates it
JOURNAL_SIZE_LIMIT = 64 << 20
BUSY_TIMEOUT_MS = 2000  # SQLite's own wait for a lock; past it the writer backs off and tries again

OUTPUT_COLUMNS = ("name", "sha256", "path", "kind", "summary", "size", "script", "version", "script_sha256",
                  "code_fingerprint", "params_sha256", "data_fingerprint")


class Ledger(Reads):
    """The writer: open (creating or migrating) the ledger at ``path``.

    Only the runner, or a test session recording its runs, holds one."""

    def __init__(self, path: str, clock=time.time):
        self.path = path
        self.clock = clock
        shown = display(path)
        self._shown = shown
        self._last_checkpoint = 0.0
        self.on_busy: Callable[[str], None] = lambda message: None  # told when another program holds the lock
        self.give_up: Callable[[], bool] = lambda: False             # asked while waiting for it
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:
            raise LedgerError(f"{display(folder)}: exists but is not a folder; mlpipeline keeps its outputs "
                              f"there: move that file aside") from None
        except OSError as exc:
            raise LedgerError(f"{display(folder)}: cannot create the outputs folder ({exc.strerror})") from None
        try:
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._check_ours()
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            self._migrate()
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) or "readonly" in str(exc):
                raise LedgerError(f"{shown}: cannot open the ledger for writing ({exc}): {self._unwritable()}; "
                                  f"fix the permissions (or run as its owner); reading commands (runs, show, "
                                  f"status) still work") from None
            raise LedgerError(f"{shown}: cannot use the ledger ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{shown}: not a usable SQLite ledger ({exc}); move it aside and run again "
                              f"(mlpipeline will not overwrite it)") from None

    def _unwritable(self) -> str:
        """Which of the ledger's files (or its folder) is not writable by this user."""
        culprit = unwritable(os.path.dirname(os.path.abspath(self.path)), self.path, self.path + "-wal",
                             self.path + "-shm")
        return f"not writable by you (uid {os.getuid()}): {culprit}" if culprit else "its folder or files are not writable"

    def _check_ours(self) -> None:
        """Refuse a file that is some other program's database, or a newer ledger,
        before changing anything in it."""
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables and "migrations" not in tables):
            raise LedgerError(f"{self._shown}: is not an mlpipeline ledger (another program's SQLite database); "
                              f"move it aside and run again (mlpipeline will not overwrite it)")
        if "migrations" in tables:
            applied = {row[0] for row in self.conn.execute("SELECT name FROM migrations")}
            unknown = unknown_migrations(applied)
            if unknown:
                raise LedgerError(f"{self._shown}: written by a newer mlpipeline (schema {unknown[-1]}); "
                                  f"upgrade mlpipeline to read it")

    def close(self) -> None:
        self.conn.close()

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting out another program that holds the write lock
        (a VACUUM, a DB browser) for as long as it takes: the versions keep
        running meanwhile, and nothing recorded is lost."""
        delay, said = 0.05, False
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                if said:
                    self.on_busy(f"{self._shown}: the ledger is free again; recording goes on")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if self.give_up():
                    raise StorageError(f"{self._shown}: another program holds the ledger's write lock; stopped "
                                       f"waiting for it as asked") from None
                if not said:
                    said = True
                    self.on_busy(f"{self._shown}: another program holds the ledger's write lock (a VACUUM, a DB "
                                 f"browser?); waiting for it, the running versions go on")
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction. A write the disk refuses becomes a
        StorageError; the transaction is rolled back, so what was recorded stays."""
        try:
            self._begin()
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:  # never leave the connection inside a failed transaction
                        self.conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "full" in text or "disk I/O" in text:
                raise StorageError(f"{self._shown}: cannot write to the ledger ({text}); free some space and run "
                                   f"again: what was recorded is kept") from None
            if "readonly" in text or "unable to open" in text:
                raise StorageError(f"{self._shown}: cannot write to the ledger ({text}): {self._unwritable()}; fix "
                                   f"the permissions (or run as its owner) and run again: what was recorded is "
                                   f"kept") from None
            raise

    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            applied = {row[0] for row in db.execute("SELECT name FROM migrations")}
            for name, script in MIGRATIONS:
                if name not in applied:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, self.clock()))
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def checkpoint(self, now: float, every: float = 2.0) -> None:
        """Keep the WAL bounded while readers come and go: when it has grown past
        ``WAL_CHECKPOINT_ABOVE``, copy it back and truncate it. Waits for readers
        only briefly; a busy attempt is simply tried again later."""
        if now - self._last_checkpoint < every:
            return
        self._last_checkpoint = now
        try:
            size = os.path.getsize(self.path + "-wal")
        except OSError:
            return
        if size < WAL_CHECKPOINT_ABOVE:
            return
        self.conn.execute("PRAGMA busy_timeout = 200")
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError:
            pass
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    # -- runs ---------------------------------------------------------------

    def start_run(self, *, script: str, version: Optional[str], mode: Mode, host: str,
                  params: Optional[Dict[str, Any]] = None, **fields: Any) -> sqlite3.Row:
        """Insert a run as ``running`` and return its row (``pid`` and ``pid_start``,
        the owner's identity, come with ``fields``)."""
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

    def add_params(self, run_id: int, params: Mapping[str, Any]) -> None:
        """Merge ``params`` over the run's recorded parameters (``params_sha256`` stays the version's own)."""
        with self.tx() as db:
            row = db.execute("SELECT params FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None:
                merged = {**json.loads(row[0] or "{}"), **params}
                db.execute("UPDATE runs SET params = ? WHERE id = ?", (json.dumps(merged, sort_keys=True), run_id))

    def _update(self, run_id: int, fields: Dict[str, Any]) -> None:
        if not fields:
            return
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self.tx() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))

    def add_metrics(self, run_id: int, rows: Iterable[MetricRow]) -> None:
        """Record a batch of points and fold them into the run's per-metric summary."""
        rows = list(rows)
        if rows:
            with self.tx() as db:
                self.insert_metrics(db, run_id, rows, self.clock())

    @staticmethod
    def insert_metrics(db: sqlite3.Connection, run_id: int, rows: Sequence[MetricRow], now: float) -> None:
        """``add_metrics`` inside a transaction the caller holds."""
        groups: Dict[Tuple[str, str], List[MetricRow]] = {}  # curve points (with a step) per (split, name)
        results: Dict[Tuple[str, str], Optional[float]] = {}  # the last value given without a step: a result
        for row in rows:
            if row.step is None:
                results[(row.split, row.name)] = row.value
                continue
            group = groups.get((row.split, row.name))
            if group is None:
                groups[(row.split, row.name)] = [row]
            else:
                group.append(row)
        curves = []
        for (split, name), group in groups.items():
            values = [r.value for r in group if r.value is not None and r.value == r.value]  # NaN is no min
            curves.append((run_id, split, name, len(group), group[0].step, group[-1].step, group[-1].value,
                           min(values) if values else None, max(values) if values else None, now))
        db.executemany("INSERT INTO metrics (run_id, split, name, step, value, recorded_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", [(run_id, r.split, r.name, r.step, r.value, now) for r in rows])
        db.executemany(
            "INSERT INTO metric_summary (run_id, split, name, count, first_step, last_step, last, min, max, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, split, name) DO UPDATE SET "
            "count = count + excluded.count, first_step = COALESCE(first_step, excluded.first_step), "
            "last_step = excluded.last_step, last = excluded.last, "
            "min = CASE WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END, "
            "max = CASE WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END, "
            "updated_at = excluded.updated_at", curves)
        db.executemany(
            "INSERT INTO metric_summary (run_id, split, name, count, final, has_final, updated_at) "
            "VALUES (?, ?, ?, 0, ?, 1, ?) ON CONFLICT (run_id, split, name) DO UPDATE SET "
            "final = excluded.final, has_final = 1, updated_at = excluded.updated_at",
            [(run_id, split, name, value, now) for (split, name), value in results.items()])

    def heartbeats(self, source: Callable[[], Tuple[Sequence[int], Optional[int]]],
                   every: float = 2.0) -> Heartbeats:
        """Stamp ``heartbeat_at`` on the runs and the runner ``source`` names,
        every ``every`` seconds, from a thread of its own (an in-process version
        holds the runner's thread for as long as it trains)."""
        return Heartbeats(self, source, every)

    def mark_interrupted(self, rows: Sequence[sqlite3.Row], why: str) -> None:
        """Record runs whose owner is gone as ``interrupted``, ended at their last heartbeat."""
        for row in rows:
            self.set_status(row["id"], RunStatus.INTERRUPTED, ended_at=row["heartbeat_at"] or row["started_at"],
                            error=why)

    def adopt_run(self, run_id: int, runner_id: Optional[int]) -> None:
        """A run a dead runner left going on a cluster, now followed by ``runner_id``: its points are
        cleared (the job's events file is read again from its start) and it is this runner's."""
        with self.tx() as db:
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM metric_summary WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM outputs WHERE run_id = ?", (run_id,))
            db.execute("UPDATE runs SET runner_id = ?, heartbeat_at = ? WHERE id = ?", (runner_id, self.clock(), run_id))

    def end_runners(self, runner_ids: Sequence[int]) -> None:
        """Close the rows of runners that died without closing them."""
        with self.tx() as db:
            db.executemany("UPDATE runners SET ended_at = COALESCE(heartbeat_at, started_at) WHERE id = ?",
                           [(i,) for i in runner_ids])

    # -- runners, queue snapshots and requests ------------------------------

    def register_runner(self, mode: Mode, host: str, options: Dict[str, Any], pid_start: Optional[int]) -> int:
        now = self.clock()
        with self.tx() as db:
            return int(db.execute("INSERT INTO runners (pid, pid_start, host, mode, options, started_at, heartbeat_at) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (os.getpid(), pid_start, host, Mode(mode).value, json.dumps(options), now,
                                   now)).lastrowid or 0)

    def end_runner(self, runner_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE runners SET ended_at = ? WHERE id = ?", (self.clock(), runner_id))

    def set_paused(self, runner_id: int, paused: bool) -> None:
        with self.tx() as db:
            db.execute("UPDATE runners SET paused_at = ? WHERE id = ?", (self.clock() if paused else None, runner_id))

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

    def update_queue(self, runner_id: int, changes: Sequence[Tuple[int, str, Optional[str]]],
                     added: Sequence[Tuple[int, str, Optional[str], str, Optional[str]]] = ()) -> None:
        """Change the state and reason of snapshot rows: (position, state, reason); and
        add rows after the last: (position, script, version, state, reason)."""
        with self.tx() as db:
            db.executemany("UPDATE queue SET state = ?, reason = ? WHERE runner_id = ? AND position = ?",
                           [(state, reason, runner_id, position) for position, state, reason in changes])
            db.executemany("INSERT INTO queue (runner_id, position, script, version, state, reason) "
                           "VALUES (?, ?, ?, ?, ?, ?)", [(runner_id, *row) for row in added])
            db.execute("UPDATE runners SET queue_at = ? WHERE id = ?", (self.clock(), runner_id))

    def consume_request(self, request_id: int, runner_id: Optional[int], result: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE requests SET consumed_at = ?, consumed_by = ?, result = ? WHERE id = ?",
                       (self.clock(), runner_id, result, request_id))

    def import_run(self, row: Mapping[str, Any], metrics: Sequence[MetricRow], recorded_at: float) -> bool:
        """Add a finished run recorded elsewhere (``compat.legacy_import``) with its metrics, once:
        False when its ``source_key`` is already here."""
        with self.tx() as db:
            cursor = db.execute(f"INSERT OR IGNORE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                tuple(row.values()))
            if cursor.rowcount != 1:
                return False
            self.insert_metrics(db, int(cursor.lastrowid or 0), metrics, recorded_at)
        return True

    def add_output(self, run_id: int, fields: Mapping[str, Any]) -> None:
        """Index an output a run stored under outputs/cache/ (``cached_outputs``)."""
        row = {"run_id": run_id, **{c: fields.get(c) for c in OUTPUT_COLUMNS}, "created_at": self.clock()}
        with self.tx() as db:
            db.execute(f"INSERT INTO outputs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                       tuple(row.values()))

    # -- script descriptions, cached by content -----------------------------

    def cache_script(self, sha256: str, info: Dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO script_cache (sha256, info, created_at) VALUES (?, ?, ?)",
                       (sha256, json.dumps(info), self.clock()))

    def record_environment(self, sha256: str, info: str) -> None:
        """Keep an environment (``core.environment``: its JSON) once, under its sha256."""
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO environments (sha256, info, created_at) VALUES (?, ?, ?)",
                       (sha256, info, self.clock()))


class Heartbeats:
    """A thread with its own connection that keeps heartbeats fresh; ``stop`` ends it."""

    def __init__(self, ledger: Ledger, source: Callable[[], Tuple[Sequence[int], Optional[int]]], every: float):
        import threading

        self.ledger, self.source, self.every = ledger, source, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlpipeline-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        conn = sqlite3.connect(self.ledger.path, timeout=1, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.every):
                run_ids, runner_id = self.source()
                now = self.ledger.clock()
                try:
                    if run_ids:
                        conn.execute(f"UPDATE runs SET heartbeat_at = ? WHERE id IN ({','.join('?' * len(run_ids))})",
                                     (now, *run_ids))
                    if runner_id is not None:
                        conn.execute("UPDATE runners SET heartbeat_at = ? WHERE id = ?", (now, runner_id))
                except sqlite3.Error:
                    pass  # busy or full: the next beat tries again; liveness on this host reads the pid anyway
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


REQUEST_KINDS = ("cancel", "pause", "resume", "rerun", "reorder", "tag", "untag", "note", "delete")


def add_request(path: str, kind: str, run_id: Optional[int] = None, payload: Optional[Dict[str, Any]] = None,
                clock=time.time) -> int:
    """Ask the project's runner to act (the one door other processes use): one
    INSERT into the requests table, no migration, nothing else written."""
    if kind not in REQUEST_KINDS:
        raise ValueError(f"unknown request {kind!r}")
    shown = display(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise LedgerError(f"{shown}: cannot open the ledger to send a request ({exc})") from None
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'requests'").fetchone() is None:
            raise LedgerError(f"{shown}: written by an older mlpipeline that takes no requests; start the runner "
                              f"(mlpipeline -r) once to upgrade it")
        cursor = conn.execute("INSERT INTO requests (kind, run_id, payload, created_at, pid) VALUES (?, ?, ?, ?, ?)",
                              (kind, run_id, json.dumps(payload or {}), clock(), os.getpid()))
        return int(cursor.lastrowid or 0)
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc):
            raise LedgerError(f"{shown}: read-only for you, so the runner cannot be asked to act; ask the user who "
                              f"runs it (or fix the file's permissions)") from None
        raise LedgerError(f"{shown}: cannot send the request ({exc})") from None
    finally:
        conn.close()


def open_ledger(outputs_dir: str) -> Ledger:
    return Ledger(os.path.join(outputs_dir, DB_NAME))  # (Project.ledger_path)
