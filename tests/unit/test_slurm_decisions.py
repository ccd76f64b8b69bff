"""The Slurm backend's decisions without a cluster: what Slurm's commands print read into values, what a
version asks a node for, its sbatch options, how a job that left no outcome ended; and ``SlurmExecutor``
following jobs through their files, driven by a fake ``SlurmCommands`` (the one thing that cannot run
here) and a fake clock that only its own sleeps move. The real cluster is tests/slurm."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from mlpipeline.core.errors import UsageError
from mlpipeline.core.layout import SlurmSettings
from mlpipeline.core.lifecycle import Ended, Job, MetricRow, Outcome, RunStatus, VersionSpec
from mlpipeline.core.resources import Resources, Wait
from mlpipeline.execution.slurm import OUTCOME_GRACE, SIZE_EVERY, SUBMIT_BURST, SUBMIT_RATE, SlurmExecutor
from mlpipeline.execution.slurmcli import (JobState, NodeInfo, SlurmError, job_name, job_needs, parse_sinfo, parse_squeue,
                                           sbatch_args, slots, slurm_outcome, time_limit)
from mlpipeline.execution.slurmjob import outcome_to_json, write_json
from mlpipeline.proc.system import MARK_RUN
from mlpipeline.script.modes import ExecutionModeKeys

NODES = [NodeInfo("node1", 32, 2, 128000, "idle"), NodeInfo("node2", 32, 2, 128000, "mix")]
PYTHON = "/opt/cluster/bin/python3"


class Clock:
    """The executor's clock and sleep: time moves only when the executor sleeps (or a test says so)."""

    def __init__(self, now: float = 1000.0):
        self.now = now
        self.slept: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"the executor asked to sleep {seconds} s"
        self.slept.append(seconds)
        self.now += seconds


class FakeSlurm:
    """``SlurmCommands`` as the executor uses it: scripted job states, every call counted and logged with
    the fake clock's time and its arguments."""

    def __init__(self, clock: Clock, nodes: Sequence[NodeInfo] = NODES):
        self.clock = clock
        self.nodes = list(nodes)
        self.calls: Counter = Counter()
        self.log: List[Tuple[str, float, Any]] = []
        self.states: Dict[str, JobState] = {}                  # what squeue still lists
        self.accounting: Optional[Dict[str, JobState]] = {}    # what sacct knows; None: no accounting
        self.submitted: List[Tuple[List[str], str]] = []
        self.cancels: List[Tuple[List[str], Optional[str]]] = []
        self._next_id = 5000

    def _called(self, name: str, args: Any) -> None:
        self.calls[name] += 1
        self.log.append((name, self.clock(), args))

    def times(self, name: str) -> List[float]:
        return [at for called, at, _ in self.log if called == name]

    def sbatch(self, args: Sequence[str], script: str) -> str:
        self._called("sbatch", list(args))
        self._next_id += 1
        job_id = str(self._next_id)
        self.submitted.append((list(args), script))
        self.states[job_id] = JobState("PENDING", "", "Priority")
        return job_id

    def find(self, name: str, comment: str) -> Optional[str]:
        self._called("find", comment)
        for job_id, (args, _) in zip(sorted(self.states), self.submitted):
            if f"--comment={comment}" in args and f"--job-name={name}" in args and job_id in self.states:
                return job_id
        return None

    def squeue(self, ids: Sequence[str]) -> Dict[str, JobState]:
        self._called("squeue", list(ids))
        return {i: self.states[i] for i in ids if i in self.states}

    def sacct(self, ids: Sequence[str]) -> Optional[Dict[str, JobState]]:
        self._called("sacct", list(ids))
        if self.accounting is None:
            return None
        return {i: self.accounting[i] for i in ids if i in self.accounting}

    def scancel(self, ids: Sequence[str], signal: Optional[str] = None) -> None:
        self._called("scancel", (list(ids), signal))
        self.cancels.append((list(ids), signal))

    def sinfo(self, partition: Optional[str]) -> List[NodeInfo]:
        self._called("sinfo", partition)
        return list(self.nodes)

    def set_all(self, state: str, node: str = "node1") -> None:
        for job_id in self.states:
            self.states[job_id] = JobState(state, node, "None")


class Sink:
    """Records what one version's events delivered."""

    def __init__(self) -> None:
        self.started_with: List[Dict[str, Any]] = []
        self.logs: List[Tuple[str, int]] = []
        self.rows: List[MetricRow] = []
        self.params_seen: List[Mapping[str, Any]] = []

    def started(self, where: Mapping[str, Any]) -> None:
        self.started_with.append(dict(where))

    def log(self, message: str, level: int = 20) -> None:
        self.logs.append((message, level))

    def metrics(self, rows: Sequence[MetricRow]) -> None:
        self.rows.extend(rows)

    def output(self, record: Mapping[str, Any]) -> None:
        pass

    def data(self, fingerprint: str) -> None:
        pass

    def params(self, params: Mapping[str, Any]) -> None:
        self.params_seen.append(dict(params))


