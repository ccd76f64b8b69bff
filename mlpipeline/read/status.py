"""What a project's runner is doing, and asking it to act.

``project_status`` reads: the runner (alive or not, derived by ``liveness``),
running versions, the queue snapshot the runner keeps, what is skipped and why.
It writes nothing. ``request`` is how any other process asks the runner to
cancel, pause, resume, rerun or reorder: one row in the requests table, acted
on at the runner's next step.
"""
from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple

from ..plan.config import Project
from ..core.errors import MLPipelineError, UsageError, display
from ..store.ledger import add_request
from ..store.liveness import Liveness
from ..core.text import elapsed_text
from ..core.lifecycle import Mode, QueueState, RunStatus
from ..core.text import iso
from .queries import resolve_run
from ..store.reader import Reader


def _last_metric(ledger: Reader, run_id: int) -> Optional[str]:
    """The point recorded last (from the summaries: a run's curves are never scanned)."""
    row = ledger.last_point(run_id)
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
    paused = alive and row["paused_at"] is not None
    return {
        "id": row["id"], "pid": row["pid"], "host": row["host"], "mode": row["mode"],
        "started": iso(row["started_at"]), "heartbeat": iso(row["heartbeat_at"]),
        "ended": iso(row["ended_at"] if row["ended_at"] is not None or alive else row["heartbeat_at"]),
        "alive": alive, "paused": paused, "options": options, "config_error": row["config_error"],
        "options_text": ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                                  for k, v in options.items() if v not in (None, False)),
    }


def would_run(project: Project, ledger: Optional[Reader]) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """What ``mlpipeline -r -u`` would do now, while no runner works on the project: the queue
    as the configs stand, from the script descriptions the ledger has cached (nothing is loaded
    here; a script not described yet says so), and the config error, if any."""
    from ..plan.describe import Describer
    from ..plan.planner import Planner, unchanged_since

    describer = Describer(project.root, ledger.cached_script if ledger is not None else lambda key: None,
                          lambda key, entry: None, load=False)
    try:
        plan = Planner(project, describer, project.config_path(False), None, lambda *a, **k: None).plan()
    except MLPipelineError as exc:
        return [], str(exc)
    entries: List[Tuple[str, Optional[str], str, Optional[str]]] = []
    succeeded: Dict[str, Any] = {}
    for item in plan.items:
        if item.rel not in succeeded:
            succeeded[item.rel] = ledger.succeeded_last(item.rel) if ledger is not None else {}
        done = unchanged_since(item, succeeded[item.rel].get(item.spec.version))
        state, reason = (QueueState.SKIPPED, ALREADY) if done else (QueueState.QUEUED, None)
        entries.append((item.rel, item.spec.version, state.value, reason))
    for slot in plan.searches:
        entries.append((slot.rel, slot.decl["name"], *_search_state(ledger, slot)))
    entries += [(rel, None, "queued", "not loaded yet: its versions are learnt when a runner starts")
                for rel in plan.pending]
    entries += [(script, version, "skipped", reason) for script, version, reason in plan.skipped]
    # an entry the config gets wrong (a broken argument line) stops `-r -u` before it starts: said as its error
    error = plan.config_error or ("; ".join(plan.problems) if plan.problems else None)
    return [{"position": i + 1, "script": s, "version": v, "state": state, "reason": reason}
            for i, (s, v, state, reason) in enumerate(entries)], error


ALREADY = "already succeeded with this code, data and these parameters (-u)"


def _search_state(ledger: Optional[Reader], slot: Any) -> Tuple[str, str]:
    """A search as ``-u`` would take it up: how many of its points were tried with this code."""
    from ..script.space import is_point_name

    name, budget = slot.decl["name"], int(slot.decl["budget"])
    tried = {r["version"] for r in (ledger.search_runs(slot.rel, name, slot.info.fingerprint or slot.info.sha256)
                                    if ledger is not None else []) if is_point_name(name, r["version"])}
    if len(tried) >= budget:
        return "skipped", f"search: its budget of {budget} points is spent (-u)"
    return QueueState.QUEUED.value, (f"search: {len(tried)} of {budget} points tried, up to "
                                     f"{slot.decl['parallel']} at a time")


def project_status(project: Project, ledger: Optional[Reader], now: Optional[float] = None) -> Dict[str, Any]:
    """The runner (alive or not), running versions, the queue in run order and
    what is skipped with why. Runs a dead runner left ``running`` read
    ``interrupted`` (and are listed under ``interrupted``). With no runner at
    work, the queue is what ``mlpipeline -r -u`` would run (``preview``)."""
    if ledger is None:
        queue, error = would_run(project, None)
        return {"runner": None, "running": [], "queue": queue, "preview": True, "config_error": error,
                "interrupted": []}
    now = time.time() if now is None else now
    liveness = Liveness(ledger, now=now)
    runner = _runner(ledger, liveness)
    running, gone = [], []
    for row in ledger.running_runs():
        derived = liveness.derive(row)
        if derived["status"] != RunStatus.RUNNING.value:
            gone.append(row["id"])
            continue
        running.append({"id": row["id"], "script": row["script"], "version": row["version"], "node": row["node"],
                        "gpu": row["gpu"],
                        "elapsed": elapsed_text(now - row["started_at"]),
                        "last_metric": _last_metric(ledger, row["id"]),
                        "state": QueueState.RUNNING.value + (" (detached)" if derived.get("detached") else ""),
                        "slurm_job_id": row["slurm_job_id"]})
    alive = bool(runner and runner["alive"])
    if runner and alive:
        queue = [{"position": q["position"] + 1, "script": q["script"], "version": q["version"],
                  "state": q["state"], "reason": q["reason"]} for q in ledger.queue(runner["id"])]
        config_error = runner["config_error"]
    else:
        queue, config_error = would_run(project, ledger)
    return {"runner": runner, "running": running, "queue": queue, "preview": not alive,
            "config_error": config_error, "interrupted": gone}


def _live_runner(project: Project, ledger: Reader) -> Dict[str, Any]:
    runner = _runner(ledger, Liveness(ledger))
    if runner is None or not runner["alive"]:
        raise UsageError(f"{display(project.root)}: no runner is working on this project; start one with "
                         f"mlpipeline -r")
    return runner


def request(project: Project, ledger: Reader, kind: str, ref: Optional[str] = None,
            payload: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Ask the project's runner to act; returns at once with what was asked.

    ``cancel`` takes a running run (``ref``); ``pause``/``resume`` the whole
    runner; ``rerun`` a version (``payload`` script, version, or the version of run
    ``ref``) to run again in this batch; ``reorder`` a list of [script, version] to run first."""
    run = None
    if kind == "cancel":
        run = resolve_run(ledger, str(ref))
        if run["status"] != RunStatus.RUNNING.value:
            raise UsageError(f"run {run['id']} is not running (status {run['status']}); only a running version "
                             f"can be cancelled")
        if run["mode"] == Mode.TEST.value:
            raise UsageError(f"run {run['id']} runs in a test session; stop that session with Ctrl+C")
    if kind == "rerun" and ref is not None and payload is None:  # a run's version (mlpipeline rerun RUN)
        run = resolve_run(ledger, str(ref))
        if not run["version"]:
            raise UsageError(f"run {run['id']} is not a version's run (its script failed to load); nothing to run "
                             f"again")
        payload = {"script": run["script"], "version": run["version"]}
    runner = _live_runner(project, ledger)
    request_id = add_request(project.ledger_path, kind,
                             run_id=run["id"] if run else None, payload=payload)
    return {"request": request_id, "kind": kind, "run": run, "runner": runner}
