"""Versions as Slurm jobs, one job each, through the cluster's own commands (``sbatch``,
``squeue``, ``sacct``, ``scancel``, ``sinfo``: whatever cluster the ``sbatch`` on PATH talks
to, ``SLURM_CONF`` honoured).

The queue stays with the runner: at most ``jobs`` versions are in Slurm at once, so an edit
to the configs still decides what runs next. Each job runs ``slurmjob`` on its node, which
runs the same child as a local version and writes its output, events and outcome into the
run's folder on the shared filesystem; this executor follows those files as the local one
follows pipes. Slurm itself is asked once a poll (one ``squeue`` for every job, and one
``sacct`` for jobs that left it, or one ``sinfo`` every ``SIZE_EVERY`` seconds) — never once a
job — and submissions are throttled.

A runner that dies leaves its jobs running: the ledger holds each job id, and the next runner
``adopt``\\ s them (follows their files again and records their outcome).
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..core.errors import MLPipelineError, UsageError
from ..core.layout import SlurmSettings, run_log
from ..core.lifecycle import Ended, Job, Outcome, RunStatus, Sink, VersionSpec
from ..core.resources import KEY as RESOURCES_KEY, ResourceError, Resources, Wait, resources_of
from ..core.timings import timings
from ..proc.protocol import deliver
from ..proc.system import MARK_RUN, project_mark
from .childrun import Echo, child_env
from .slurmcli import (ENDED_STATES, JobState, NodeInfo, SlurmCommands, SlurmError, comment_of, job_name, job_needs,
                       refused, sbatch_args, slots, slurm_outcome, time_limit)
from .slurmjob import (EVENTS_FILE, JOB_FILE, OUTCOME_FILE, PLACED_FILE, job_folder, outcome_from_json,
                       write_json)

log = logging.getLogger(__name__)

READ_LIMIT = 8 << 20      # bytes of a job's events (or output) read in one poll
SILENT_EVERY = 15.0        # seconds between two squeue calls while Slurm does not answer
SIZE_EVERY = 30.0          # seconds between two looks at what the partition can run (sinfo)
OUTCOME_GRACE = 5.0        # a job Slurm says ended may take this long to show its outcome file (NFS)
SUBMIT_RATE = 5.0          # sbatch calls a second at most, in bursts of SUBMIT_BURST
SUBMIT_BURST = 10
JOB_MAIN = ("import sys; del sys.path[0]; from mlpipeline.execution.slurmjob import main; "
            "sys.exit(main(sys.argv[1:]))")


class _Followed:
    """One version's job, as the runner follows it: its files' read positions."""

    def __init__(self, job: Job, sink: Sink, folder: str, echo: Callable[[bytes], None], job_id: str,
                 events_at: int = 0, output_at: int = 0):
        self.job, self.sink, self.folder, self.echo, self.job_id = job, sink, folder, echo, job_id
        self.events_at, self.output_at = events_at, output_at
        self.partial = b""
        self.placed = False
        self.outcome: Optional[Outcome] = None
        self.killed: Optional[Tuple[RunStatus, str]] = None
        self.cancelled_at: Optional[float] = None
        self.forced = False
        self.seen: Optional[JobState] = None      # the last state Slurm gave
        self.ended_at: Optional[float] = None     # when Slurm first said it ended (or stopped knowing it)
        self.heard_at: Optional[float] = None
        self.last_line = ""
        self.caught_up = True   # its events file was read to its end at the last poll
        self.args: List[str] = []               # its sbatch options
        self.tries = 0                          # sbatch calls Slurm did not answer
        self.submit_at: Optional[float] = None  # when to call sbatch again


class SlurmExecutor:
    """Runs each version as a Slurm job, at most ``jobs`` in Slurm at once (default: what the
    partition can run, looked at every SIZE_EVERY seconds)."""

    places_later = True  # a job waits in Slurm's queue before it runs: its sink hears ``started`` with a pid then

    def __init__(self, jobs: Optional[int] = None, cwd: Optional[str] = None,
                 settings: SlurmSettings = SlurmSettings(), gpus_per_version: Optional[float] = None,
                 cpus_per_version: Optional[float] = None, timeout: Optional[float] = None, echo: bool = True,
                 commands: Optional[SlurmCommands] = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, say: Callable[[str, int], None] = lambda text, level: None,
                 python: str = sys.executable):
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.settings = settings
        self.commands = commands or SlurmCommands()
        self.clock, self.sleep, self.say = clock, sleep, say
        self.echo = echo
        self.timeout = timeout
        self.python = python
        self.defaults = Resources(gpus=gpus_per_version or 0.0, cpus=cpus_per_version or 0.0)
        self.project_mark = project_mark(self.cwd)
        self.asked_jobs = jobs is not None
        self.requested = max(1, jobs) if jobs is not None else None
        self._jobs: Dict[int, _Followed] = {}
        self._next_ticket = 1
        self._looked_at = float("-inf")
        self._sized_at = float("-inf")
        self._silent_since: Optional[float] = None
        self._sacct = True  # the cluster keeps accounting (until sacct says otherwise)
        self._recovered: Dict[int, str] = {}  # run id -> the job id recover() found for it
        self._tokens = float(SUBMIT_BURST)
        self._tokens_at = clock()
        self.nodes: List[NodeInfo] = self.commands.sinfo(settings.partition)
        self._sized_at = clock()
        where = f"partition {settings.partition}" if settings.partition else "the default partition"
        if not self.nodes:
            raise UsageError(f"--backend slurm: sinfo shows no node in {where}; check [SLURM] partition in "
                             f"mlp.config (sinfo lists the partitions)")
        self.jobs = self._size(first=True)

    # -- sizing ----------------------------------------------------------------------------------------------

    def _needs(self, spec: Optional[VersionSpec] = None) -> Tuple[int, int, Optional[int]]:
        declared = spec.params.get(RESOURCES_KEY) if spec is not None else None
        return job_needs(resources_of(declared, self.defaults.gpus, self.defaults.cpus or None) if declared else self.defaults)

    def _size(self, first: bool = False) -> int:
        can = slots(self.nodes, self._needs())
        if self.requested is None:
            return max(1, can) if first else can
        if first and self.asked_jobs and can and can < self.requested:
            self.say(f"-j {self.requested}: the partition runs {can} version(s) at once now; up to "
                     f"{self.requested} are submitted and the rest wait in Slurm's queue", logging.INFO)
        return self.requested

    def capacity(self) -> int:
        now = self.clock()
        self._tokens = min(float(SUBMIT_BURST), self._tokens + (now - self._tokens_at) * SUBMIT_RATE)
        self._tokens_at = now
        return max(0, min(self.jobs - len(self._jobs), int(self._tokens)))

    def running(self) -> int:
        return len(self._jobs)

    def fits(self, spec: VersionSpec) -> Optional[Wait]:
        """A declaration that cannot be read, or that no node of the partition could ever hold, never fits;
        any other waits in Slurm's queue."""
        try:
            needs = self._needs(spec)
        except ResourceError as exc:
            return Wait(str(exc), never=True)
        usable = [n for n in self.nodes if n.usable]  # all down for maintenance: what they hold when back
        if self.nodes and slots(usable or self.nodes, needs, any_state=not usable) < 1:
            gpus, cpus, memory = needs
            asks = ", ".join(filter(None, (f"{gpus} GPU(s)" if gpus else "", f"{cpus} CPU(s)",
                                           f"{memory} MB" if memory else "")))
            has = "; ".join(f"{n.name}: {n.cpus} CPUs, {n.gpus} GPUs, {n.memory_mb} MB" for n in self.nodes)
            return Wait(f"asks one Slurm node for {asks}; no node of the partition has that ({has})", never=True)
        return None

    def job_id(self, ticket: int) -> str:
        followed = self._jobs.get(ticket)
        return followed.job_id if followed is not None else ""

    def heard(self, ticket: int) -> Optional[float]:
        followed = self._jobs.get(ticket)
        return None if followed is None else followed.heard_at

    def last_line(self, ticket: int) -> str:
        followed = self._jobs.get(ticket)
        return "" if followed is None else followed.last_line

    # -- submitting --------------------------------------------------------------------------------------------

    def submit(self, job: Job, sink: Sink) -> int:
        if not job.run_dir:
            raise UsageError("--backend slurm runs execution mode (mlpipeline -r --backend slurm); test mode runs here")
        if self.capacity() <= 0:
            raise RuntimeError("SlurmExecutor.submit beyond capacity")
        self._tokens -= 1
        ticket = self._next_ticket
        self._next_ticket += 1
        folder = job_folder(job.run_dir)
        os.makedirs(folder, exist_ok=True)
        env, _ = child_env(self.project_mark, job, f"{os.getpid()}-{ticket}", True)
        payload = {"spec": job.spec.to_json(), "model_dir": job.model_dir, "exec_mode": job.exec_mode,
                   "memory_limit": job.memory_limit, "run_dir": job.run_dir, "run_id": job.run_id}
        write_json(os.path.join(folder, JOB_FILE), {"payload": payload, "env": env, "cwd": self.cwd,
                                                    "timeout": job.timeout, "label": job.label})
        script = os.path.join(folder, "job.sh")
        with open(script, "w") as out:
            out.write(f"#!/bin/sh\n# mlpipeline: {job.spec.label} (run {job.run_id}); its job is {JOB_FILE} beside "
                      f"this file\nexec {shlex.quote(self.python)} -c {shlex.quote(JOB_MAIN)} {shlex.quote(folder)}\n")
        open(run_log(job.run_dir), "ab").close()
        followed = _Followed(job, sink, folder, Echo(self.echo, job.label), "")
        followed.args = sbatch_args(self.settings, self._needs(job.spec), job_name(job.spec), folder, self.cwd,
                                    job.timeout or self.timeout, comment_of(job))
        self._jobs[ticket] = followed
        self._submit(followed)
        return ticket

    def _submit(self, followed: _Followed) -> None:
        """sbatch the job. A refusal (a bad option, partition, account) fails the version alone, in one line;
        Slurm not answering leaves it waiting to be submitted again, with a growing pause (an sbatch that
        timed out may have submitted it: it is looked for by its comment first)."""
        script = os.path.join(followed.folder, "job.sh")
        try:
            if followed.tries:
                found = self.commands.find(job_name(followed.job.spec), comment_of(followed.job))
                if found:
                    self._submitted(followed, found)
                    return
            self._submitted(followed, self.commands.sbatch(followed.args, script))
        except SlurmError as exc:
            if refused(str(exc)):
                followed.outcome = Outcome(RunStatus.FAILED, error=f"sbatch refused its job: {exc}; check [SLURM] "
                                                                   f"in mlp.config and the version's resources")
                return
            followed.tries += 1
            pause = min(60.0, 5.0 * 2 ** (followed.tries - 1))
            followed.submit_at = self.clock() + pause
            if followed.tries == 1 or followed.tries % 5 == 0:
                self.say(f"{followed.job.spec.label}: Slurm did not take its job ({exc}); trying again in "
                         f"{pause:.0f} s", logging.WARNING)

    def _submitted(self, followed: _Followed, job_id: str) -> None:
        followed.job_id, followed.submit_at = job_id, None
        followed.sink.started({"slurm_job_id": job_id})

    def recover(self, row: Mapping[str, Any]) -> Optional[Job]:
        """The job of a run a dead runner left ``running`` in Slurm (None: it has no job to follow). Its id is
        the ledger's, else the one its node wrote, else Slurm's for its comment (a runner killed while sbatch
        answered). A job whose job.json cannot be read is cancelled: it is run again as a new run, never twice
        at once in one model dir."""
        if not row["run_dir"] or not os.path.isdir(job_folder(row["run_dir"])):
            return None
        folder = job_folder(row["run_dir"])
        job_id = row["slurm_job_id"] or (_read_json(os.path.join(folder, PLACED_FILE)) or {}).get("slurm_job_id")
        try:
            with open(os.path.join(folder, JOB_FILE)) as handle:
                data = json.load(handle)
            payload = data["payload"]
            spec = VersionSpec.from_json(payload["spec"])
            job = Job(spec, payload["model_dir"], payload["exec_mode"], payload["run_dir"], data.get("label") or "",
                      data.get("timeout"), payload.get("memory_limit"), data["env"].get(MARK_RUN, ""),
                      int(payload.get("run_id") or row["id"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            if job_id:
                self.say(f"run {row['id']}: its {JOB_FILE} cannot be read; Slurm job {job_id} is cancelled so the "
                         f"version does not run twice at once", logging.WARNING)
                self.commands.scancel([str(job_id)])
            return None
        if not job_id:
            try:
                job_id = self.commands.find(job_name(spec), comment_of(job))
            except SlurmError:
                job_id = None
        if not job_id:
            return None
        self._recovered[job.run_id] = str(job_id)
        return job

    def adopt(self, job: Job, sink: Sink, job_id: Optional[str]) -> int:
        """Follow a job a dead runner submitted: its events from the start (the caller cleared the run's
        points), its output from now on."""
        assert job.run_dir
        job_id = job_id or self._recovered.pop(job.run_id, "")
        sink.started({"slurm_job_id": job_id})
        ticket = self._next_ticket
        self._next_ticket += 1
        try:
            output_at = os.path.getsize(run_log(job.run_dir))
        except OSError:
            output_at = 0
        self._jobs[ticket] = _Followed(job, sink, job_folder(job.run_dir), Echo(self.echo, job.label), job_id,
                                       output_at=output_at)
        self._looked_at = float("-inf")
        return ticket

    # -- following -------------------------------------------------------------------------------------------

    def poll(self, timeout: float) -> List[Ended]:
        if not self._jobs:
            return []
        now = self.clock()
        for followed in self._jobs.values():
            if followed.submit_at is not None and now >= followed.submit_at and followed.killed is None:
                self._submit(followed)
        news = any(self._read(followed) for followed in self._jobs.values())
        every = self.settings.poll if self._silent_since is None else max(self.settings.poll, SILENT_EVERY)
        waiting = any(f.outcome is None and f.job_id for f in self._jobs.values())
        if waiting and now - self._looked_at >= every:
            self._look(now)
        now = self.clock()
        finished: List[Ended] = []
        for ticket, followed in list(self._jobs.items()):
            outcome = self._ended(followed, now)
            if outcome is None:
                if followed.cancelled_at is not None and not followed.forced \
                        and now - followed.cancelled_at > timings().cancel_grace:
                    followed.forced = True  # it did not end on SIGTERM
                    self.commands.scancel([followed.job_id], signal="KILL")
                continue
            del self._jobs[ticket]
            finished.append((ticket, outcome))
        if not finished and not news:  # until the next look at Slurm or the next sbatch, at most ``timeout``
            due = [f.submit_at for f in self._jobs.values() if f.submit_at is not None]
            if waiting:
                due.append(self._looked_at + every)
            wake = min(due) if due else now + timeout
            self.sleep(max(0.0, min(timeout, wake - self.clock())))
        return finished

    def _read(self, followed: _Followed) -> bool:
        """Take what the job's files hold since the last look; True if anything came."""
        came = False
        if not followed.placed:
            placed = _read_json(os.path.join(followed.folder, PLACED_FILE))
            if placed is not None:
                followed.placed = True
                came = True
                followed.sink.started({"pid": placed.get("pid"), "gpu": placed.get("gpu"),
                                       "node": placed.get("node") or placed.get("host"),
                                       "slurm_job_id": placed.get("slurm_job_id") or followed.job_id})
        output = _read_from(run_log(followed.job.run_dir or ""), followed.output_at)
        if output:
            followed.output_at += len(output)
            followed.echo(output)
            followed.heard_at = time.monotonic()
            text = output.rstrip().rsplit(b"\n", 1)[-1].strip()
            if text:
                followed.last_line = text[-500:].decode("utf-8", "replace")
            came = True
        if followed.outcome is None:  # the outcome is written after the last event: read it first
            done = _read_json(os.path.join(followed.folder, OUTCOME_FILE))
            if done is not None:
                try:
                    followed.outcome = outcome_from_json(done)
                except (KeyError, TypeError, ValueError) as exc:
                    followed.outcome = Outcome(RunStatus.FAILED, error=f"its outcome file could not be read ({exc})")
        data = _read_from(os.path.join(followed.folder, EVENTS_FILE), followed.events_at)
        followed.caught_up = len(data) < READ_LIMIT
        if data:
            followed.events_at += len(data)
            lines = (followed.partial + data).split(b"\n")
            followed.partial = lines.pop()
            for line in lines:
                if line.strip() and followed.killed is None:
                    self._deliver(followed, line)
            came = True
        return came or followed.outcome is not None

    def _deliver(self, followed: _Followed, line: bytes) -> None:
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError(f"a line that is not an event object ({line[:40]!r})")
            if event.get("type") in ("result", "error"):
                return  # the outcome file carries them
            deliver(event, followed.sink)
        except MLPipelineError:
            raise  # the runner's own records failed (a full disk): not this version's doing
        except Exception as exc:  # noqa: BLE001 - one version's events never stop the runner
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            self._cancel(followed, RunStatus.FAILED, f"it sent an event the runner cannot record: {reason}; the "
                                                     f"version was ended")

    def _look(self, now: float) -> None:
        """One squeue for every followed job; one sacct for those it no longer lists (or, when due, one
        sinfo): never more than two Slurm calls."""
        self._looked_at = now
        ids = [f.job_id for f in self._jobs.values() if f.job_id]
        if not ids:
            return
        try:
            states = self.commands.squeue(ids)
        except SlurmError as exc:
            if self._silent_since is None:
                self._silent_since = now
                self.say(f"Slurm does not answer ({exc}); the jobs are followed through their files meanwhile",
                         logging.WARNING)
            return
        if self._silent_since is not None:
            self._silent_since = None
            self.say("Slurm answers again", logging.WARNING)
        gone = [f.job_id for f in self._jobs.values() if f.job_id not in states and f.outcome is None]
        if gone and self._sacct:
            accounted = self.commands.sacct(gone)
            if accounted is None:
                self._sacct = False  # no accounting on this cluster: the files and squeue decide
            else:
                states.update(accounted)
        elif now - self._sized_at >= SIZE_EVERY:
            self._sized_at = now
            try:
                self.nodes = self.commands.sinfo(self.settings.partition) or self.nodes
            except SlurmError:
                pass
            self.jobs = self._size()
        for followed in self._jobs.values():
            seen = states.get(followed.job_id, JobState(""))
            if seen.state and seen.state not in ENDED_STATES:  # pending, running, requeued: it goes on
                followed.seen, followed.ended_at = seen, None
                continue
            followed.seen = seen
            if followed.ended_at is None:
                followed.ended_at = now

    def _ended(self, followed: _Followed, now: float) -> Optional[Outcome]:
        if not followed.job_id and followed.outcome is None:  # waiting to be submitted
            if followed.killed is not None:
                status, reason = followed.killed
                return Outcome(status, error=reason)
            return None
        if not followed.caught_up:
            return None  # more events to read first (the next poll reads on without sleeping)
        if followed.outcome is not None:
            if followed.killed is not None:
                status, reason = followed.killed
                return Outcome(status, error=reason)
            return followed.outcome
        if followed.ended_at is None or followed.seen is None:
            return None
        if followed.killed is not None:
            status, reason = followed.killed
            return Outcome(status, error=reason)
        if now - followed.ended_at < OUTCOME_GRACE and followed.seen.state != "":
            return None  # its outcome file may still be on its way
        if followed.seen.state == "" and now - followed.ended_at < OUTCOME_GRACE * 2:
            return None
        return slurm_outcome(followed.job_id, followed.seen,
                             time_limit(self.settings, followed.job.timeout or self.timeout))

    # -- ending ------------------------------------------------------------------------------------------------

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        followed = self._jobs.get(ticket)
        if followed is not None:
            self._cancel(followed, status, reason)

    def _cancel(self, followed: _Followed, status: RunStatus, reason: str) -> None:
        if followed.killed is not None:
            return
        followed.killed = (status, reason)
        followed.cancelled_at = self.clock()
        self._looked_at = float("-inf")  # look at Slurm again at the next poll
        if followed.job_id:
            self.commands.scancel([followed.job_id])  # SIGTERM to the job's processes, SIGKILL after KillWait

    def close(self) -> None:
        """The runner stops with jobs still in Slurm (an error, or Ctrl+C twice): they are cancelled, and
        waited for a little. A runner that is killed never gets here: its jobs go on, and the next runner
        adopts them."""
        left = [f for f in self._jobs.values() if f.outcome is None and f.job_id]
        if left:
            self.commands.scancel([f.job_id for f in left])
            deadline = self.clock() + timings().cancel_grace
            ids = [f.job_id for f in left]
            while self.clock() < deadline:
                try:
                    states = self.commands.squeue(ids)
                except SlurmError:
                    break
                if all(s.state in ENDED_STATES for s in states.values()):
                    break
                self.sleep(0.5)
        self._jobs = {}


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_from(path: str, offset: int, limit: int = READ_LIMIT) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except OSError:
        return b""
