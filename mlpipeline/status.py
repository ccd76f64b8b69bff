"""What a project's runner is doing, derived from the lock, the ledger and the
queue snapshot the runner keeps there; and cancelling one running version."""
from __future__ import annotations

import json
import time
from typing import Any, Dict, Optional

from .config import Project
from .errors import MLPipelineError, UsageError
from .ledger import Ledger
from .lock import RunnerLock
from .queries import elapsed_text, iso, resolve_run


def _last_metric(ledger: Ledger, run_id: int) -> Optional[str]:
    row = ledger.conn.execute("SELECT split, name, step, value FROM metrics WHERE run_id = ? "
                              "ORDER BY rowid DESC LIMIT 1", (run_id,)).fetchone()
    if row is None:
        return None
    step = "" if row["step"] is None else f" @ step {row['step']}"
    return f"{row['split']}/{row['name']}={row['value']:.4g}{step}"


def project_status(project: Project, ledger: Ledger, now: Optional[float] = None) -> Dict[str, Any]:
    """The runner (alive or not), running versions, the queue in run order and
    what is skipped with why. Runs left ``running`` by a dead runner are marked
    ``interrupted`` here too."""
    now = time.time() if now is None else now
    from .outputs import hostname

    lock = RunnerLock(project.outputs_dir)
    alive = lock.is_held()
    holder = (lock.holder() or {}).get("pid") if alive else None
    recovered = [row["id"] for row in ledger.interrupt_stale("the runner working on it is gone (noticed by "
                                                             "mlpipeline status)", hostname(), holder)]
    row = ledger.latest_runner()
    runner = None
    if row is not None:
        options = json.loads(row["options"] or "{}")
        holder = lock.holder() or {}
        runner = {
            "pid": row["pid"], "host": row["host"], "mode": row["mode"], "started": iso(row["started_at"]),
            "heartbeat": iso(row["heartbeat_at"]), "ended": iso(row["ended_at"]),
            "alive": alive and holder.get("pid") == row["pid"], "options": options,
            "options_text": ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                      for k, v in options.items() if v not in (None, False)),
        }
    running = [{
        "id": r["id"], "script": r["script"], "version": r["version"], "gpu": r["gpu"],
        "elapsed": elapsed_text(now - r["started_at"]), "last_metric": _last_metric(ledger, r["id"]),
        "state": "running",
    } for r in ledger.running_runs()]
    queue = []
    if runner and runner["alive"]:
        queue = [{"position": q["position"] + 1, "script": q["script"], "version": q["version"],
                  "state": q["state"], "reason": q["reason"]} for q in ledger.queue(row["id"])]
    return {"runner": runner, "running": running, "queue": queue,
            "config_error": row["config_error"] if runner and runner["alive"] else None,
            "recovered": recovered}


def cancel_run(project: Project, ledger: Ledger, ref: str, wait: float = 15.0) -> Any:
    """Ask the runner to kill a running version; wait for it to say so."""
    row = resolve_run(ledger, ref)
    if row["status"] != "running":
        raise UsageError(f"run {row['id']} is not running (status {row['status']}); only a running version "
                         f"can be cancelled")
    from .outputs import hostname

    lock = RunnerLock(project.outputs_dir)
    holder = (lock.holder() or {}).get("pid") if lock.is_held() else None
    if ledger.interrupt_stale("the runner working on it is gone (noticed by mlpipeline cancel)", hostname(), holder):
        current = ledger.get_run(row["id"])
        if current["status"] != "running":
            raise UsageError(f"run {row['id']}: its runner is gone; it is now marked interrupted")
    if row["mode"] == "test":
        raise UsageError(f"run {row['id']} runs in a test session; stop that session with Ctrl+C")
    ledger.request_cancel(row["id"])
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = ledger.get_run(row["id"])
        if current["status"] != "running":
            return current
        time.sleep(0.1)
    raise MLPipelineError(f"run {row['id']}: asked the runner to cancel it, but it has not confirmed within "
                          f"{wait:g} s; see mlpipeline status")