def make_job(tmp_path: Path, name: str, resources: Optional[Dict[str, Any]] = None,
             timeout: Optional[float] = None) -> Job:
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    params: Dict[str, Any] = {"name": name, "lr": 0.1}
    if resources is not None:
        params["resources"] = resources
    spec = VersionSpec(script=str(tmp_path / "models" / "m.py"), rel="models/m.py", version=name, params=params,
                       params_sha256="ab" * 32, imports=("numpy",))
    return Job(spec, str(tmp_path / "ckpt" / name), ExecutionModeKeys.TRAIN, str(run_dir), label=f"[{name}] ",
               timeout=timeout, memory_limit=None, tag=f"uid-{name}", run_id=41)


def make_executor(tmp_path: Path, clock: Clock, fake: FakeSlurm, settings: SlurmSettings = SlurmSettings(),
                  **kw: Any) -> SlurmExecutor:
    kw.setdefault("echo", False)
    return SlurmExecutor(cwd=str(tmp_path), settings=settings, commands=fake, clock=clock, sleep=clock.sleep,
                         python=PYTHON, **kw)


def folder_of(job: Job) -> Path:
    return Path(job.run_dir or "") / "slurm"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as out:
        out.write(data)


def event(kind: str, **fields: Any) -> bytes:
    return (json.dumps({"type": kind, **fields}) + "\n").encode()


def poll_until_ended(executor: SlurmExecutor, clock: Clock, within: float, step: float = 0.25) -> Tuple[float, List[Ended]]:
    """Poll as the runner does until a job ends: (the fake time of the poll that ended it, what ended)."""
    deadline = clock.now + within
    for _ in range(100000):
        if clock.now > deadline:
            break
        at = clock.now
        ended = executor.poll(step)
        if ended:
            return at, ended
    raise AssertionError(f"no job ended within {within} s of the fake clock (now {clock.now})")


def poll_for(executor: SlurmExecutor, clock: Clock, seconds: float, step: float = 0.25) -> List[Ended]:
    """Poll for ``seconds`` of the fake clock; whatever ended meanwhile."""
    ended: List[Ended] = []
    deadline = clock.now + seconds
    while clock.now < deadline:
        ended += executor.poll(step)
    return ended


# -- what Slurm's commands print --------------------------------------------------------------------------


def test_parse_squeue_reads_squeue_and_sacct_lines():
    squeue = ("1001|RUNNING|node1|None\n"
              "1002|PENDING||Resources\n"
              "1003|TIMEOUT|node2|TimeLimit\n"
              "1004_3|COMPLETING|node1|None\n"
              "\n")
    assert parse_squeue(squeue) == {
        "1001": JobState("RUNNING", "node1", "None"),
        "1002": JobState("PENDING", "", "Resources"),
        "1003": JobState("TIMEOUT", "node2", "TimeLimit"),
        "1004_3": JobState("COMPLETING", "node1", "None"),
    }
    sacct = ("1005|CANCELLED by 0|node1|None\n"
             "1006|FAILED+|node2|NonZeroExitCode\n"
             "1007|NODE_FAIL|node3|None\n"
             "1008|PENDING|None assigned|Priority\n"
             "garbage without fields\n")
    states = parse_squeue(sacct)
    assert states == {
        "1005": JobState("CANCELLED", "node1", "None"),
        "1006": JobState("FAILED", "node2", "NonZeroExitCode"),
        "1007": JobState("NODE_FAIL", "node3", "None"),
        "1008": JobState("PENDING", "None assigned", "Priority"),
    }
    assert parse_squeue("") == {}


SINFO = ("node1|32|gpu:2|128000|idle|gpu*\n"
         "node2|64|gpu:a100:4(S:0-1)|256000|mix|gpu*\n"
         "node3|16|(null)|64000|down*|gpu*\n"
         "node4|16|(null)|64000+|drain|cpu\n"
         "node1|32|gpu:2|128000|idle|debug\n")


def test_parse_sinfo_reads_gres_memory_states_and_the_default_partition():
    default = parse_sinfo(SINFO, default_only=True)
    assert default == [NodeInfo("node1", 32, 2, 128000, "idle"), NodeInfo("node2", 64, 4, 256000, "mix"),
                       NodeInfo("node3", 16, 0, 64000, "down*")]
    every = parse_sinfo(SINFO)
    assert [n.name for n in every] == ["node1", "node2", "node3", "node4"]  # a node in two partitions is one
    assert every[3] == NodeInfo("node4", 16, 0, 64000, "drain")
    assert {n.name: n.usable for n in every} == {"node1": True, "node2": True, "node3": False, "node4": False}
    assert parse_sinfo("node9|8|gpu:1,gpu:t4:2|32000|alloc|x*\n")[0].gpus == 3


