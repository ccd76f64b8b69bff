"""The runner's step function with a fake executor and an injected clock; the
planner; liveness; the import direction between layers.

The executor and the describer are the two stand-ins here: they replace child
processes whose behaviour the other suites test for real, so that the loop's
decisions (order, capacity, timeouts, requests, batching) can be driven step by
step. Everything else is real: project files, configs, the SQLite ledger.
"""
from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from mlpipeline.plan.config import find_project
from mlpipeline.core.errors import ScriptError
from mlpipeline.store.ledger import DB_NAME, Ledger, add_request
from mlpipeline.core.lifecycle import MetricRow, Outcome, RunStatus
from mlpipeline.store.liveness import Liveness
from mlpipeline.proc.system import process_start
from mlpipeline.plan.planner import Planner
from mlpipeline.store.reader import Reader
from mlpipeline.run.runner import Options, Runner
from mlpipeline.script.loading import ScriptInfo, VersionInfo
from mlpipeline.run.watcher import ChangeWatcher

PACKAGE = Path(__file__).resolve().parent.parent / "mlpipeline"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeExecutor:
    """Jobs finish when the test says so; cancels finish them with the status asked."""

    def __init__(self, slots: int = 1):
        self.slots = slots
        self.jobs: Dict[int, tuple] = {}
        self.done: List[tuple] = []
        self.cancelled: List[tuple] = []
        self.submitted: List[str] = []
        self._next = 1

    def capacity(self) -> int:
        return self.slots - len(self.jobs)

    def running(self) -> int:
        return len(self.jobs)

    def submit(self, job, sink) -> int:
        ticket, self._next = self._next, self._next + 1
        self.jobs[ticket] = (job, sink)
        self.submitted.append(job.spec.version)
        sink.started({"pid": 4242, "gpu": None})
        return ticket

    def finish(self, version: str, status: RunStatus = RunStatus.SUCCEEDED, **fields) -> None:
        ticket = next(t for t, (job, _) in self.jobs.items() if job.spec.version == version)
        self.done.append((ticket, Outcome(status, result={"steps": 1, "eval_test": {"acc": 0.5}}, **fields)))

    def sink(self, version: str):
        return next(sink for job, sink in self.jobs.values() if job.spec.version == version)

    def poll(self, timeout: float) -> list:
        finished, self.done = self.done, []
        for ticket, _ in finished:
            self.jobs.pop(ticket, None)
        return finished

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        self.cancelled.append((self.jobs[ticket][0].spec.version, status))
        self.done.append((ticket, Outcome(status, error=reason)))

    def close(self) -> None:
        self.jobs.clear()


class Described:
    def __init__(self, info: Optional[ScriptInfo] = None, error: Optional[ScriptError] = None):
        self.info, self.error = info, error


class FakeDescriber:
    """Versions as the test declares them; a script can be held 'pending'."""

    def __init__(self, scripts: Dict[str, List[str]]):
        self.scripts = scripts
        self.pending: set = set()
        self.ready: List[str] = []

    def lookup(self, path: str):
        name = os.path.basename(path)
        if name in self.pending:
            return None
        versions = [VersionInfo(v, {"name": v, "batch_size": 1}, f"p-{v}") for v in self.scripts[name]]
        return Described(ScriptInfo(path, "sha-" + name, versions, fingerprint="fp-" + name))

    def release(self, name: str) -> None:
        self.pending.discard(name)
        self.ready.append(name)

    def poll(self) -> List[str]:
        ready, self.ready = self.ready, []
        return ready

    def forget_transient(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def proj(tmp_path: Path):
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "mlp.config").write_text("[MLP]\nmodels_dir = models\n")
    for name in ("a.py", "b.py"):
        (root / "models" / name).write_text("# described by the fake describer\n")
    (root / "models.config").write_text("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\na.py\nb.py\n")
    return root


RUNNERS: List[Runner] = []


@pytest.fixture(autouse=True)
def end_runners():
    yield
    while RUNNERS:
        RUNNERS.pop().end()


def make_runner(root: Path, executor, describer, clock, **options) -> Runner:
    project = find_project(str(root))
    ledger = Ledger(os.path.join(project.outputs_dir, DB_NAME), clock=lambda: clock.now)
    runner = Runner(project, ledger, executor, describer, Options(**options), clock=clock)
    runner.begin()
    RUNNERS.append(runner)
    return runner


