"""Slurm's own commands (``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``sinfo``), each call
counted, what they print read into plain values, and the pure decisions the Slurm executor makes
from them: what a job asks for, how many fit, its sbatch options, how a job that left no outcome
ended. No hand-written Slurm protocol: whatever cluster the ``sbatch`` on PATH talks to
(``SLURM_CONF`` honoured)."""
from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core.errors import MLPipelineError, UsageError
from ..core.layout import SlurmSettings
from ..core.lifecycle import Job, Outcome, RunStatus, VersionSpec
from ..core.resources import Resources

COMMAND_TIMEOUT = 60.0     # a Slurm command that has not answered in this long failed (slurmctld is busy)
ENDED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
                "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"}
USABLE_NODE = re.compile(r"^(idle|mix|mixed|alloc|allocated|comp|completing|plnd|planned)[~#$@^-]?$")


class SlurmError(MLPipelineError):
    """A Slurm command failed in a way the runner cannot go on from (sbatch refused a job)."""


@dataclass(frozen=True)
class JobState:
    """One job as ``squeue`` or ``sacct`` shows it."""

    state: str              # RUNNING, PENDING, COMPLETED, TIMEOUT, NODE_FAIL, ... (the base word)
    node: str = ""
    reason: str = ""


@dataclass(frozen=True)
class NodeInfo:
    """One node of the partition as ``sinfo`` shows it."""

    name: str
    cpus: int
    gpus: int
    memory_mb: int
    state: str

    @property
    def usable(self) -> bool:
        return bool(USABLE_NODE.match(self.state))