def test_parse_sinfo_counts_gpus_whose_socket_list_has_a_comma():
    """BUG (slurmcli.parse_sinfo): Slurm prints a node's GPUs bound to non-adjacent sockets as
    ``gpu:a100:4(S:0,2)``; the gres field is split on every comma before the ``(...)`` is dropped, so
    the node is read as having 0 GPUs (and a GPU version never fits the partition)."""
    nodes = parse_sinfo("node5|64|gpu:a100:4(S:0,2),shard:a100:16|512000|idle|gpu*\n"
                        "node6|64|gpu:2(S:0,1)|512000|idle|gpu*\n", default_only=True)
    assert [(n.name, n.gpus) for n in nodes] == [("node5", 4), ("node6", 2)]


# -- what a version asks for, and how many fit -----------------------------------------------------------


def test_job_needs_in_whole_slurm_units():
    assert job_needs(Resources(gpus=0.5, cpus=1.5, memory=3 * (1 << 30) + 1)) == (1, 2, 3073)
    assert job_needs(Resources(gpus=2.0, cpus=4.0, memory=512 << 20)) == (2, 4, 512)
    assert job_needs(Resources()) == (0, 1, None)


def test_slots_over_nodes():
    nodes = [NodeInfo("a", 32, 2, 128000, "idle"), NodeInfo("b", 64, 4, 256000, "mix"),
             NodeInfo("c", 64, 8, 512000, "down*"), NodeInfo("d", 64, 8, 512000, "drain")]
    assert slots(nodes, (1, 1, None)) == 2 + 4              # GPU-bound; down and drained nodes hold none
    assert slots(nodes, (2, 1, None)) == 1 + 2
    assert slots(nodes, (0, 8, None)) == 4 + 8              # CPU-bound
    assert slots(nodes, (0, 1, 100000)) == 1 + 2            # memory-bound
    assert slots(nodes, (4, 1, None)) == 1
    assert slots(nodes, (3, 40, None)) == 1              # only b has the CPUs and 3 GPUs
    assert slots(nodes, (1, 65, None)) == 0


# -- sbatch options --------------------------------------------------------------------------------------


def test_time_limit():
    assert time_limit(SlurmSettings(time="1-00:00:00"), 90.0) == "1-00:00:00"
    assert time_limit(SlurmSettings(), 90.0) == "3"      # 1.5 min rounded up, and one more
    assert time_limit(SlurmSettings(), 120.0) == "3"
    assert time_limit(SlurmSettings(), 121.0) == "4"
    assert time_limit(SlurmSettings(), None) is None


def test_sbatch_args_with_every_setting():
    settings = SlurmSettings(partition="gpu", account="lab", qos="high", constraint="a100",
                             extra=("--exclusive", "--mail-type=END"))
    args = sbatch_args(settings, (2, 4, 2048), "mlp:m:a", "/runs/7/slurm", "/proj", 90.0)
    for option in ("--job-name=mlp:m:a", "--output=/runs/7/slurm/slurm-%j.out", "--chdir=/proj", "--no-requeue",
                   "--ntasks=1", "--cpus-per-task=4", "--gres=gpu:2", "--mem=2048M", "--partition=gpu",
                   "--account=lab", "--qos=high", "--constraint=a100", "--time=3"):
        assert option in args, f"{option} missing from {args}"
    assert args[-2:] == ["--exclusive", "--mail-type=END"]


def test_sbatch_args_without_gpus_memory_or_limits():
    args = sbatch_args(SlurmSettings(), (0, 1, None), "mlp:m:a", "/f", "/proj", None)
    assert "--no-requeue" in args and "--cpus-per-task=1" in args
    asked = {a.split("=")[0] for a in args}
    assert not asked & {"--gres", "--mem", "--time", "--partition", "--account", "--qos", "--constraint"}
    assert "--time=1-00:00:00" in sbatch_args(SlurmSettings(time="1-00:00:00"), (0, 1, None), "n", "/f", "/p", 90.0)


def test_job_name():
    spec = VersionSpec(script="/p/models/my model.py", rel="models/my model.py", version="lr=0.1 (b)", params={})
    assert job_name(spec) == "mlp:my_model:lr=0.1__b_"


# -- how a job that left no outcome ended -----------------------------------------------------------------


@pytest.mark.parametrize("state, status, node_lost, reason", [
    ("TIMEOUT", RunStatus.TIMEOUT, False, "timeout"),
    ("NODE_FAIL", RunStatus.INTERRUPTED, True, "node_lost"),
    ("PREEMPTED", RunStatus.INTERRUPTED, True, "node_lost"),
    ("CANCELLED", RunStatus.CANCELLED, False, None),
    ("OUT_OF_MEMORY", RunStatus.FAILED, False, "oom"),
    ("COMPLETED", RunStatus.FAILED, False, None),
    ("", RunStatus.INTERRUPTED, False, None),
])
def test_slurm_outcome(state, status, node_lost, reason):
    outcome = slurm_outcome("4242", JobState(state, "node7" if state else ""), "3")
    assert (outcome.status, outcome.node_lost, outcome.reason) == (status, node_lost, reason)
    assert "4242" in outcome.error
    if state:
        assert "node7" in outcome.error
    if state == "TIMEOUT":
        assert "(3 min)" in outcome.error
    if state == "COMPLETED":
        assert "COMPLETED without an outcome" in outcome.error