def rows(root: Path) -> List[tuple]:
    with sqlite3.connect(root / "models" / "outputs" / DB_NAME) as conn:
        return conn.execute("SELECT version, status FROM runs ORDER BY id").fetchall()


def test_run_once_starts_in_order_within_capacity_and_records_finished(proj):
    clock, executor = Clock(), FakeExecutor(slots=2)
    runner = make_runner(proj, executor, FakeDescriber({"a.py": ["a1", "a2"], "b.py": ["b1"]}), clock)
    assert runner.run_once() is True
    assert executor.submitted == ["a1", "a2"]  # two slots, queue order
    executor.finish("a2")
    clock.now += 1
    runner.run_once()
    assert executor.submitted == ["a1", "a2", "b1"]  # a freed slot is filled at once
    assert rows(proj) == [("a1", "running"), ("a2", "succeeded"), ("b1", "running")]
    executor.finish("a1", RunStatus.FAILED, error="boom")
    executor.finish("b1")
    runner.run_once()
    assert runner.run_once() is False  # nothing left
    assert rows(proj) == [("a1", "failed"), ("a2", "succeeded"), ("b1", "succeeded")]


def test_timeout_is_decided_by_the_injected_clock(proj):
    clock, executor = Clock(), FakeExecutor()
    runner = make_runner(proj, executor, FakeDescriber({"a.py": ["slow"], "b.py": []}), clock, timeout=30)
    runner.run_once()
    clock.now += 29
    runner.run_once()
    assert executor.cancelled == []
    clock.now += 2
    runner.run_once()
    assert executor.cancelled == [("slow", RunStatus.TIMEOUT)]
    runner.run_once()
    assert rows(proj) == [("slow", "timeout")]


def test_requests_cancel_pause_resume_reorder_and_rerun(proj):
    clock, executor = Clock(), FakeExecutor()
    runner = make_runner(proj, executor, FakeDescriber({"a.py": ["a1", "a2", "a3"], "b.py": []}), clock)
    db = os.path.join(proj, "models", "outputs", DB_NAME)
    runner.run_once()
    assert executor.submitted == ["a1"]
    add_request(db, "cancel", run_id=1)
    add_request(db, "pause")
    clock.now += 1
    runner.run_once()   # consumes the requests; the fake ends the cancelled job on its next poll
    runner.run_once()
    assert executor.cancelled == [("a1", RunStatus.CANCELLED)]
    assert rows(proj) == [("a1", "cancelled")]
    for _ in range(3):
        clock.now += 1
        assert runner.run_once() is True  # paused: alive, starts nothing
    assert executor.submitted == ["a1"]
    add_request(db, "reorder", payload={"order": [["models/a.py", "a3"]]})
    add_request(db, "resume")
    clock.now += 1
    runner.run_once()
    assert executor.submitted == ["a1", "a3"]  # the reorder put a3 first
    with sqlite3.connect(db) as conn:
        results = conn.execute("SELECT kind, result FROM requests ORDER BY id").fetchall()
    assert results == [("cancel", "cancelling"), ("pause", "paused"), ("reorder", "reordered"), ("resume", "resumed")]
    executor.finish("a3")
    runner.run_once()
    assert executor.submitted == ["a1", "a3", "a2"]
    executor.finish("a2")
    runner.run_once()
    add_request(db, "rerun", payload={"script": "models/a.py", "version": "a2"})
    clock.now += 1
    runner.run_once()
    assert executor.submitted == ["a1", "a3", "a2", "a2"]


def test_metrics_are_written_in_batches_with_summaries(proj):
    clock, executor = Clock(), FakeExecutor()
    runner = make_runner(proj, executor, FakeDescriber({"a.py": ["a1"], "b.py": []}), clock)
    runner.run_once()
    sink = executor.sink("a1")
    sink.metrics([MetricRow("loss", float(10 - i), i) for i in range(10)])
    db = Reader(os.path.join(proj, "models", "outputs", DB_NAME))
    count = lambda: db.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]  # noqa: E731
    runner.run_once()
    assert count() == 10  # the first points go out at once
    sink.metrics([MetricRow("loss", 0.7, 10)])
    runner.run_once()
    assert count() == 10  # then one batch per interval
    clock.now += 0.2
    runner.run_once()
    assert count() == 11
    sink.metrics([MetricRow("loss", 0.5, 10), MetricRow("loss", None, 11)])
    executor.finish("a1")
    runner.run_once()  # a finished run's points are written before its status
    summary = db.conn.execute("SELECT count, first_step, last_step, last, min, max FROM metric_summary "
                              "WHERE name = 'loss'").fetchone()
    assert tuple(summary) == (13, 0, 11, None, 0.5, 10.0)


