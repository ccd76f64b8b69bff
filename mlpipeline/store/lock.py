"""One runner per project: an flock on the ``outputs/`` folder itself.

The kernel drops the lock when its holder dies, however it dies, so a stale
lock is simply one that can be taken. The lock is on the folder, not on a file
in it, so deleting a file cannot let a second runner in; ``runner.lock`` only
says who holds it (pid, host, since), for messages. Nothing tests the lock by
taking it: whether a runner is alive is derived from its row in the ledger
(``liveness``).
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from typing import Any, Dict, Optional

from ..core.errors import LedgerError, MLPipelineError, display

LOCK_NAME = "runner.lock"


class LockHeld(MLPipelineError):
    exit_code = 2


class RunnerLock:
    def __init__(self, outputs_dir: str):
        self.folder = outputs_dir
        self.path = os.path.join(outputs_dir, LOCK_NAME)
        self._fd: Optional[int] = None
        self.previous: Optional[Dict[str, Any]] = None  # who held it last, when we took it over

    def holder(self) -> Optional[Dict[str, Any]]:
        """Who holds (or last held) the lock: runner.lock's text, or, if someone
        deleted that file, the ledger's newest open runner row."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                found = json.loads(handle.read() or "null")
                if isinstance(found, dict):
                    return found
        except (OSError, ValueError):
            pass
        try:
            conn = sqlite3.connect(f"file:{os.path.join(self.folder, 'mlpipeline.db')}?mode=ro", uri=True)
            try:
                row = conn.execute("SELECT pid, host, started_at FROM runners WHERE ended_at IS NULL "
                                   "ORDER BY id DESC LIMIT 1").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return {"pid": row[0], "host": row[1], "since": row[2]} if row else None

    def acquire(self, host: str, mode: str) -> None:
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except (FileExistsError, NotADirectoryError):
            raise LedgerError(f"{display(self.folder)}: exists but is not a folder; mlpipeline keeps its outputs "
                              f"there: move that file aside") from None
        except OSError as exc:
            raise LedgerError(f"{display(self.folder)}: cannot create the outputs folder ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = self.holder() or {}
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who.get("since", 0))) if who else "?"
            raise LockHeld(f"{display(self.folder)}: another runner is working on this project "
                           f"(pid {who.get('pid', '?')} on host {who.get('host', '?')}, since {since}); "
                           f"wait for it, or stop it with kill {who.get('pid', 'PID')}") from None
        self.previous = self.holder()
        self._fd = fd
        try:
            with open(self.path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"pid": os.getpid(), "host": host, "mode": mode, "since": time.time()}))
        except OSError:
            pass  # only informational: the lock is the folder's

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
