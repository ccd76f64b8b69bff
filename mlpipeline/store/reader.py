"""The run ledger, read side: opened read-only, never migrated, never written.

``runs``, ``show``, ``compare``, ``status``, ``logs`` and the web page read
through a ``Reader``. It opens the file with ``mode=ro`` (or ``immutable=1``
when the folder is read-only and SQLite cannot share the WAL index), so it works
on a read-only project and for another user, and it cannot change the file, a
foreign or empty one included.
"""
from __future__ import annotations

import os
import sqlite3
import urllib.parse
from typing import Optional

from ..core.errors import LedgerError, display
from .reads import Reads
from .schema import APPLICATION_ID, DB_NAME, shape_as_newest, unknown_migrations


class Reader(Reads):
    """A read-only connection to the ledger at ``path``, which shows any ledger in the newest
    schema (``schema.shape_as_newest``): readers never migrate, and never branch on its age."""

    def __init__(self, path: str):
        self.path = path
        self._shown = display(path)
        self.immutable = False
        self._copy_dir = ""
        self.conn = self._connect()
        self.applied = self._check()
        shape_as_newest(self.conn, self.applied)
        self.conn.execute("PRAGMA query_only = 1")

    def _connect(self) -> sqlite3.Connection:
        quoted = urllib.parse.quote(os.path.abspath(self.path))
        try:
            conn = sqlite3.connect(f"file:{quoted}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise LedgerError(f"{self._shown}: cannot read the ledger ({exc})") from None
            # A folder we may not write: SQLite cannot create the WAL index (-shm) next to the file.
            conn = self._read_elsewhere(quoted)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self._shown}: not a usable SQLite ledger ({exc}); move it aside "
                              f"(mlpipeline will not overwrite it)") from None
        conn.row_factory = sqlite3.Row
        return conn

    def _read_elsewhere(self, quoted: str) -> sqlite3.Connection:
        """Read a ledger whose folder we may not write. Without a WAL, the file
        as it is (``immutable``). With one (a runner died, or still runs as
        someone else), a private copy of the file and its WAL, so that what the
        WAL holds is read too; the copy goes when the reader closes."""
        wal = self.path + "-wal"
        try:
            if os.path.getsize(wal) > 0:
                import shutil
                import tempfile

                self._copy_dir = tempfile.mkdtemp(prefix="mlpipeline-read-")
                copy = os.path.join(self._copy_dir, DB_NAME)
                shutil.copyfile(self.path, copy)
                shutil.copyfile(wal, copy + "-wal")
                quoted = urllib.parse.quote(copy)
                target = f"file:{quoted}?mode=ro"
            else:
                target = f"file:{quoted}?immutable=1"
        except OSError:
            target = f"file:{quoted}?immutable=1"
        try:
            conn = sqlite3.connect(target, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as again:
            raise LedgerError(f"{self._shown}: cannot read the ledger ({again}); check that you may read the "
                              f"file and its folder") from None
        self.immutable = True
        return conn

    def _check(self) -> set:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id not in (0, APPLICATION_ID) or "migrations" not in tables or "runs" not in tables:
            if not tables and app_id == 0:
                raise LedgerError(f"{self._shown}: is empty, not a ledger; move it aside, then run mlpipeline to "
                                  f"record runs")
            raise LedgerError(f"{self._shown}: is not an mlpipeline ledger (another program's SQLite database); "
                              f"move it aside (mlpipeline will not overwrite it)")
        applied = {row[0] for row in self.conn.execute("SELECT name FROM migrations")}
        unknown = unknown_migrations(applied)
        if unknown:
            raise LedgerError(f"{self._shown}: written by a newer mlpipeline (schema {unknown[-1]}); "
                              f"upgrade mlpipeline to read it")
        return applied

    def has(self, migration_prefix: str) -> bool:
        """Has the schema reached the migration whose name starts with this?"""
        return any(name.startswith(migration_prefix) for name in self.applied)

    def close(self) -> None:
        self.conn.close()
        if self._copy_dir:
            import shutil

            shutil.rmtree(self._copy_dir, ignore_errors=True)
            self._copy_dir = ""

    def __del__(self) -> None:
        if getattr(self, "_copy_dir", ""):
            import shutil

            shutil.rmtree(self._copy_dir, ignore_errors=True)


def open_reader(outputs_dir: str) -> Optional[Reader]:
    """The project's ledger, read-only; None when nothing was recorded yet."""
    path = os.path.join(outputs_dir, DB_NAME)
    if not os.path.exists(path):
        return None
    return Reader(path)