def test_first_plan_waits_for_every_description_then_runs_in_order(proj):
    clock, executor = Clock(), FakeExecutor(slots=2)
    describer = FakeDescriber({"a.py": ["a1"], "b.py": ["b1"]})
    describer.pending = {"a.py"}
    runner = make_runner(proj, executor, describer, clock)
    for _ in range(3):
        assert runner.run_once() is True
    assert executor.submitted == []  # b.py is ready, but a.py comes first and is still being described
    describer.release("a.py")
    runner.run_once()
    assert executor.submitted == ["a1", "b1"]


def test_use_history_compares_fingerprint_and_params(proj):
    clock, executor = Clock(), FakeExecutor()
    describer = FakeDescriber({"a.py": ["a1"], "b.py": []})
    runner = make_runner(proj, executor, describer, clock, use_history=True)
    runner.run_once()
    executor.finish("a1")
    runner.run_once()
    assert runner.run_once() is False
    again = make_runner(proj, FakeExecutor(), describer, clock, use_history=True)
    again.run_once()
    assert again.executor.submitted == []  # same fingerprint and params: skipped
    describer.scripts["a.py"] = ["a1", "a2"]  # a version added: only it runs
    third = make_runner(proj, FakeExecutor(), describer, clock, use_history=True)
    third.run_once()
    assert third.executor.submitted == ["a2"]


def test_planner_orders_skips_and_holds_behind_a_pending_script(proj):
    (proj / "models.config").write_text("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\n"
                                        "b.py = b2\na.py\nmissing.py\n")
    describer = FakeDescriber({"a.py": ["a1"], "b.py": ["b1", "b2"]})
    said: List[str] = []
    planner = Planner(find_project(str(proj)), describer, str(proj / "models.config"), None,
                      lambda message, level=0: said.append(message))
    plan = planner.plan()
    assert [item.key for item in plan.items] == [("models/b.py", "b2"), ("models/a.py", "a1")]
    assert ("models/b.py", "b1", "not whitelisted in models.config") in [
        (s, v, r.replace(str(proj) + os.sep, "")) for s, v, r in plan.skipped]
    assert any("missing.py" in s for s, _, _ in plan.skipped)
    describer.pending = {"b.py"}
    plan = planner.plan()
    assert plan.pending == ["models/b.py"] and plan.startable == []


