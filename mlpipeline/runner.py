"""The loop that works through the queue.

``Runner.run_once`` is one step: heartbeats, cancel requests and timeouts,
then start versions while there are free slots (re-planning from the configs
before each start), then wait briefly for the running ones' output and record
those that finished. ``run`` calls it until nothing is left (or, with
``--watch``, until it is told to stop).
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import repro
from .config import Project
from .errors import MLPipelineError, ScriptError
from .executors import Job, Outcome
from .ledger import Ledger, MetricRow, Mode, RunStatus
from .outputs import NullOutputs
from .procs import kill_orphans
from .queries import elapsed_text
from .queue import Plan, Planner, QueueItem
from .utils import ExecutionModeKeys
from ._versions import version_parameters

log = logging.getLogger(__name__)
# The library never prints: without a handler configured by the application,
# mlpipeline's loggers stay silent instead of falling back to bare stderr lines.
logging.getLogger("mlpipeline").addHandler(logging.NullHandler())

HEARTBEAT_EVERY = 2.0
CANCEL_POLL_EVERY = 0.25
PROGRESS_EVERY = 1.0


@dataclass
class Options:
    test_mode: bool = False
    use_history: bool = False
    only_version: Optional[str] = None
    command: str = ""
    jobs: int = 1
    gpus: Optional[List[str]] = None
    watch: bool = False
    timeout: Optional[float] = None     # overrides [MLP] timeout in the queue config
    memory_limit: Optional[int] = None  # bytes of address space per version (child processes)
    stop_on_error: bool = False


@dataclass
class Finished:
    run_id: int
    item: Optional[QueueItem]
    rel: str
    outcome: Outcome


@dataclass
class Active:
    item: QueueItem
    run_id: int
    handle: Any
    started: float                      # monotonic
    gpu: Optional[str] = None
    timeout: Optional[float] = None
    model_dir: str = ""
    last_progress: float = 0.0
    before: Dict[str, int] = field(default_factory=dict)  # files around the project when it started


class _RunSink:
    """Routes one running version's events to the ledger, the log file and,
    for metrics with a step, a progress line on the terminal."""

    def __init__(self, runner: "Runner", run_id: int, label: str):
        self.runner, self.run_id, self.label = runner, run_id, label
        self.active: Optional[Active] = None

    def started(self, child_pid: Optional[int]) -> None:
        if child_pid:
            self.runner.ledger.update_run(self.run_id, child_pid=child_pid)

    def log(self, message: str, level: int) -> None:
        self.runner.say(message, level, echo=False)

    def metric(self, row: MetricRow) -> None:
        self.runner.ledger.add_metrics(self.run_id, [row])
        active = self.active
        if active is None or row.step is None:
            return
        now = self.runner.monotonic()
        if now - active.last_progress >= PROGRESS_EVERY:
            active.last_progress = now
            self.runner.notify(f"{self.label}: step {row.step}  {row.split}/{row.name}={row.value:.4g}  "
                               f"({elapsed_text(now - active.started)})", logging.INFO)


def fault_point(name: str) -> None:
    """Fault injection for the reliability suite: MLPIPELINE_FAULT=<name> makes
    the runner SIGKILL itself at that point, as a power cut would."""
    if os.environ.get("MLPIPELINE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _own_output_files() -> Set[Tuple[int, int]]:
    """(device, inode) of the files this process's stdout/stderr write to
    (``mlpipeline -r > train.log``): they change while a version runs, but
    the runner writes them, not the version."""
    own = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        own.add((st.st_dev, st.st_ino))
    return own


def _shallow_state(folders: List[str]) -> Dict[str, int]:
    """mtimes of the files directly in ``folders`` (what a version may litter)."""
    state = {}
    own = _own_output_files()
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat()
                        if (st.st_dev, st.st_ino) not in own:
                            state[entry.path] = st.st_mtime_ns
        except OSError:
            pass
    return state


class Runner:
    """Works through a project's queue with the executor it is given."""

    def __init__(self, project: Project, ledger: Ledger, executor: Any, options: Options,
                 outputs: Any = None, host: str = "localhost",
                 notify: Optional[Callable[[str, int], None]] = None, watcher: Any = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.project = project
        self.ledger = ledger
        self.executor = executor
        self.options = options
        self.outputs = outputs or NullOutputs()
        self.host = host
        self.notify = notify or (lambda message, level: None)
        self.watcher = watcher
        self.monotonic = monotonic
        self.mode = Mode.TEST if options.test_mode else Mode.RUN
        self.jobs = max(1, options.jobs) if executor.parallel else 1
        self.planner = Planner(project, ledger, executor, project.config_path(options.test_mode),
                               options.only_version, self.say)
        # what ran in this batch: (script, version) -> (script sha256, params sha256, succeeded)
        self.ran: Dict[Tuple[str, str], Tuple[str, str, bool]] = {}
        self.broken_seen: Set[Tuple[str, str]] = set()   # (script, sha256) of scripts that failed to load
        self.history_skips: Set[Tuple[str, str]] = set()  # versions -u skipped (said once each)
        self.finished: List[Finished] = []
        self.active: Dict[int, Active] = {}
        self.free_gpus: List[str] = list(options.gpus or [])
        self.runner_id: Optional[int] = None
        self.stopping = False          # finish the running versions, start nothing new
        self.kill_requested = False    # kill the running versions now
        self._replan = True
        self._planned_once = False
        self._last_heartbeat = self._last_cancel_poll = float("-inf")

    # -- messages -----------------------------------------------------------

    def say(self, message: str, level: int = logging.INFO, echo: bool = True) -> None:
        self.outputs.log(message, level)
        if echo:
            self.notify(message, level)

    # -- life cycle ---------------------------------------------------------

    def begin(self) -> None:
        """Register this runner (execution mode) and recover runs a dead runner
        left ``running``. The caller holds the project lock."""
        if self.mode != Mode.RUN:
            return
        stale = self.ledger.interrupt_stale("the runner working on it stopped without finishing it "
                                            f"(found at the start of runner pid {os.getpid()})", self.host,
                                            lock_holder=os.getpid())
        kill_orphans(row["child_pid"] for row in stale if row["child_pid"])
        if stale:
            self.say(f"marked run(s) {', '.join(str(row['id']) for row in stale)} interrupted: their runner is gone",
                     logging.WARNING)
        options = {"jobs": self.jobs, "gpus": self.options.gpus, "watch": self.options.watch,
                   "use_history": self.options.use_history, "timeout": self.options.timeout}
        self.runner_id = self.ledger.register_runner(self.mode, self.host, options)

    def end(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.runner_id is not None:
            self.ledger.write_queue(self.runner_id, [], None)
            self.ledger.end_runner(self.runner_id)

    def request_stop(self) -> None:
        self.stopping = True

    def request_kill(self) -> None:
        self.stopping = True
        self.kill_requested = True

    def run(self) -> List[Finished]:
        self.begin()
        try:
            while self.run_once():
                pass
        except BaseException:
            for active in self.active.values():  # never leave a version running unwatched
                active.handle.kill(RunStatus.INTERRUPTED, "the runner stopped on an error")
            raise
        finally:
            self._end_quietly()
        return self.finished

    def _end_quietly(self) -> None:
        try:
            self.end()
        except MLPipelineError as exc:  # e.g. the disk is still full; the error that stopped us is shown
            log.warning("could not close the runner's records: %s", exc)

    # -- one step -----------------------------------------------------------

    def run_once(self, now: Optional[float] = None) -> bool:
        """One step of the loop; False when there is nothing left to do."""
        now = self.monotonic() if now is None else now
        self._tick(now)
        if self.kill_requested:
            for active in self.active.values():
                active.handle.kill(RunStatus.INTERRUPTED, "the runner was told to stop twice (Ctrl+C or SIGTERM) "
                                                          "and killed the version")
        if not self.stopping:
            self._fill()
        if self.active:
            self._pump(0.1)
            self._reap(self.monotonic())
            return True
        if self.stopping:
            return False
        if self.options.watch:
            time.sleep(0.05)
            return True
        return False

    def _tick(self, now: float) -> None:
        if self.watcher is not None and self.watcher.settled():
            self._replan = True
            if self.active or self.stopping:  # no slot to fill: still show the new queue in status
                self._snapshot(self._plan_now())
        if now - self._last_heartbeat >= HEARTBEAT_EVERY and (self.active or self.runner_id is not None):
            self._last_heartbeat = now
            self.ledger.heartbeat(list(self.active), self.runner_id)
        if self.active and now - self._last_cancel_poll >= CANCEL_POLL_EVERY:
            self._last_cancel_poll = now
            for run_id in self.ledger.cancel_requests(list(self.active)):
                self.active[run_id].handle.kill(RunStatus.CANCELLED, "cancelled with mlpipeline cancel")
        for active in self.active.values():
            if active.timeout and now - active.started > active.timeout:
                active.handle.kill(RunStatus.TIMEOUT, f"timed out after {active.timeout:g} s (the version's "
                                                      f"timeout); its process group was killed")

    # -- planning -----------------------------------------------------------

    def _plan_now(self) -> Plan:
        plan = self.planner.plan()
        fault_point("planned")
        if not self._planned_once:
            self.planner.check_first(plan)
            self._planned_once = True
        else:
            self.planner.warn_problems(plan)
        return plan

    def _history(self, plan: Plan) -> Set[Tuple[str, str]]:
        """Keys of the plan's versions that ``-u`` skips: their last execution-mode
        run succeeded with this script content and these parameters (one query a script)."""
        if not (self.options.use_history and self.mode == Mode.RUN):
            return set()
        done = set()
        for rel in {item.rel for item in plan.items}:
            last = self.ledger.succeeded_last(rel)
            done |= {item.key for item in plan.items if item.rel == rel
                     and last.get(item.version.name) == (item.info.sha256, item.version.params_sha256)}
        return done

    def _snapshot(self, plan: Plan) -> None:
        if self.runner_id is None:
            return
        running = {a.item.key for a in self.active.values()}
        history = self._history(plan)
        entries = [(item.rel, item.version.name, *self._state(item, history, running)) for item in plan.items]
        entries += [(script, version, "skipped", reason) for script, version, reason in plan.skipped]
        self.ledger.write_queue(self.runner_id, entries, plan.config_error)

    def _state(self, item: QueueItem, history: Set[Tuple[str, str]],
               running: Set[Tuple[str, str]]) -> Tuple[str, Optional[str]]:
        """(state, reason) of a queued version: running, finished, skipped or queued.

        A version runs once per batch; it runs again in the same batch (under
        --watch, say) only when its script or parameters changed since, and it
        failed or -u asks for changed scripts to run again."""
        key = item.key
        if key not in self.ran and key not in history and key not in running:
            return "queued", None
        if key in running:
            return "running", None
        previous = self.ran.get(key)
        if previous is not None:
            unchanged = previous[:2] == (item.info.sha256, item.version.params_sha256)
            if unchanged or (previous[2] and not self.options.use_history):
                return "finished", f"{'succeeded' if previous[2] else 'failed'} in this batch"
        if item.key in history:
            return "skipped", "already succeeded with this script and these parameters (-u)"
        return "queued", None

    def _next(self, plan: Plan):
        for rel, sha, error in plan.broken:
            if (rel, sha) not in self.broken_seen:
                return ("broken", rel, sha, error)
        history = self._history(plan)
        running = {a.item.key for a in self.active.values()}
        for item in plan.items:
            state, reason = self._state(item, history, running)
            if state == "queued":
                return ("run", item)
            if state == "skipped" and item.key not in self.history_skips:
                self.history_skips.add(item.key)
                self.say(f"{item.label}: skipped, {reason}")
        return None

    def _fill(self) -> None:
        while self._replan and len(self.active) < self.jobs and not self.stopping:
            plan = self._plan_now()
            step = self._next(plan)
            if step is None:
                self._replan = False
            elif step[0] == "broken":
                self._record_broken(*step[1:])
            else:
                self._start(step[1], plan)
                if not self.executor.parallel:
                    self._reap(self.monotonic())
            self._snapshot(plan)

    # -- running ------------------------------------------------------------

    def model_dir(self, item: QueueItem) -> str:
        stem = os.path.splitext(os.path.basename(item.script))[0]
        suffix = item.version.params.get(version_parameters.MODEL_DIR_SUFFIX) or f"-{item.version.name}"
        return os.path.join(self.project.outputs_dir, "model_ckpts", f"{stem}{suffix}")

    def _record_broken(self, rel: str, sha: str, error: ScriptError) -> None:
        self.broken_seen.add((rel, sha))
        run = self.ledger.start_run(script=rel, version=None, mode=self.mode, host=self.host,
                                    script_sha256=sha, command=self.options.command, runner_id=self.runner_id)
        outcome = Outcome(RunStatus.FAILED, error=str(error), traceback=error.details, script_error=True)
        self.ledger.set_status(run["id"], RunStatus.FAILED, error=outcome.error, traceback=outcome.traceback or None)
        self.say(str(error), logging.ERROR)
        if error.details:
            self.say(error.details, logging.ERROR, echo=False)
        self.finished.append(Finished(run["id"], None, rel, outcome))
        if self.options.stop_on_error:
            self.stopping = True

    def _start(self, item: QueueItem, plan: Plan) -> None:
        self.ran[item.key] = (item.info.sha256, item.version.params_sha256, False)
        test = self.options.test_mode
        model_dir = tempfile.mkdtemp(prefix="mlp-test-") if test else self.model_dir(item)
        gpu = self.free_gpus.pop(0) if self.free_gpus else None
        git = repro.git_state(self.project.root)
        run = self.ledger.start_run(
            script=item.rel, version=item.version.name, mode=self.mode, host=self.host,
            params=item.version.params, script_sha256=item.info.sha256,
            params_sha256=item.version.params_sha256, model_dir=None if test else model_dir,
            command=self.options.command, python_version=repro.python_version(),
            seed=repro.seed_of(item.version.params), git_commit=git.commit if git else None,
            git_dirty=int(git.dirty) if git else None, gpu=gpu, runner_id=self.runner_id)
        run_id = run["id"]
        run_dir = None if test else os.path.join(self.project.outputs_dir, "runs", str(run_id))
        if run_dir:
            self.ledger.update_run(run_id, run_dir=run_dir)
            if git:
                repro.save_diff(run_dir, git)
        where = "test mode, 1 step" if test else "model dir " + os.path.relpath(model_dir, self.project.root)
        self.say(f"{item.label}: started (run {run_id}, {where}{', GPU ' + gpu if gpu else ''})")
        exec_mode = ExecutionModeKeys.TEST if test else ExecutionModeKeys.TRAIN
        env = {"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}
        label = f"[{item.rel} {item.version.name}] " if self.jobs > 1 else ""
        sink = _RunSink(self, run_id, item.label)
        timeout = self.options.timeout or plan.timeout
        active = Active(item, run_id, None, self.monotonic(), gpu, timeout, model_dir)
        sink.active = active
        self.active[run_id] = active
        fault_point("started")
        active.before = _shallow_state(self._litter_folders())
        try:
            active.handle = self.executor.start(Job(item.script, item.version.name, model_dir, exec_mode, run_dir,
                                                    env, label, self.options.memory_limit), sink)
        except BaseException as exc:
            del self.active[run_id]
            why = (f"the runner stopped before the version started: {exc}" if isinstance(exc, MLPipelineError)
                   else "interrupted (Ctrl+C) while running")
            try:
                self.ledger.set_status(run_id, RunStatus.INTERRUPTED, error=why)
            finally:
                self._cleanup(active)
            raise

    def _pump(self, timeout: float) -> None:
        with selectors.DefaultSelector() as selector:
            for active in self.active.values():
                for fd in active.handle.fds():
                    selector.register(fd, selectors.EVENT_READ, active)
            if not selector.get_map():
                # Output is done; the child is exiting. Wait for that itself rather than sleep blindly.
                next(iter(self.active.values())).handle.wait_exit(min(timeout, 0.05))
                return
            for key, _ in selector.select(timeout):
                key.data.handle.on_ready(key.fd)

    def _reap(self, now: float) -> None:
        for run_id, active in list(self.active.items()):
            active.handle.check(now)
            outcome = active.handle.outcome()
            if outcome is None:
                continue
            del self.active[run_id]
            self._cleanup(active)
            self._warn_litter(run_id, active)
            self._record(run_id, active.item, outcome, now - active.started)
            self.ran[active.item.key] = (*self.ran[active.item.key][:2], outcome.status == RunStatus.SUCCEEDED)
            self.finished.append(Finished(run_id, active.item, active.item.rel, outcome))
            self._replan = True
            if outcome.status != RunStatus.SUCCEEDED and self.options.stop_on_error:
                self.stopping = True

    def _litter_folders(self) -> List[str]:
        return [self.project.root, self.project.models_dir]

    def _warn_litter(self, run_id: int, active: Active) -> None:
        """Say which files next to the configs and scripts changed while a
        version ran: a version should write inside its model dir."""
        after = _shallow_state(self._litter_folders())
        changed = sorted(path for path, mtime in after.items()
                         if active.before.get(path) != mtime and not path.endswith((".config", ".py", ".pyc")))
        if changed:
            shown = ", ".join(os.path.relpath(p, self.project.root) for p in changed[:5])
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            self.say(f"{active.item.label}: wrote outside its model dir while it ran (run {run_id}): {shown}{more}; "
                     f"keep a version's files in the model_dir it is given", logging.WARNING)

    def _cleanup(self, active: Active) -> None:
        if active.gpu is not None:
            self.free_gpus.append(active.gpu)
            self.free_gpus.sort(key=lambda g: (self.options.gpus or []).index(g))
        if self.options.test_mode:
            shutil.rmtree(active.model_dir, ignore_errors=True)

    def _record(self, run_id: int, item: QueueItem, outcome: Outcome, seconds: float) -> None:
        result = outcome.result or {}
        rows = [MetricRow(name, value, None, "train") for name, value in result.get("eval_train", {}).items()]
        rows += [MetricRow(name, value, None, "test") for name, value in result.get("eval_test", {}).items()]
        self.ledger.add_metrics(run_id, rows)
        fault_point("record")
        self.ledger.set_status(
            run_id, outcome.status, exit_code=outcome.exit_code, signal=outcome.signal,
            error=outcome.error or None, traceback=outcome.traceback or None,
            steps=result.get("steps"), eval_train_text=result.get("eval_train_text"),
            eval_test_text=result.get("eval_test_text"),
            packages=json.dumps(outcome.packages, sort_keys=True) if outcome.packages else None)
        took = elapsed_text(seconds)
        if outcome.status == RunStatus.SUCCEEDED:
            self.outputs.output_block(script=item.rel, version=item.version.name, result=result,
                                      params=item.version.params,
                                      epochs=item.version.params.get(version_parameters.EPOC_COUNT))
            self.say(f"{item.label}: succeeded in {took} (run {run_id}); train: {result.get('eval_train_text') or '-'}; "
                     f"test: {result.get('eval_test_text') or '-'}")
        else:
            self.say(f"{item.label}: {outcome.status.value} after {took} (run {run_id}): {outcome.error}",
                     logging.ERROR)
            if outcome.traceback:
                self.say(outcome.traceback.rstrip(), logging.ERROR, echo=False)

    def queued_left(self) -> bool:
        """Is anything still waiting to run (after a stop)?"""
        try:
            plan = self.planner.plan()
        except Exception:  # noqa: BLE001 - only a hint for the exit code
            return False
        history = self._history(plan)
        return any(self._state(item, history, set())[0] == "queued" for item in plan.items)
