"""What a project's runner is doing, and asking it to act.

``project_status`` reads: the runner (alive or not, derived by ``liveness``),
running versions, the queue snapshot the runner keeps, what is skipped and why.
It writes nothing. ``request`` is how any other process asks the runner to
cancel, pause, resume, rerun or reorder: one row in the requests table, acted
on at the runner's next step.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

from .config import Project
from .errors import UsageError
from .ledger import DB_NAME, add_request
from .liveness import Liveness
from .outputs import elapsed_text
from .queries import iso, resolve_run
from .reader import Reader


def _last_metric(ledger: Reader, run_id: int) -> Optional[str]:
    """The point recorded last (from the summaries: a run's curves are never scanned)."""
    row = ledger.conn.execute("SELECT split, name, last_step AS step, last AS value FROM metric_summary "
                              "WHERE run_id = ? ORDER BY updated_at DESC, last_step DESC LIMIT 1",
                              (run_id,)).fetchone()
    if row is None:
        return None
    step = "" if row["step"] is None else f" @ step {row['step']}"
    value = "nan" if row["value"] is None else f"{row['value']:.4g}"
    return f"{row['split']}/{row['name']}={value}{step}"


def _runner(ledger: Reader, liveness: Liveness) -> Optional[Dict[str, Any]]:
    row = ledger.latest_runner()
    if row is None:
        return None
    options = json.loads(row["options"] or "{}")
    alive = liveness.runner_alive(row)
    keys = row.keys()
    paused = alive and "paused_at" in keys and row["paused_at"] is not None
    return {
        "id": row["id"], "pid": row["pid"], "host": row["host"], "mode": row["mode"],
        "started": iso(row["started_at"]), "heartbeat": iso(row["heartbeat_at"]),
        "ended": iso(row["ended_at"] if row["ended_at"] is not None or alive else row["heartbeat_at"]),
        "alive": alive, "paused": paused, "options": options, "config_error": row["config_error"],
        "options_text": ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                  for k, v in options.items() if v not in (None, False)),
    }


def project_status(project: Project, ledger: Reader, now: Optional[float] = None) -> Dict[str, Any]:
    """The runner (alive or not), running versions, the queue in run order and
    what is skipped with why. Runs a dead runner left ``running`` read
    ``interrupted`` (and are listed under ``interrupted``)."""
    now = time.time() if now is None else now
    liveness = Liveness(ledger.conn, now=now)
    runner = _runner(ledger, liveness)
    running, gone = [], []
    for row in ledger.running_runs():
        derived = liveness.derive(row)
        if derived["status"] != "running":
            gone.append(row["id"])
            continue
        node = row["node"] if "node" in row.keys() else None
        running.append({"id": row["id"], "script": row["script"], "version": row["version"], "node": node,
                        "gpu": row["gpu"],
                        "elapsed": elapsed_text(now - row["started_at"]),
                        "last_metric": _last_metric(ledger, row["id"]), "state": "running"})
    alive = bool(runner and runner["alive"])
    queue = []
    if runner and alive:
        queue = [{"position": q["position"] + 1, "script": q["script"], "version": q["version"],
                  "state": q["state"], "reason": q["reason"]} for q in ledger.queue(runner["id"])]
    return {"runner": runner, "running": running, "queue": queue,
            "config_error": runner["config_error"] if runner and alive else None,
            "interrupted": gone}


def _live_runner(project: Project, ledger: Reader) -> Dict[str, Any]:
    runner = _runner(ledger, Liveness(ledger.conn))
    if runner is None or not runner["alive"]:
        raise UsageError(f"{os.path.relpath(project.root)}: no runner is working on this project; start one with "
                         f"mlpipeline -r")
    return runner


def request(project: Project, ledger: Reader, kind: str, ref: Optional[str] = None,
            payload: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Ask the project's runner to act; returns at once with what was asked.

    ``cancel`` takes a running run (``ref``); ``pause``/``resume`` the whole
    runner; ``rerun`` a version (``payload`` script, version) to run again in this
    batch; ``reorder`` a list of [script, version] to run first."""
    run = None
    if kind == "cancel":
        run = resolve_run(ledger, str(ref))
        if run["status"] != "running":
            raise UsageError(f"run {run['id']} is not running (status {run['status']}); only a running version "
                             f"can be cancelled")
        if run["mode"] == "test":
            raise UsageError(f"run {run['id']} runs in a test session; stop that session with Ctrl+C")
    runner = _live_runner(project, ledger)
    request_id = add_request(os.path.join(project.outputs_dir, DB_NAME), kind,
                             run_id=run["id"] if run else None, payload=payload)
    return {"request": request_id, "kind": kind, "run": run, "runner": runner}