# -- the executor: submitting ------------------------------------------------------------------------------


def test_submit_writes_the_job_and_calls_sbatch_once(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake, SlurmSettings(partition="gpu", extra=("--exclusive",)))
    assert fake.log == [("sinfo", 1000.0, "gpu")]
    job = make_job(tmp_path, "a", resources={"gpus": 0.5, "cpus": 2, "memory": "1G"}, timeout=90.0)
    sink = Sink()
    ticket = executor.submit(job, sink)

    assert fake.calls == Counter({"sinfo": 1, "sbatch": 1})
    assert sink.started_with == [{"slurm_job_id": "5001"}]  # at once, before any poll
    folder = folder_of(job)
    args, script = fake.submitted[0]
    assert script == str(folder / "job.sh")
    assert args[-1] == "--exclusive"
    for option in ("--job-name=mlp:m:a", f"--output={folder}/slurm-%j.out", f"--chdir={tmp_path}", "--no-requeue",
                   "--cpus-per-task=2", "--gres=gpu:1", "--mem=1024M", "--partition=gpu", "--time=3"):
        assert option in args, f"{option} missing from {args}"

    written = json.loads((folder / "job.json").read_text())
    assert written["payload"] == {"spec": job.spec.to_json(), "model_dir": job.model_dir, "exec_mode": "Train",
                                  "memory_limit": None, "run_dir": job.run_dir, "run_id": 41}
    assert written["env"][MARK_RUN] == "uid-a"
    assert (written["cwd"], written["timeout"], written["label"]) == (str(tmp_path), 90.0, "[a] ")
    text = (folder / "job.sh").read_text()
    assert text.startswith("#!/bin/sh\n")
    assert f"exec {PYTHON} -c " in text and text.rstrip().endswith(str(folder))
    assert (Path(job.run_dir or "") / "output.log").read_bytes() == b""
    assert executor.running() == 1 and ticket == 1


