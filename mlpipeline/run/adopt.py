"""Runs a dead runner left going on a cluster: a Slurm job outlives its runner, and the next runner
adopts it — follows its files again and records its outcome — instead of marking it interrupted."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, List, Sequence, Tuple

from ..core.lifecycle import Job
from ..plan.planner import QueueItem
from .events import RunEvents
from .observers import Run

if TYPE_CHECKING:
    from .runner import Runner


def adoptable(executor: Any, stale: Sequence[Any]) -> Tuple[List[Tuple[Any, Job]], List[Any]]:
    """The stale runs whose jobs ``executor`` can follow (with their jobs), and the rest."""
    recover = getattr(executor, "recover", None)
    if recover is None:
        return [], list(stale)
    taken, rest = [], []
    for row in stale:
        job = recover(row)
        if job is None:
            rest.append(row)
        else:
            taken.append((row, job))
    return taken, rest


def still_in_slurm(rows: Sequence[Any]) -> str:
    """What to say of runs marked interrupted whose Slurm jobs may still run ("" for none)."""
    jobs = [f"run {row['id']} is Slurm job {row['slurm_job_id']}" for row in rows if row["slurm_job_id"]]
    return (f"{'; '.join(jobs)}, which may still run: run with --backend slurm to follow it, or scancel it"
            if jobs else "")


def adopt(runner: Runner, row: Any, job: Job) -> None:
    """Follow a run a dead runner left going in Slurm, as if ``runner`` had started it: its points are
    read again from the job's events file, its time so far counts against --timeout."""
    from ..script.loading import ScriptInfo

    item = QueueItem(job.spec, ScriptInfo(job.spec.script, job.spec.script_sha256))
    runner.ledger.adopt_run(row["id"], runner.runner_id)
    events = RunEvents(runner, row["id"], item.label)
    ran_for = max(0.0, time.time() - (row["started_at"] or time.time()))
    run = Run(item, row["id"], 0, runner.clock() - ran_for, runner.options.timeout or job.timeout, job.model_dir)
    run.notes["attempt"] = row["attempt"] or 1
    run.notes["heard"] = time.monotonic()
    events.run = run
    runner.queue.started(item)
    run.ticket = runner.executor.adopt(job, events, row["slurm_job_id"])  # type: ignore[attr-defined]
    runner.active[run.ticket] = run
    run.notes["placed"] = True  # its time so far counts against --timeout, not from now
    job_id = getattr(runner.executor, "job_id", lambda ticket: row["slurm_job_id"])(run.ticket)
    runner.say(f"{item.label}: adopted run {row['id']} (Slurm job {job_id}), which went on after its "
               f"runner stopped; following it", logging.WARNING)
