"""What a Slurm job runs on its node for one version: the very same child as a local
run (``node.run_version``: same hooks, markers, fork server), its output, events and
outcome written into the run's folder on the shared filesystem, where the runner (or
the next runner, if this one died) follows them as it follows pipes.

The job folder (``<run dir>/slurm``) holds, besides what the runner wrote (``job.json``,
``job.sh``):

- ``placed.json``: the node, its pid, the GPUs Slurm gave it (``CUDA_VISIBLE_DEVICES``)
- ``events.jsonl``: the child's events, one JSON object a line, appended as they come
- ``outcome.json``: how the version ended, written once (renamed into place) at the end
- the script's own output goes to the run's ``output.log``, as on every backend

A job that Slurm ends (time limit, ``scancel``, its node set down) gets SIGTERM: the
version's process group is ended and no outcome is written, so the runner takes the
job's end from Slurm (``timeout``, ``cancelled``, ``node_lost``). A job Slurm requeued
starts over in the same model dir; its events file goes on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
from typing import Any, Dict, List, Optional, Tuple

from ..core.layout import run_log
from ..core.lifecycle import Outcome, RunStatus

JOB_FILE = "job.json"
PLACED_FILE = "placed.json"
EVENTS_FILE = "events.jsonl"
OUTCOME_FILE = "outcome.json"


def job_folder(run_dir: str) -> str:
    return os.path.join(run_dir, "slurm")


def write_json(path: str, data: Any) -> None:
    """Write ``data`` so that a reader on another node sees the old file or the whole new one."""
    partial = f"{path}.{os.getpid()}.part"
    with open(partial, "w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def outcome_to_json(outcome: Outcome) -> Dict[str, Any]:
    data = dataclasses.asdict(outcome)
    data["status"] = outcome.status.value
    return data


def outcome_from_json(data: Dict[str, Any]) -> Outcome:
    known = {f.name for f in dataclasses.fields(Outcome)}
    values = {k: v for k, v in data.items() if k in known}
    values["status"] = RunStatus(values["status"])
    return Outcome(**values)


def slurm_place() -> Tuple[Dict[str, Any], Dict[str, str]]:
    """This node and job as the ledger records them, and the GPUs Slurm gave the job."""
    host = socket.gethostname()
    where = {"host": host, "node": os.environ.get("SLURMD_NODENAME") or host,
             "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    given = os.environ.get("SLURM_JOB_GPUS") or os.environ.get("SLURM_STEP_GPUS")
    if given:  # the node's own GPU indices (CUDA_VISIBLE_DEVICES counts from 0 inside the job's cgroup)
        where["gpu"] = given
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return where, ({"CUDA_VISIBLE_DEVICES": gpus} if gpus is not None else {})


class _Ended(Exception):
    """Slurm signalled the job (its time limit, scancel, its node going down)."""


def _on_signal(signum: int, frame: Any) -> None:
    raise _Ended(signum)


def main(argv: List[str]) -> int:
    from . import node

    folder = argv[0]
    with open(os.path.join(folder, JOB_FILE)) as handle:
        job = json.load(handle)
    payload: Dict[str, Any] = job["payload"]
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    try:
        os.unlink(os.path.join(folder, OUTCOME_FILE))  # a requeued job starts over
    except FileNotFoundError:
        pass
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, _on_signal)
    output_path = run_log(payload["run_dir"])
    events: Optional[Any] = None
    output: Optional[Any] = None
    runs: Any = node.run_version(payload, job["env"], job.get("cwd"), None, place=slurm_place, fork=False)
    try:
        events = open(os.path.join(folder, EVENTS_FILE), "a")
        output = open(output_path, "ab")
        if restart:
            output.write(f"\n[mlpipeline] Slurm requeued job {os.environ.get('SLURM_JOB_ID')} (restart {restart}): "
                         f"the version starts again in the same model dir\n".encode())
        for item in runs:
            if "placed" in item:
                write_json(os.path.join(folder, PLACED_FILE), {**item["placed"], "restart": restart})
            if item.get("out"):
                output.write(item["out"])
                output.flush()
            if item.get("events"):
                events.write("".join(json.dumps(event) + "\n" for event in item["events"]))
                events.flush()
            if "done" in item:
                write_json(os.path.join(folder, OUTCOME_FILE), outcome_to_json(item["done"]))
    except _Ended as ended:
        runs.close()  # the version's group is ended (node.run_version's finally)
        return 128 + int(ended.args[0])
    finally:
        if events is not None:
            events.close()
        if output is not None:
            output.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