def test_submit_refuses_a_job_without_a_run_dir(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    job = make_job(tmp_path, "a")
    with pytest.raises(UsageError, match="execution mode"):
        executor.submit(Job(job.spec, job.model_dir, ExecutionModeKeys.TEST), Sink())
    assert fake.calls["sbatch"] == 0


def test_a_job_sbatch_refuses_fails_alone_in_one_line(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)

    def refuse(args: Sequence[str], script: str) -> str:
        fake._called("sbatch", list(args))
        raise SlurmError("sbatch failed: sbatch: error: invalid partition specified: nope")

    fake.sbatch = refuse  # type: ignore[method-assign]
    executor = make_executor(tmp_path, clock, fake)
    sink = Sink()
    ticket = executor.submit(make_job(tmp_path, "a"), sink)
    ended = executor.poll(0.1)
    assert [t for t, _ in ended] == [ticket]
    outcome = ended[0][1]
    assert outcome.status == RunStatus.FAILED and "invalid partition specified: nope" in outcome.error
    assert "\n" not in outcome.error and sink.started_with == []
    assert fake.calls["squeue"] == 0 and fake.calls["scancel"] == 0 and executor.running() == 0


def test_slurm_not_answering_keeps_the_version_waiting_and_a_timed_out_sbatch_is_found_by_its_comment(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    real_sbatch = fake.sbatch
    answers = ["sbatch failed: sbatch: error: Batch job submission failed: Unable to contact slurm controller "
               "(connect failure)", "sbatch did not answer in 60 s (is slurmctld up?)"]
    submitted_meanwhile: List[str] = []

    def flaky(args: Sequence[str], script: str) -> str:
        if answers:
            message = answers.pop(0)
            if "did not answer" in message:  # it was submitted, but the answer never came
                submitted_meanwhile.append(real_sbatch(args, script))
            else:
                fake._called("sbatch", list(args))
            raise SlurmError(message)
        return real_sbatch(args, script)

    def find(name: str, comment: str) -> Optional[str]:
        fake._called("find", comment)
        return submitted_meanwhile[0] if submitted_meanwhile else None

    fake.sbatch = flaky  # type: ignore[method-assign]
    fake.find = find  # type: ignore[attr-defined]
    executor = make_executor(tmp_path, clock, fake)
    sink = Sink()
    executor.submit(make_job(tmp_path, "a"), sink)
    assert executor.poll(0.1) == [] and sink.started_with == []  # not failed: it waits to be submitted again
    poll_for(executor, clock, 6.0)   # the second try (after 5 s): the answer times out
    assert sink.started_with == [] and len(submitted_meanwhile) == 1
    poll_for(executor, clock, 11.0)  # the third (after 10 s more): found by its comment, not submitted again
    assert sink.started_with == [{"slurm_job_id": submitted_meanwhile[0]}]
    assert fake.calls["find"] >= 1 and len(fake.submitted) == 1
    args = fake.submitted[0][0]
    assert any(a.startswith("--comment=mlpipeline:") for a in args)


# -- the executor: following a job's files ----------------------------------------------------------------


def test_poll_follows_placement_events_output_and_outcome(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    job = make_job(tmp_path, "a")
    sink = Sink()
    ticket = executor.submit(job, sink)
    folder, output = folder_of(job), Path(job.run_dir or "") / "output.log"
    assert executor.poll(0.25) == [] and executor.heard(ticket) is None and executor.last_line(ticket) == ""

    fake.set_all("RUNNING")
    write_json(str(folder / "placed.json"), {"pid": 4242, "gpu": "1", "node": "node2", "host": "node2.cluster",
                                             "slurm_job_id": "5001", "restart": 0})
    first = event("log", message="loading", level=20)
    second = event("metrics", rows=[["loss", 0.5, 1, "train"], ["acc", 0.75, 1, "val"]])
    append(folder / "events.jsonl", first + second[:17])
    append(output, b"epoch 1\n")
    before = time.monotonic()
    assert executor.poll(0.25) == []
    assert sink.started_with[1:] == [{"pid": 4242, "gpu": "1", "node": "node2", "slurm_job_id": "5001"}]
    assert sink.logs == [("loading", 20)] and sink.rows == []  # half a line waits for its end
    assert executor.last_line(ticket) == "epoch 1"
    heard = executor.heard(ticket)
    assert heard is not None and before <= heard <= time.monotonic()  # time.monotonic, as the runner reads it

    append(folder / "events.jsonl", second[17:] + event("params", params={"layers": 3}))
    append(output, b"epoch 2\nprogress 50%")
    assert executor.poll(0.25) == []
    assert sink.rows == [MetricRow("loss", 0.5, 1, "train"), MetricRow("acc", 0.75, 1, "val")]
    assert sink.logs == [("loading", 20)] and sink.params_seen == [{"layers": 3}]
    assert executor.last_line(ticket) == "progress 50%"
    assert len(sink.started_with) == 2  # placed once

    done = Outcome(RunStatus.SUCCEEDED, result={"accuracy": 0.9}, exit_code=0, packages={"numpy": "1.26"})
    write_json(str(folder / "outcome.json"), outcome_to_json(done))
    assert executor.poll(0.25) == [(ticket, done)]
    assert executor.running() == 0 and executor.capacity() >= 1


def test_an_event_that_cannot_be_recorded_cancels_the_job(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    job = make_job(tmp_path, "a")
    sink = Sink()
    ticket = executor.submit(job, sink)
    fake.set_all("RUNNING")
    append(folder_of(job) / "events.jsonl", b"this is no json\n" + event("log", message="after", level=20))
    assert executor.poll(0.25) == []
    assert fake.cancels == [(["5001"], None)] and sink.logs == []  # nothing after the bad line is recorded
    fake.set_all("CANCELLED")
    _, ended = poll_until_ended(executor, clock, 10)
    assert ended[0][0] == ticket
    assert ended[0][1].status == RunStatus.FAILED
    assert ended[0][1].error.startswith("it sent an event the runner cannot record")


def test_one_squeue_per_poll_period_for_fifty_jobs(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock, [NodeInfo(f"node{i}", 64, 8, 512000, "idle") for i in range(8)])
    settings = SlurmSettings(poll=2.0)
    executor = make_executor(tmp_path, clock, fake, settings, jobs=50)
    for i in range(50):
        while executor.capacity() < 1:
            clock.now += 0.25
        executor.submit(make_job(tmp_path, f"v{i}"), Sink())
    assert executor.running() == 50 and fake.calls["sbatch"] == 50
    fake.set_all("RUNNING")
    ids = sorted(fake.states)

    def polls(count: int) -> List[int]:
        per_poll = []
        for _ in range(count):
            before = sum(fake.calls.values())
            assert executor.poll(0.5) == []
            per_poll.append(sum(fake.calls.values()) - before)
        return per_poll

    start, logged = clock.now, len(fake.log)
    per_poll = polls(200)                       # 100 s of the fake clock
    assert clock.now == start + 100.0
    assert max(per_poll) <= 2
    squeues = [(at, args) for name, at, args in fake.log[logged:] if name == "squeue"]
    assert len(squeues) == 50                   # one every settings.poll seconds, never one per job
    assert [b[0] - a[0] for a, b in zip(squeues, squeues[1:])] == [settings.poll] * 49
    assert all(sorted(args) == ids for _, args in squeues)
    sinfos = [at for name, at, _ in fake.log[logged:] if name == "sinfo"]
    assert len(sinfos) == 3 and all(b - a >= SIZE_EVERY for a, b in zip(sinfos, sinfos[1:]))
    assert {name for name, _, _ in fake.log[logged:]} == {"squeue", "sinfo"}

    gone = ids[:10]                             # squeue stops listing them; accounting still says running
    for job_id in gone:
        del fake.states[job_id]
        fake.accounting[job_id] = JobState("RUNNING", "node1", "None")
    logged = len(fake.log)
    per_poll = polls(100)                       # 50 s more: sinfo falls due, and gives way to sacct
    assert max(per_poll) == 2 and per_poll.count(2) == 25
    names = Counter(name for name, _, _ in fake.log[logged:])
    assert names == Counter({"squeue": 25, "sacct": 25})
    assert all(sorted(args) == gone for name, _, args in fake.log[logged:] if name == "sacct")


def test_a_timed_out_job_without_outcome_ends_after_the_grace(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake, SlurmSettings(poll=2.0), timeout=90.0)
    ticket = executor.submit(make_job(tmp_path, "a"), Sink())
    fake.set_all("RUNNING", "node2")
    poll_for(executor, clock, 3.0)
    fake.set_all("TIMEOUT", "node2")
    told = len(fake.log)
    at, ended = poll_until_ended(executor, clock, 30)
    seen_at = next(t for name, t, _ in fake.log[told:] if name == "squeue")
    assert OUTCOME_GRACE <= at - seen_at < OUTCOME_GRACE + 0.25
    [(done, outcome)] = ended
    assert done == ticket
    assert (outcome.status, outcome.reason) == (RunStatus.TIMEOUT, "timeout")
    assert "job 5001 on node2 at its time limit" in outcome.error


def test_an_outcome_file_within_the_grace_wins_over_slurms_word(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    job = make_job(tmp_path, "a")
    ticket = executor.submit(job, Sink())
    fake.set_all("COMPLETED")
    poll_for(executor, clock, OUTCOME_GRACE - 1)  # the file is late on NFS
    done = Outcome(RunStatus.SUCCEEDED, result={"loss": 0.1}, exit_code=0)
    write_json(str(folder_of(job) / "outcome.json"), outcome_to_json(done))
    assert executor.poll(0.25) == [(ticket, done)]


def test_a_job_slurm_forgot_without_accounting_ends_interrupted_after_the_long_grace(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    fake.accounting = None
    executor = make_executor(tmp_path, clock, fake)
    ticket = executor.submit(make_job(tmp_path, "a"), Sink())
    fake.set_all("RUNNING")
    poll_for(executor, clock, 3.0)
    assert fake.calls["sacct"] == 0
    del fake.states["5001"]
    told = len(fake.log)
    at, ended = poll_until_ended(executor, clock, 60)
    lost_at = next(t for name, t, _ in fake.log[told:] if name == "squeue")
    assert 2 * OUTCOME_GRACE <= at - lost_at < 2 * OUTCOME_GRACE + 0.25
    [(done, outcome)] = ended
    assert done == ticket and outcome.status == RunStatus.INTERRUPTED and "5001" in outcome.error
    assert fake.calls["sacct"] == 1                       # no accounting: not asked again

    second = executor.submit(make_job(tmp_path, "b"), Sink())
    fake.states.clear()
    _, ended = poll_until_ended(executor, clock, 60)
    assert ended[0][0] == second and fake.calls["sacct"] == 1


def test_a_job_slurm_forgot_is_read_from_accounting(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    executor.submit(make_job(tmp_path, "a"), Sink())
    fake.states.clear()
    fake.accounting = {"5001": JobState("NODE_FAIL", "node2", "None")}
    _, [(_, outcome)] = poll_until_ended(executor, clock, 60)
    assert (outcome.status, outcome.node_lost, outcome.reason) == (RunStatus.INTERRUPTED, True, "node_lost")
    assert "node2" in outcome.error


# -- the executor: ending jobs ----------------------------------------------------------------------------


def test_cancel_then_kill_after_the_grace(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPELINE_TIMINGS", "cancel_grace=3")
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    ticket = executor.submit(make_job(tmp_path, "a"), Sink())
    fake.set_all("RUNNING")
    poll_for(executor, clock, 1.0)
    cancelled_at = clock.now
    executor.cancel(ticket, RunStatus.PRUNED, "loss did not improve for 5 epochs", cold=False)
    assert fake.cancels == [(["5001"], None)]
    executor.cancel(ticket, RunStatus.PRUNED, "again")  # a second cancel asks Slurm nothing more
    assert fake.cancels == [(["5001"], None)]
    squeues = fake.calls["squeue"]
    assert executor.poll(0.25) == []
    assert fake.calls["squeue"] == squeues + 1  # Slurm is looked at again at once

    while len(fake.cancels) < 2:
        killed_at = clock.now
        assert executor.poll(0.25) == []
        assert killed_at - cancelled_at <= 3.0 + 0.25, "no SIGKILL after the cancel grace"
    assert killed_at - cancelled_at > 3.0  # not before the grace
    assert fake.cancels[1] == (["5001"], "KILL")
    assert poll_for(executor, clock, 10.0) == [] and len(fake.cancels) == 2  # killed once

    fake.set_all("CANCELLED")
    _, [(done, outcome)] = poll_until_ended(executor, clock, 10)
    assert done == ticket
    assert (outcome.status, outcome.error) == (RunStatus.PRUNED, "loss did not improve for 5 epochs")


def test_close_cancels_what_still_runs_on_the_injected_clock(tmp_path, monkeypatch):
    """DEFECT (SlurmExecutor.close): it waits on time.monotonic/time.sleep instead of the clock and sleep
    it was given, so a fake clock does not move and close() blocks for real seconds."""
    monkeypatch.setenv("MLPIPELINE_TIMINGS", "cancel_grace=0.5")
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake)
    executor.submit(make_job(tmp_path, "a"), Sink())
    executor.submit(make_job(tmp_path, "b"), Sink())
    fake.set_all("RUNNING")  # they never end
    started, fake_start = time.monotonic(), clock.now
    executor.close()
    assert fake.cancels[0] == (["5001", "5002"], None)
    assert executor.running() == 0
    assert time.monotonic() - started < 0.3
    assert clock.now - fake_start >= 0.5


# -- the executor: how many, and what fits ------------------------------------------------------------------


def test_capacity_never_exceeds_jobs_minus_followed(tmp_path):
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake, jobs=2)
    assert executor.jobs == 2 and executor.capacity() == 2
    first = make_job(tmp_path, "a")
    executor.submit(first, Sink())
    assert executor.capacity() == 1
    executor.submit(make_job(tmp_path, "b"), Sink())
    clock.now += 3600  # a full bucket changes nothing
    assert executor.capacity() == 0
    with pytest.raises(RuntimeError, match="beyond capacity"):
        executor.submit(make_job(tmp_path, "c"), Sink())
    assert fake.calls["sbatch"] == 2
    write_json(str(folder_of(first) / "outcome.json"), outcome_to_json(Outcome(RunStatus.SUCCEEDED)))
    assert len(executor.poll(0.25)) == 1
    assert executor.capacity() == 1


def test_submissions_are_throttled_by_a_token_bucket(tmp_path):
    assert (SUBMIT_BURST, SUBMIT_RATE) == (10, 5.0)  # the numbers below follow from these
    clock = Clock()
    fake = FakeSlurm(clock)
    executor = make_executor(tmp_path, clock, fake, jobs=50)
    assert executor.capacity() == SUBMIT_BURST
    for i in range(SUBMIT_BURST):
        executor.submit(make_job(tmp_path, f"v{i}"), Sink())
    assert executor.capacity() == 0
    with pytest.raises(RuntimeError, match="beyond capacity"):
        executor.submit(make_job(tmp_path, "late"), Sink())
    clock.now += 0.25
    assert executor.capacity() == 1              # 1.25 tokens
    clock.now += 0.25
    assert executor.capacity() == 2              # 2.5
    executor.submit(make_job(tmp_path, "x"), Sink())
    executor.submit(make_job(tmp_path, "y"), Sink())
    assert executor.capacity() == 0              # 0.5 left
    clock.now += 0.1
    assert executor.capacity() == 1              # 0.5 + 0.5
    clock.now += 3600
    assert executor.capacity() == SUBMIT_BURST   # refilled, never above the burst
    assert fake.calls["sbatch"] == SUBMIT_BURST + 2


def test_fits_refuses_what_no_node_could_hold(tmp_path):
    clock = Clock()
    executor = make_executor(tmp_path, clock, FakeSlurm(clock))
    spec = make_job(tmp_path, "big", resources={"gpus": 4}).spec
    wait = executor.fits(spec)
    assert isinstance(wait, Wait) and wait.never
    assert "4 GPU(s)" in wait.reason and "node1: 32 CPUs, 2 GPUs" in wait.reason and "node2" in wait.reason
    assert executor.fits(make_job(tmp_path, "one", resources={"gpus": 1}).spec) is None
    assert executor.fits(make_job(tmp_path, "plain").spec) is None
    bad = executor.fits(make_job(tmp_path, "bad", resources={"gpus": 1.5}).spec)
    assert bad is not None and bad.never and "gpus=1.5" in bad.reason


def test_fits_waits_when_every_node_is_down_for_now(tmp_path):
    """BUG (SlurmExecutor.fits): with every node down or drained (maintenance), fits falls back to judging
    by all nodes (``[usable] or self.nodes``), but ``slots`` skips unusable nodes anyway, so every version
    is refused for ever (never=True) instead of waiting in Slurm's queue."""
    clock = Clock()
    down = [NodeInfo("node1", 32, 2, 128000, "drain"), NodeInfo("node2", 32, 2, 128000, "down*")]
    executor = make_executor(tmp_path, clock, FakeSlurm(clock, down))
    assert executor.fits(make_job(tmp_path, "one", resources={"gpus": 1}).spec) is None
    wait = executor.fits(make_job(tmp_path, "big", resources={"gpus": 4}).spec)
    assert wait is not None and wait.never


# -- the executor: a dead runner's jobs --------------------------------------------------------------------


def test_recover_and_adopt_a_dead_runners_job(tmp_path, capsys):
    clock = Clock()
    fake = FakeSlurm(clock)
    job = make_job(tmp_path, "a", timeout=600.0)
    make_executor(tmp_path, clock, fake).submit(job, Sink())  # the runner that died
    folder, output = folder_of(job), Path(job.run_dir or "") / "output.log"
    append(folder / "events.jsonl", event("log", message="one", level=20) + event("log", message="two", level=30))
    append(output, b"printed while no runner looked\n")

    later = Clock(50000.0)
    fake.clock = later
    executor = make_executor(tmp_path, later, fake, echo=True)
    # a runner killed while sbatch answered left no job id in the ledger: the job is found by its comment
    assert executor.recover({"id": 41, "slurm_job_id": "", "run_dir": job.run_dir}) == job
    assert executor._recovered.pop(41) == "5001" and fake.calls["find"] == 1
    assert executor.recover({"id": 42, "slurm_job_id": "77", "run_dir": str(tmp_path / "nowhere")}) is None
    recovered = executor.recover({"id": 41, "slurm_job_id": "5001", "run_dir": job.run_dir})
    assert recovered is not None
    assert recovered.spec == job.spec
    assert (recovered.model_dir, recovered.exec_mode, recovered.run_dir, recovered.label, recovered.timeout,
            recovered.tag, recovered.run_id) == (job.model_dir, job.exec_mode, job.run_dir, job.label, 600.0,
                                                 "uid-a", 41)

    sink = Sink()
    ticket = executor.adopt(recovered, sink, "5001")
    fake.set_all("RUNNING")
    squeues = fake.calls["squeue"]
    capsys.readouterr()
    assert executor.poll(0.25) == []
    assert fake.calls["squeue"] == squeues + 1  # looked at at once
    assert sink.logs == [("one", 20), ("two", 30)]  # replayed from the start
    assert executor.last_line(ticket) == "" and capsys.readouterr().out == ""

    append(output, b"printed after the adoption\n")
    append(folder / "events.jsonl", event("log", message="three", level=20))
    assert executor.poll(0.25) == []
    assert capsys.readouterr().out == "[a] printed after the adoption\n"
    assert executor.last_line(ticket) == "printed after the adoption"
    assert sink.logs == [("one", 20), ("two", 30), ("three", 20)]


def test_an_adopted_job_that_ended_delivers_all_its_events(tmp_path):
    """BUG (SlurmExecutor._read/_ended): a poll reads at most 8 MiB of events.jsonl, but a job whose outcome
    file is there ends in that same poll, so an adopted job (events replayed from the start) or a chatty one
    loses every event past the first 8 MiB."""
    clock = Clock()
    fake = FakeSlurm(clock)
    job = make_job(tmp_path, "a")
    folder = folder_of(job)
    folder.mkdir()
    message = "x" * (64 << 10)
    lines = 150                                     # 150 lines of 64 KiB: more than 8 MiB
    (folder / "events.jsonl").write_bytes(b"".join(event("log", message=message, level=20) for _ in range(lines)))
    done = Outcome(RunStatus.SUCCEEDED, exit_code=0)
    write_json(str(folder / "outcome.json"), outcome_to_json(done))
    (folder / "job.json").write_text(json.dumps({"payload": {"spec": job.spec.to_json(), "model_dir": job.model_dir,
                                                             "exec_mode": job.exec_mode, "run_dir": job.run_dir,
                                                             "run_id": 41}, "env": {MARK_RUN: "uid-a"}}))
    executor = make_executor(tmp_path, clock, fake)
    recovered = executor.recover({"id": 41, "slurm_job_id": "5001", "run_dir": job.run_dir})
    assert recovered is not None
    sink = Sink()
    ticket = executor.adopt(recovered, sink, "5001")
    fake.states["5001"] = JobState("COMPLETED", "node1")
    _, ended = poll_until_ended(executor, clock, 10)
    assert ended == [(ticket, done)]
    delivered = len(sink.logs)  # (not the 8 MiB list itself in a failure's message)
    assert delivered == lines, f"{lines - delivered} of {lines} events were never delivered"