class SlurmCommands:
    """The cluster's commands, each call counted by name (``calls``): the bench holds a poll to two."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, timeout: float = COMMAND_TIMEOUT):
        self.env = None if env is None else {**os.environ, **env}
        self.timeout = timeout
        self.calls: Counter = Counter()

    def _run(self, argv: List[str], check: bool = True) -> subprocess.CompletedProcess:
        self.calls[argv[0]] += 1
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=self.timeout)
        except FileNotFoundError:
            raise UsageError(f"--backend slurm: {argv[0]} is not on PATH; run the runner where the Slurm "
                             f"commands are (a login node), or install Slurm's client") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{argv[0]} did not answer in {self.timeout:g} s (is slurmctld up?)") from None
        if check and done.returncode != 0:
            raise SlurmError(f"{shlex.join(argv[:1])} failed: {_first_line(done.stderr or done.stdout)}")
        return done

    def sbatch(self, args: Sequence[str], script: str) -> str:
        done = self._run(["sbatch", "--parsable", *args, script])
        job_id = done.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {done.stdout.strip()!r}, not a job id")
        return job_id

    def squeue(self, ids: Sequence[str]) -> Dict[str, JobState]:
        """Every job of ``ids`` Slurm still knows, ended ones included (until MinJobAge)."""
        done = self._run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%N|%r"], check=False)
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return {}  # none of them is known any more
            raise SlurmError(f"squeue failed: {_first_line(done.stderr or done.stdout)}")
        return parse_squeue(done.stdout)

    def sacct(self, ids: Sequence[str]) -> Optional[Dict[str, JobState]]:
        """What accounting recorded of ``ids``; None where the cluster keeps no accounting."""
        done = self._run(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobID,State,NodeList,Reason"],
                         check=False)
        if done.returncode != 0:
            return None
        return parse_squeue(done.stdout)

    def find(self, name: str, comment: str) -> Optional[str]:
        """The id of the job Slurm knows by ``name`` and ``comment`` (None: none)."""
        done = self._run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i|%k"], check=False)
        if done.returncode != 0:
            raise SlurmError(f"squeue failed: {_first_line(done.stderr or done.stdout)}")
        for line in done.stdout.splitlines():
            job_id, _, text = line.strip().partition("|")
            if text.strip() == comment and job_id:
                return job_id
        return None

    def scancel(self, ids: Sequence[str], signal: Optional[str] = None) -> None:
        argv = ["scancel"] + ([f"--signal={signal}", "--full"] if signal else []) + list(ids)
        self._run(argv, check=False)  # a job already gone is not an error

    def sinfo(self, partition: Optional[str]) -> List[NodeInfo]:
        argv = ["sinfo", "-h", "-N", "-o", "%N|%c|%G|%m|%t|%P"] + (["-p", partition] if partition else [])
        return parse_sinfo(self._run(argv).stdout, default_only=partition is None)


def slurm_waits(running: List[Dict[str, Any]], timeout: float = 5.0) -> None:
    """Say, in each running row's ``state`` (``status``'s rows), why a Slurm job that has not started yet waits
    (``pending in Slurm (Resources)``): read from Slurm now, one ``squeue`` for all of them, by ``mlpipeline
    status`` only (the dashboard's watcher looks every second and must not call Slurm). Where Slurm cannot be
    asked, the rows stay as they are."""
    waiting = {str(r["slurm_job_id"]): r for r in running if r.get("slurm_job_id") and not r.get("node")}
    if not waiting:
        return
    try:
        seen = SlurmCommands(timeout=timeout).squeue(sorted(waiting))
    except (MLPipelineError, OSError):
        return
    for job_id, row in waiting.items():
        job = seen.get(job_id)
        if job is not None and job.state == "PENDING":
            reason = job.reason if job.reason and job.reason != "None" else ""
            row["state"] = "pending in Slurm" + (f" ({reason})" if reason else "")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def parse_squeue(text: str) -> Dict[str, JobState]:
    """``JOBID|STATE|NODES|REASON`` lines (squeue's -o above, or sacct -P) by job id."""
    states: Dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        state = parts[1].split()[0].rstrip("+") if parts[1].strip() else ""  # sacct: "CANCELLED by 0", "FAILED+"
        states[parts[0].strip()] = JobState(state, parts[2] if len(parts) > 2 else "",
                                            parts[3] if len(parts) > 3 else "")
    return states


def parse_sinfo(text: str, default_only: bool = False) -> List[NodeInfo]:
    """``NODE|CPUS|GRES|MEMORY|STATE|PARTITION`` lines; ``default_only``: the default partition's nodes
    (sinfo marks its name with ``*``)."""
    nodes: Dict[str, NodeInfo] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 6 or (default_only and not parts[5].endswith("*")):
            continue
        gpus = 0
        for gres in re.sub(r"\(.*?\)", "", parts[2]).split(","):  # gpu:a100:4(S:0,2): the socket list first
            fields = gres.split(":")
            if fields[0] == "gpu" and len(fields) > 1 and fields[-1].isdigit():
                gpus += int(fields[-1])
        try:
            nodes[parts[0]] = NodeInfo(parts[0], int(parts[1]), gpus, int(re.sub(r"\D", "", parts[3]) or 0),
                                       parts[4])
        except ValueError:
            continue
    return list(nodes.values())


def job_needs(declared: Resources) -> Tuple[int, int, Optional[int]]:
    """What one version asks a node for, in Slurm's whole units: (GPUs, CPUs, memory MB or None). A
    fraction of a GPU is a whole one here (Slurm shares none)."""
    gpus = int(math.ceil(declared.gpus)) if declared.gpus else 0
    cpus = max(1, int(math.ceil(declared.cpus or 1)))
    memory = int(math.ceil(declared.memory / (1 << 20))) if declared.memory else None
    return gpus, cpus, memory


def slots(nodes: Sequence[NodeInfo], needs: Tuple[int, int, Optional[int]], any_state: bool = False) -> int:
    """How many versions asking ``needs`` each the usable nodes (``any_state``: all of them, down or
    drained too) hold at once."""
    gpus, cpus, memory = needs
    total = 0
    for node in nodes:
        if not node.usable and not any_state:
            continue
        fit = node.cpus // cpus
        if gpus:
            fit = min(fit, node.gpus // gpus)
        if memory and node.memory_mb:
            fit = min(fit, node.memory_mb // memory)
        total += max(0, fit)
    return total


def time_limit(settings: SlurmSettings, timeout: Optional[float]) -> Optional[str]:
    """The job's ``--time``: ``[SLURM] time``, else the runner's --timeout rounded up to a minute with
    one minute more (the runner's own timeout ends the job first, and records it), else none."""
    if settings.time:
        return settings.time
    if timeout:
        return str(int(math.ceil(timeout / 60.0)) + 1)
    return None


def sbatch_args(settings: SlurmSettings, needs: Tuple[int, int, Optional[int]], name: str, folder: str, cwd: str,
                timeout: Optional[float], comment: Optional[str] = None) -> List[str]:
    """The sbatch options of one version's job."""
    gpus, cpus, memory = needs
    args = [f"--job-name={name}", f"--output={os.path.join(folder, 'slurm-%j.out')}", "--open-mode=append",
            f"--chdir={cwd}", "--no-requeue", "--export=ALL", "--ntasks=1", f"--cpus-per-task={cpus}"]
    if gpus:
        args.append(f"--gres=gpu:{gpus}")
    if memory:
        args.append(f"--mem={memory}M")
    for option in ("partition", "account", "qos", "constraint"):
        value = getattr(settings, option)
        if value:
            args.append(f"--{option}={value}")
    limit = time_limit(settings, timeout)
    if limit:
        args.append(f"--time={limit}")
    if comment:
        args.append(f"--comment={comment}")
    return args + list(settings.extra)


REFUSALS = re.compile(r"invalid|unrecognized|not recognized|unknown|not available|not allowed|not permitted|"
                      r"denied|no partition|requires|must be|exceeds|out of range", re.IGNORECASE)
TRANSIENT = re.compile(r"contact|connect|timed out|temporar|try again|did not answer|busy|qos.*limit|"
                       r"limit.*reached", re.IGNORECASE)


def refused(message: str) -> bool:
    """Whether sbatch's error refuses the job for good (a bad option, partition, account...), not for now
    (Slurm not answering, a submit limit reached)."""
    return bool(REFUSALS.search(message)) and not TRANSIENT.search(message)


def comment_of(job: Job) -> str:
    """The ``--comment`` a version's job carries: its run's uid, by which a later runner finds it."""
    return f"mlpipeline:{job.tag or job.run_id}"


def job_name(spec: VersionSpec) -> str:
    stem = os.path.splitext(os.path.basename(spec.rel))[0]
    return re.sub(r"[^A-Za-z0-9_.:+=-]", "_", f"mlp:{stem}:{spec.version}")[:120]


def slurm_outcome(job_id: str, seen: JobState, time_text: Optional[str]) -> Outcome:
    """How a job that ended without writing its outcome ended, from Slurm's word for it."""
    where = f" on {seen.node}" if seen.node else ""
    state = seen.state
    if state in ("TIMEOUT", "DEADLINE"):
        limit = f" ({time_text} min)" if time_text and time_text.isdigit() else (f" ({time_text})" if time_text else "")
        return Outcome(RunStatus.TIMEOUT, reason="timeout",
                       error=f"Slurm ended job {job_id}{where} at its time limit{limit}")
    if state in ("NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REVOKED"):
        what = {"PREEMPTED": "was preempted", "BOOT_FAIL": "failed to boot its node"}.get(state, "lost its node")
        return Outcome(RunStatus.INTERRUPTED, node_lost=True, reason="node_lost",
                       error=f"Slurm job {job_id}{where} {what} ({state}) while the version ran")
    if state == "CANCELLED":
        return Outcome(RunStatus.CANCELLED, error=f"Slurm job {job_id}{where} was cancelled in Slurm (scancel)")
    if state == "OUT_OF_MEMORY":
        return Outcome(RunStatus.FAILED, reason="oom", error=f"Slurm job {job_id}{where} ran out of memory "
                                                             f"(its --mem); declare more memory in resources")
    if state == "":
        return Outcome(RunStatus.INTERRUPTED, error=f"Slurm no longer knows job {job_id} (purged) and it left no "
                                                    f"outcome in its folder")
    return Outcome(RunStatus.FAILED, error=f"Slurm job {job_id}{where} ended {state} without an outcome from the "
                                           f"version (see its output.log and slurm-{job_id}.out)")
