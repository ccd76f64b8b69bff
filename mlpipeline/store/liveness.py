"""Is a ``running`` run still running? Derived where it is read, never trusted
from the row.

A run is running only while its owner lives: the runner that started it (or,
for a test session, the session's own process). On this host that is the
owner's pid *and* its start time (a reused pid is someone else); on another
host, a heartbeat younger than ``OTHER_HOST_STALE_AFTER``. Every reader (runs,
show, compare, status, logs -f, the web page) goes through ``Liveness``; the
runner uses the same function to repair rows when it starts.
"""
from __future__ import annotations

import sqlite3
import time
from typing import Any, Dict, Mapping, Optional, Union

from ..core.lifecycle import RunStatus
from ..proc.system import hostname, pid_alive, process_start
from .reads import Reads, on_connection

RowLike = Union[Mapping[str, Any], sqlite3.Row]
OTHER_HOST_STALE_AFTER = 600.0  # seconds without a heartbeat before another host's owner counts as gone


def owner_alive(owner: Mapping[str, Any], host: str, now: float) -> bool:
    """Is the process described by ``owner`` (host, pid, pid_start, heartbeat_at,
    started_at, and for runners ended_at) alive?"""
    if owner.get("ended_at") is not None:
        return False  # a runner row its runner closed
    if owner.get("host") == host:
        pid = owner.get("pid")
        if not pid_alive(pid):
            return False
        started = owner.get("pid_start")
        return started is None or process_start(pid) == started
    beat = owner.get("heartbeat_at") or owner.get("started_at") or 0
    return now - beat < OTHER_HOST_STALE_AFTER


class Liveness:
    """Answers liveness questions for one read of the ledger (runner rows are
    looked up once each)."""

    def __init__(self, reads: Union[Reads, sqlite3.Connection], host: Optional[str] = None,
                 now: Optional[float] = None):
        if isinstance(reads, sqlite3.Connection):  # a connection of the caller's own
            reads = on_connection(reads)
        self.reads, self.host = reads, hostname() if host is None else host
        self.now = time.time() if now is None else now
        self._runners: Dict[int, bool] = {}

    def runner_alive(self, runner: RowLike) -> bool:
        return owner_alive({k: runner[k] for k in runner.keys()}, self.host, self.now)

    def _runner_id_alive(self, runner_id: int) -> bool:
        if runner_id not in self._runners:
            row = self.reads.runner(runner_id)
            self._runners[runner_id] = row is not None and self.runner_alive(row)
        return self._runners[runner_id]

    def run_alive(self, run: RowLike) -> bool:
        keys = run.keys()
        runner_id = run["runner_id"] if "runner_id" in keys else None
        if runner_id is not None:
            return self._runner_id_alive(runner_id)
        owner: Dict[str, Any] = {k: run[k] for k in ("host", "pid", "pid_start", "heartbeat_at", "started_at")
                                 if k in keys}
        return owner_alive(owner, self.host, self.now)

    def detached(self, run: RowLike) -> bool:
        """A ``running`` run whose runner is gone but whose Slurm job goes on without it: the next
        runner (``-r -u``) adopts it. It reads ``running (detached)``, not interrupted."""
        keys = run.keys()
        return ("slurm_job_id" in keys and bool(run["slurm_job_id"]) and run["status"] == RunStatus.RUNNING.value
                and not self.run_alive(run))

    def derive(self, run: RowLike) -> Dict[str, Any]:
        """The run as a dict, with ``status`` (and ``ended_at``, ``error``) as
        they truly stand: a ``running`` run whose owner is gone is ``interrupted`` — unless it is a
        Slurm job that goes on without its runner (``detached`` is then true)."""
        data = {k: run[k] for k in run.keys()}
        if self.detached(run):
            data["detached"] = True
        elif data.get("status") == RunStatus.RUNNING.value and not self.run_alive(run):
            data["status"] = RunStatus.INTERRUPTED.value
            data["ended_at"] = data.get("heartbeat_at") or data.get("started_at")
            data["error"] = data.get("error") or (f"its runner (pid {data.get('pid')} on {data.get('host')}) "
                                                  f"stopped without finishing it")
            data["derived"] = True
        return data