def test_liveness_derives_from_pid_and_start_time(tmp_path):
    ledger = Ledger(str(tmp_path / DB_NAME))
    me = ledger.start_run(script="s.py", version="v", mode="test", host="h", pid_start=process_start())
    ledger.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (os.getpid(), me["id"]))
    reused = ledger.start_run(script="s.py", version="w", mode="test", host="h", pid_start=(process_start() or 0) + 1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = ledger.start_run(script="s.py", version="x", mode="test", host="h", pid=child.pid)
    other = ledger.start_run(script="s.py", version="y", mode="test", host="elsewhere", pid=1)
    reader = Reader(str(tmp_path / DB_NAME))
    live = Liveness(reader.conn, host="h")
    status = {r["version"]: live.derive(r)["status"] for r in reader.conn.execute("SELECT * FROM runs")}
    assert status == {"v": "running", "w": "interrupted", "x": "interrupted", "y": "running"}
    later = Liveness(reader.conn, host="h", now=time.time() + 3600)  # another host's heartbeat went stale
    assert later.derive(reader.get_run(other["id"]))["status"] == "interrupted"
    assert {r["id"] for r in (me, reused, dead)} == {1, 2, 3}


def test_watcher_debounces_a_burst_into_one_change(tmp_path):
    clock = Clock()
    config = tmp_path / "models.config"
    config.write_text("x")
    watcher = ChangeWatcher([str(config)], str(tmp_path), debounce=0.5, clock=clock)
    for _ in range(5):  # an editor's save: several events
        watcher.notify(str(config))
        clock.now += 0.1
    assert watcher.settled() is False
    clock.now += 0.5
    assert watcher.settled() is True
    assert watcher.settled() is False  # once per burst
    watcher.notify(str(tmp_path / "notes.txt"))  # not a config or a script
    clock.now += 1
    assert watcher.settled() is False


def _imports(path: Path) -> set:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = path.parent.relative_to(PACKAGE.parent).parts[:len(path.parent.relative_to(PACKAGE.parent).parts)
                                                                   - node.level + 1]
            module = ".".join(base + ((node.module,) if node.module else ()))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_import_direction_between_layers():
    """Execution does not import storage, storage does not import process code,
    the runner imports no executor module."""
    storage = {"mlpipeline.store.ledger", "mlpipeline.store.reader"}
    process = {"mlpipeline.proc", "mlpipeline.store.liveness", "mlpipeline.execution"}
    for path in (PACKAGE / "execution").glob("*.py"):
        assert not {m for m in _imports(path) if m.startswith(tuple(storage))}, path
    for name in ("ledger.py", "reader.py"):
        assert not {m for m in _imports(PACKAGE / "store" / name) if m.startswith(tuple(process))}, name
    runner = _imports(PACKAGE / "run" / "runner.py")
    assert not {m for m in runner if m.startswith("mlpipeline.execution")}
    assert "mlpipeline.read.queries" not in runner and "mlpipeline.read.status" not in runner
    assert json.loads(json.dumps(sorted(runner)))  # sanity: the parser found imports at all


SPEC_SCRIPT = '''
import json, os
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

class L(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 4
    def get_test_sample_count(self): return 1

class M(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.version = version
    def train_model(self, input_fn, steps):
        with open(os.path.join(os.path.dirname(__file__), "seen-" + self.version["name"]), "w") as f:
            json.dump({"lr": self.version["lr"], "loader": type(self.version["dataloader"]).__name__,
                       "steps": steps}, f)
    def evaluate_model(self, input_fn, steps): return {"lr": self.version["lr"]}

versions = Versions(L(), batch_size=2, epoc_count=1, lr=0.1)
versions.add_version("declared")
MODEL = M(versions)
'''


@pytest.mark.parametrize("where", ["child", "in-process"])
def test_a_version_starts_from_its_spec_even_one_the_script_does_not_declare(tmp_path, where):
    """A version existed only as a name inside its script: nothing could start one from a spec."""
    from mlpipeline.execution.inprocess import InProcessExecutor
    from mlpipeline.execution.local import LocalExecutor
    from mlpipeline.core.lifecycle import Job, VersionSpec
    from mlpipeline.utils import ExecutionModeKeys

    script = tmp_path / "m.py"
    script.write_text(SPEC_SCRIPT)
    executor = LocalExecutor(cwd=str(tmp_path), echo=False) if where == "child" else InProcessExecutor()
    events: List[tuple] = []

    class Sink:
        def started(self, where):
            events.append(("started", dict(where)))

        def log(self, message, level=20):
            events.append(("log", message))

        def metrics(self, rows):
            events.append(("metrics", rows))

    outcomes = {}
    for name, lr in (("declared", 0.5), ("proposed", 0.01)):  # a changed parameter; a version never declared
        spec = VersionSpec(script=str(script), rel="m.py", version=name, params={"lr": lr, "name": name})
        ticket = executor.submit(Job(spec, str(tmp_path / f"dir-{name}"), ExecutionModeKeys.TRAIN), Sink())
        deadline = time.monotonic() + 60
        while ticket not in outcomes and time.monotonic() < deadline:
            outcomes.update(dict(executor.poll(0.1)))
    assert {t: o.status for t, o in outcomes.items()} == {1: RunStatus.SUCCEEDED, 2: RunStatus.SUCCEEDED}, outcomes
    seen = {name: json.loads((tmp_path / f"seen-{name}").read_text()) for name in ("declared", "proposed")}
    assert seen == {"declared": {"lr": 0.5, "loader": "L", "steps": 2},
                    "proposed": {"lr": 0.01, "loader": "L", "steps": 2}}  # the declared loader object is kept
    assert outcomes[2].result["eval_test"] == {"lr": 0.01}
