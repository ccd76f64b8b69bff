"""Is a process alive, and cleaning up after a runner that died.

A run is ``running`` only while the process that owns it (its runner, or the
test-mode process running it in-process) lives: that is derived from the pid
on this host (and the project lock, for a runner) and from the heartbeat for
runs of other hosts, never trusted from the row alone.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Iterable, List, Mapping, Optional

OTHER_HOST_STALE_AFTER = 600.0  # seconds without a heartbeat before another host's run counts as dead


def pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:  # a zombie has exited
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc: trust kill(0)


def owner_alive(row: Mapping, host: str, lock_holder: Optional[int], now: Optional[float] = None) -> bool:
    """Is the owner of this ``running`` run still working on it?

    An execution-mode run belongs to the runner holding the project lock for
    its whole life (``lock_holder``: that pid, or None when the lock is free);
    a test-mode run to its session's process."""
    if row["host"] == host:
        if row["mode"] == "run":
            return lock_holder is not None and row["pid"] == lock_holder
        return pid_alive(row["pid"])
    now = time.time() if now is None else now
    beat = row["heartbeat_at"] or row["started_at"] or 0
    return now - beat < OTHER_HOST_STALE_AFTER


def kill_orphans(pids: Iterable[int], wait: float = 5.0) -> None:
    """Kill the process groups of children a dead runner left behind (they
    would otherwise train on for up to a second, into the same model dirs)."""
    mine: List[int] = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"mlpipeline.child" not in handle.read():
                    continue  # the pid was reused by something else
            os.killpg(pid, signal.SIGKILL)
            mine.append(pid)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while mine and time.monotonic() < deadline:
        mine = [pid for pid in mine if pid_alive(pid)]
        time.sleep(0.01)
