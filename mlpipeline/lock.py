"""One runner per project: an flock'd file in outputs/.

The kernel drops the lock when its holder dies, however it dies, so a stale
lock is simply one that can be taken; the file's text (pid, host, since) only
says who holds a live one. Nothing tests the lock by taking it: whether a
runner is alive is derived from its row in the ledger (``liveness``).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Any, Dict, Optional

from .errors import MLPipelineError, display

LOCK_NAME = "runner.lock"


class LockHeld(MLPipelineError):
    exit_code = 2


class RunnerLock:
    def __init__(self, outputs_dir: str):
        self.path = os.path.join(outputs_dir, LOCK_NAME)
        self._fd: Optional[int] = None
        self.previous: Optional[Dict[str, Any]] = None  # who held it last, when we took it over

    def holder(self) -> Optional[Dict[str, Any]]:
        """What the lock file says (the live holder, or the last one)."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.loads(handle.read() or "null")
        except (OSError, ValueError):
            return None

    def acquire(self, host: str, mode: str) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = self.holder() or {}
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who.get("since", 0))) if who else "?"
            raise LockHeld(f"{display(self.path)}: another runner is working on this project "
                           f"(pid {who.get('pid', '?')} on host {who.get('host', '?')}, since {since}); "
                           f"wait for it, or stop it with kill {who.get('pid', 'PID')}") from None
        self.previous = self.holder()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": host, "mode": mode, "since": time.time()}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
