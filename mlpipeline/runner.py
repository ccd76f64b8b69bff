"""The loop that works through the queue.

``Runner.run_once(now)`` is one step: consume requests (cancel, pause, resume,
rerun, reorder) → poll the executor → record what arrived and what finished →
schedule what the queue allows. ``run`` is the thin driver that calls it until
nothing is left (or, with ``--watch``, until it is told to stop). The runner
holds an executor and a describer without knowing which: it never sees a pid.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from . import litter, repro
from .config import Project
from .errors import MLPipelineError, ScriptError
from .ledger import Ledger
from .lifecycle import Job, MetricRow, Mode, Outcome, RunStatus
from .liveness import Liveness
from .outputs import NullOutputs, elapsed_text
from .procs import process_start
from .queue import Describer, Plan, Planner, QueueItem, SearchSlot, unchanged_since
from .search import CLOSE_GRACE, SearchDriver
from .utils import ExecutionModeKeys
from ._versions import version_parameters

log = logging.getLogger(__name__)
# The library never prints: without a handler configured by the application,
# mlpipeline's loggers stay silent instead of falling back to bare stderr lines.
logging.getLogger("mlpipeline").addHandler(logging.NullHandler())

HEARTBEAT_EVERY = 2.0
REQUESTS_EVERY = 0.25
PROGRESS_EVERY = 1.0
METRICS_EVERY = 0.1      # seconds between metric batches written to the ledger
METRICS_BATCH = 5000     # or this many points, whichever comes first
POLL_WAIT = 0.1          # how long one step waits for a running version's events
CONFIG_SETTLE_WINDOW = 0.5  # a queue config saved this recently is read again before the batch ends


@dataclass
class Options:
    test_mode: bool = False
    use_history: bool = False
    only_version: Optional[str] = None
    command: str = ""
    watch: bool = False
    timeout: Optional[float] = None     # overrides [MLP] timeout in the queue config
    memory_limit: Optional[int] = None  # bytes of address space per version (child processes)
    stop_on_error: bool = False
    label_output: bool = False          # prefix echoed output with the version (several at once)
    retries: int = 1                    # times a version whose node was lost runs again (a cluster backend)
    options_text: Dict[str, Any] = field(default_factory=dict)  # shown by status


@dataclass(frozen=True)
class Finished:
    """What the batch's summary needs of a run that ended: kept small, since a ``--watch``
    runner ends runs for weeks (its result and spec go to the ledger, not here)."""

    run_id: int
    key: Optional[Tuple[str, str]]   # (script, version); None for a script that did not load
    status: RunStatus
    node_lost: bool = False
    traceback: str = ""              # a failure's, for test mode's last word

    @classmethod
    def of(cls, run_id: int, key: Optional[Tuple[str, str]], outcome: Outcome) -> Finished:
        failed = outcome.status != RunStatus.SUCCEEDED
        return cls(run_id, key, outcome.status, outcome.node_lost, outcome.traceback if failed else "")


class Ended:
    """The runs a batch ended: how many of each status, and the last ``KEEP`` of them in full
    (a ``--watch`` runner may end a million; memory stays bounded)."""

    KEEP = 10_000

    def __init__(self) -> None:
        self.recent: Deque[Finished] = deque(maxlen=self.KEEP)
        self.counts: Counter = Counter()
        self.failed_earlier = 0  # failures no longer among the recent ones

    def add(self, finished: Finished) -> None:
        if len(self.recent) == self.KEEP:
            oldest = self.recent[0]
            if oldest.status not in (RunStatus.SUCCEEDED, RunStatus.PRUNED) and not oldest.node_lost:
                self.failed_earlier += 1
        self.recent.append(finished)
        self.counts[finished.status.value] += 1

    def __len__(self) -> int:
        return sum(self.counts.values())


@dataclass
class Active:
    item: QueueItem
    run_id: int
    ticket: int
    started: float                      # the runner's clock
    timeout: Optional[float] = None
    model_dir: str = ""
    last_progress: float = float("-inf")
    ending: bool = False                # a cancel or timeout was sent
    before: Dict[str, int] = field(default_factory=dict)  # files around the project when it started


class _RunSink:
    """Routes one running version's events to the runner: logs to the log
    file, metrics to the batch the runner writes, placement to the run's row."""

    def __init__(self, runner: Runner, run_id: int, label: str):
        self.runner, self.run_id, self.label = runner, run_id, label
        self.active: Optional[Active] = None

    def started(self, where: Mapping[str, Any]) -> None:
        fields = {"child_pid": where.get("pid"), "gpu": where.get("gpu"), "node": where.get("node"),
                  "node_id": where.get("node_id")}
        fields = {k: v for k, v in fields.items() if v is not None}
        if fields:
            self.runner.ledger.update_run(self.run_id, **fields)
        if where.get("gpu") is not None:
            self.runner.say(f"{self.label}: on GPU {where['gpu']}", echo=False)

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.runner.say(message, level, echo=False)

    def data(self, fingerprint: str) -> None:
        self.runner.ledger.update_run(self.run_id, data_fingerprint=fingerprint)

    def output(self, record: Mapping[str, Any]) -> None:
        if self.active is not None:
            self.runner.record_output(self.run_id, self.active.item, record)

    def metrics(self, rows: Sequence[MetricRow]) -> None:
        self.runner.queue_metrics(self.run_id, rows)
        active = self.active
        if active is None:
            return
        self.runner.search.metrics(active.item.key, rows)
        stepped = next((r for r in reversed(rows) if r.step is not None), None)
        now = self.runner.clock()
        if stepped is not None and now - active.last_progress >= PROGRESS_EVERY:
            active.last_progress = now
            value = "nan" if stepped.value is None else f"{stepped.value:.4g}"
            self.runner.notify(f"{self.label}: step {stepped.step}  {stepped.split}/{stepped.name}={value}  "
                               f"({elapsed_text(now - active.started)})", logging.INFO)


def fault_point(name: str) -> None:
    """Fault injection for the reliability suite: MLPIPELINE_FAULT=<name> makes
    the runner SIGKILL itself at that point, as a power cut would."""
    if os.environ.get("MLPIPELINE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Runner:
    """Works through a project's queue with the executor and describer it is given.

    ``clock`` is the monotonic clock every timing decision reads (heartbeats,
    timeouts, metric batches); tests inject one."""

    def __init__(self, project: Project, ledger: Ledger, executor: Any, describer: Describer, options: Options,
                 outputs: Any = None, host: str = "localhost",
                 notify: Optional[Callable[[str, int], None]] = None, watcher: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.project = project
        self.ledger = ledger
        self.executor = executor
        self.describer = describer
        self.options = options
        self.outputs = outputs or NullOutputs()
        self.host = host
        self.notify = notify or (lambda message, level: None)
        self.watcher = watcher
        self.clock = clock
        self.mode = Mode.TEST if options.test_mode else Mode.RUN
        self.planner = Planner(project, describer, project.config_path(options.test_mode),
                               options.only_version, self.say)
        # what ran in this batch: (script, version) -> (fingerprint, params sha256, succeeded)
        self.ran: Dict[Tuple[str, str], Tuple[str, str, bool]] = {}
        self.forced: Set[Tuple[str, str]] = set()         # asked to run again (rerun request)
        self.retried: Dict[Tuple[str, str], int] = {}      # runs again after their node was lost
        self.priority: List[Tuple[str, str]] = []         # asked to run first (reorder request)
        self.broken_seen: Set[Tuple[str, str]] = set()   # (script, sha256) of scripts that failed to load
        self.history_skips: Set[Tuple[str, str]] = set()  # versions -u skipped (said once each)
        self.ended = Ended()
        self.active: Dict[int, Active] = {}               # ticket -> the run it carries
        self.runner_id: Optional[int] = None
        self.stopping = False          # finish the running versions, start nothing new
        self.kill_requested = False    # kill the running versions now
        self.paused = False
        self.missing: List[str] = []   # listed scripts that do not exist (named in the summary; exit 1)
        self.waiting = False           # the last step found nothing to do but wait
        self._pending: List[str] = []  # scripts the last plan was still describing
        self._idle_said = False
        self._replan = True
        self._checked_first = False
        self._metrics: Dict[int, List[MetricRow]] = {}
        self._metric_count = 0
        self._metrics_at = float("-inf")
        self._last_requests = float("-inf")
        self._written: Optional[Tuple[list, Optional[str]]] = None  # the queue snapshot as last written
        self._cursor: Tuple[Optional[Plan], int] = (None, 0)        # where _next found the last queued version
        self._beats: Any = None
        self._identity = process_start()
        ledger.on_busy = lambda message: self.say(message, logging.WARNING)
        ledger.give_up = lambda: self.kill_requested
        self._succeeded: Dict[str, Dict[str, Tuple[Optional[str], Optional[str], Optional[str]]]] = {}
        self.search = SearchDriver(self)

    # -- messages -----------------------------------------------------------

    def say(self, message: str, level: int = logging.INFO, echo: bool = True) -> None:
        self.outputs.log(message, level)
        if echo:
            self.notify(message, level)

    # -- life cycle ---------------------------------------------------------

    def begin(self) -> None:
        """Register this runner (execution mode) and repair the rows of runs a
        dead runner left ``running``. The caller holds the project lock."""
        self._beats = self.ledger.heartbeats(lambda: ([a.run_id for a in list(self.active.values())],
                                                      self.runner_id), HEARTBEAT_EVERY)
        if self.mode != Mode.RUN:
            return
        liveness = Liveness(self.ledger.conn, self.host)
        stale = [row for row in self.ledger.running_runs() if not liveness.run_alive(row)]
        self.ledger.mark_interrupted(stale, "the runner working on it stopped without finishing it "
                                            f"(found at the start of runner pid {os.getpid()})")
        dead = [r["id"] for r in self.ledger.open_runners() if not liveness.runner_alive(r)]
        if dead:
            self.ledger.end_runners(dead)
        if stale:
            self.say(f"marked run(s) {', '.join(str(row['id']) for row in stale)} interrupted: their runner is gone",
                     logging.WARNING)
        self.runner_id = self.ledger.register_runner(self.mode, self.host, self.options.options_text, self._identity)

    def end(self) -> None:
        if self._beats is not None:
            self._beats.stop()
            self._beats = None
        if self.watcher is not None:
            self.watcher.stop()
        self.search.close(0.0 if self.kill_requested else CLOSE_GRACE)
        self.describer.close()
        if self.runner_id is not None:
            self.ledger.write_queue(self.runner_id, [], None)
            self.ledger.end_runner(self.runner_id)

    def request_stop(self) -> None:
        self.stopping = True

    def request_kill(self) -> None:
        self.stopping = True
        self.kill_requested = True

    def run(self) -> Ended:
        """The driver: step until nothing is left; wait briefly when idle."""
        self.begin()
        try:
            while self.run_once():
                if self.waiting:
                    time.sleep(0.02)
        except BaseException as exc:
            self._abandon(exc)
            raise
        finally:
            self._end_quietly()
        return self.ended

    def _abandon(self, exc: BaseException) -> None:
        """Never leave a version running unwatched, nor its run ``running``."""
        self.executor.close()
        try:
            self._flush_metrics()  # points before the status that ends their run
        except BaseException:  # noqa: BLE001 - a full disk or a second Ctrl+C: the status matters more
            pass
        if isinstance(exc, KeyboardInterrupt):
            why = "interrupted (Ctrl+C) while the version ran"
        elif isinstance(exc, MLPipelineError):
            why = f"the runner stopped while the version ran: {exc}"
        else:
            why = f"the runner stopped on an internal error while the version ran ({type(exc).__name__})"
        for active in self.active.values():
            try:
                self.ledger.set_status(active.run_id, RunStatus.INTERRUPTED, error=why)
            except MLPipelineError:
                pass
            self._cleanup(active)
        self.active.clear()

    def _end_quietly(self) -> None:
        try:
            self._flush_metrics()
            self.end()
        except MLPipelineError as exc:  # e.g. the disk is still full; the error that stopped us is shown
            log.warning("could not close the runner's records: %s", exc)

    # -- one step -----------------------------------------------------------

    def run_once(self, now: Optional[float] = None) -> bool:
        """One step of the loop; False when there is nothing left to do."""
        now = self.clock() if now is None else now
        self._consume_requests(now)
        self._end_overdue(now)
        finished = self.executor.poll(POLL_WAIT if self.active else 0.0)
        now = self.clock()
        self._flush_metrics(now, force=bool(finished))
        for ticket, outcome in finished:
            self._finish(ticket, outcome, now)
        if self.search.changed():
            self._replan = True
        self._notice_changes(now)
        if finished and (self.paused or self.stopping):  # nothing is scheduled: still show what ended
            self._snapshot(self._plan_now())
        self.ledger.checkpoint(now)
        if not self.stopping and not self.paused:
            self._schedule()
        return self._busy()

    def _busy(self) -> bool:
        if self.active:
            self.waiting = False
            return True
        self.waiting = True
        if self.stopping:
            return False
        if self._replan or self._pending or self.paused or self.search.waiting():
            return True
        if self.options.watch:
            if not self._idle_said:  # one line, so a waiting runner does not look hung
                self._idle_said = True
                self.say(f"queue empty: waiting for edits to {os.path.basename(self.planner.config_path)} or "
                         f"{os.path.relpath(self.project.models_dir, self.project.root)}/ (Ctrl+C to stop)")
            return True
        if self._config_just_changed():  # a save may still be under way: read it once more when it settles
            self._replan = True
            return True
        return False

    def _config_just_changed(self) -> bool:
        try:
            age = self.ledger.clock() - os.stat(self.planner.config_path).st_mtime
        except OSError:
            return False
        return -1.0 < age < CONFIG_SETTLE_WINDOW

    def _consume_requests(self, now: float) -> None:
        if self.runner_id is None or now - self._last_requests < REQUESTS_EVERY:
            return
        self._last_requests = now
        for request in self.ledger.open_requests():
            result = self._act(request["kind"], request["run_id"], json.loads(request["payload"] or "{}"))
            self.ledger.consume_request(request["id"], self.runner_id, result)

    def _act(self, kind: str, run_id: Optional[int], payload: Dict[str, Any]) -> str:
        self._cursor = (None, 0)
        if kind == "cancel":
            for ticket, active in self.active.items():
                if active.run_id == run_id:
                    active.ending = True
                    self.executor.cancel(ticket, RunStatus.CANCELLED, "cancelled with mlpipeline cancel")
                    return "cancelling"
            return "not running in this runner"
        if kind in ("pause", "resume"):
            paused = kind == "pause"
            if paused != self.paused:
                self.paused = paused
                self.ledger.set_paused(self.runner_id or 0, paused)
                self.say("paused: running versions finish, nothing new starts (mlpipeline resume to go on)"
                         if paused else "resumed")
                self._replan = True
            return kind + "d"
        if kind == "rerun":
            key = (str(payload.get("script")), str(payload.get("version")))
            self.ran.pop(key, None)
            self.history_skips.discard(key)
            self.forced.add(key)
            self._replan = True
            return "queued again"
        if kind == "reorder":
            self.priority = [(str(s), str(v)) for s, v in payload.get("order", [])]
            self._replan = True
            return "reordered"
        return f"unknown request {kind!r}"

    def _end_overdue(self, now: float) -> None:
        for ticket, active in self.active.items():
            if self.kill_requested:
                self.executor.cancel(ticket, RunStatus.INTERRUPTED, "the runner was told to stop twice (Ctrl+C or "
                                                                    "SIGTERM) and killed the version")
            elif not active.ending and active.timeout and now - active.started > active.timeout:
                active.ending = True
                self.executor.cancel(ticket, RunStatus.TIMEOUT, f"timed out after {active.timeout:g} s (the "
                                                                f"version's timeout); its processes were killed")

    def _notice_changes(self, now: float) -> None:
        described = bool(self.describer.poll())
        edited = self.watcher is not None and self.watcher.settled()
        if edited:  # a module or data file a script missed may be there now
            self.describer.forget_transient()
        if described or edited:
            self._replan = True
            if self.stopping or self.paused or self.executor.capacity() <= 0:  # no slot to fill: show the new queue
                self._snapshot(self._plan_now())

    # -- metrics, written in batches ---------------------------------------

    def queue_metrics(self, run_id: int, rows: Sequence[MetricRow]) -> None:
        self._metrics.setdefault(run_id, []).extend(rows)
        self._metric_count += len(rows)
        if self._metric_count >= METRICS_BATCH:
            self._flush_metrics()

    def _flush_metrics(self, now: Optional[float] = None, force: bool = True) -> None:
        now = self.clock() if now is None else now
        if not self._metrics or (not force and now - self._metrics_at < METRICS_EVERY
                                 and self._metric_count < METRICS_BATCH):
            return
        self._metrics_at = now
        for run_id in list(self._metrics):
            rows = self._metrics[run_id]
            try:
                self.ledger.add_metrics(run_id, rows)  # taken out of the buffer only once committed
            except MLPipelineError:
                raise  # the ledger cannot be written at all (a full disk): the runner stops, what it had is kept
            except Exception as exc:  # noqa: BLE001 - the last line of defence: this run fails, not the runner
                self._fail_run(run_id, f"its metrics could not be recorded ({type(exc).__name__}: {exc})")
            del self._metrics[run_id]
            self._metric_count -= len(rows)

    def _fail_run(self, run_id: int, reason: str) -> None:
        """End a running version that cannot be recorded: it fails with ``reason``; the rest goes on."""
        for ticket, active in self.active.items():
            if active.run_id == run_id and not active.ending:
                active.ending = True
                self.executor.cancel(ticket, RunStatus.FAILED, reason, cold=True)
                return
        self.say(f"run {run_id}: {reason}", logging.ERROR)

    # -- planning -----------------------------------------------------------

    def _plan_now(self) -> Plan:
        plan = self.planner.plan()
        self._pending = plan.pending
        self.missing = list(dict.fromkeys(plan.missing))  # as the queue now stands
        fault_point("planned")
        if not self._checked_first:
            # Config errors stop a batch before anything starts: wait for the scripts whose entries name
            # versions (and, with --version, for every script), not for one whose import hangs.
            if not plan.unchecked and not (self.options.only_version and plan.pending):
                self.planner.check_first(plan)
                self._checked_first = True
        else:
            self.planner.warn_problems(plan)
        return plan

    def _history(self, plan: Plan) -> Set[Tuple[str, str]]:
        """Keys of the plan's versions that ``-u`` skips: their last execution-mode
        run succeeded with what trains unchanged (one query a script)."""
        if not (self.options.use_history and self.mode == Mode.RUN):
            return set()
        done = set()
        for rel in {item.rel for item in plan.items}:
            last = self._succeeded.get(rel)
            if last is None:  # asked once a script, again only after one of its runs finished
                last = self._succeeded[rel] = self.ledger.succeeded_last(rel)
            for item in plan.items:
                if item.rel == rel and item.key not in self.forced and unchanged_since(item, last.get(item.spec.version)):
                    done.add(item.key)
        return done

    def _snapshot(self, plan: Plan) -> None:
        """Keep ``status``'s view of the queue current: the rows that changed
        (a start changes one or two of a 1 000-version queue), or all of them
        when the queue itself changed."""
        if self.runner_id is None:
            return
        running = {a.item.key for a in self.active.values()}
        history = self._history(plan)
        entries: List[Tuple[str, Optional[str], str, Optional[str]]] = [
            (item.rel, item.spec.version, *self._state(item, history, running)) for item in self._ordered(plan)]
        entries += [(slot.rel, slot.decl["name"], *self.search.row(slot)) for slot in plan.searches]
        entries += [(rel, None, "describing", "loading the script to learn its versions") for rel in plan.pending]
        entries += [(script, version, "skipped", reason) for script, version, reason in plan.skipped]
        # the points searches started, last: a new one adds a row instead of rewriting the snapshot
        entries += [(item.rel, item.spec.version, *self._state(item, history, running)) for item in self.search.items]
        written = self._written
        if written is not None and written[1] == plan.config_error and len(written[0]) <= len(entries) \
                and all(a[:2] == b[:2] for a, b in zip(written[0], entries)):
            changed = [(i, e[2], e[3]) for i, (w, e) in enumerate(zip(written[0], entries)) if w[2:] != e[2:]]
            added = [(i, *entries[i]) for i in range(len(written[0]), len(entries))]
            if changed or added:
                self.ledger.update_queue(self.runner_id, changed, added)
        else:
            self.ledger.write_queue(self.runner_id, entries, plan.config_error)
        self._written = (entries, plan.config_error)

    def _ordered(self, plan: Plan) -> List[QueueItem]:
        """The plan's startable versions, those a reorder request named first."""
        items = plan.startable
        if not self.priority:
            return items
        rank = {key: i for i, key in enumerate(self.priority)}
        return sorted(items, key=lambda item: rank.get(item.key, len(rank)))

    def _state(self, item: QueueItem, history: Set[Tuple[str, str]],
               running: Set[Tuple[str, str]]) -> Tuple[str, Optional[str]]:
        """(state, reason) of a queued version: running, finished, skipped or queued.

        A version runs once per batch; it runs again in the same batch (under
        --watch, say) only when what trains or its parameters changed since, and
        it failed or -u asks for changed versions to run again."""
        key = item.key
        if key in running:
            return "running", None
        previous = self.ran.get(key)
        if previous is not None:
            unchanged = previous[:2] == (item.spec.fingerprint, item.spec.params_sha256)
            if unchanged or (previous[2] and not self.options.use_history):
                return "finished", f"{'succeeded' if previous[2] else 'failed'} in this batch"
        if key in history:
            return "skipped", "already succeeded with this code, data and these parameters (-u)"
        return "queued", None

    def _next(self, plan: Plan) -> Optional[Tuple[str, Any]]:
        for rel, sha, error in plan.broken_now:
            if (rel, sha) not in self.broken_seen:
                return ("broken", (rel, sha, error))
        history = self._history(plan)
        running = {a.item.key for a in self.active.values()}
        items = self._ordered(plan)
        # Within one plan, a version before the cursor never becomes queued again (a request resets it),
        # so each start does not rescan a 1 000-version queue from its head.
        first = self._cursor[1] if self._cursor[0] is plan else 0
        found = None
        for index in range(first, len(items)):
            item = items[index]
            state, reason = self._state(item, history, running)
            if state == "queued":
                self._cursor = (plan, index)
                found = (index, item)
                break
            if state == "skipped" and item.key not in self.history_skips:
                self.history_skips.add(item.key)
                self.say(f"{item.label}: skipped, {reason}")
        step = self._next_point(plan.searches, found[0] if found else None)
        if step is not None:
            return step
        return ("run", found[1]) if found else None

    def _next_point(self, slots: List[SearchSlot], before: Optional[int]) -> Optional[Tuple[str, Any]]:
        """A search the queue reaches before the next queued version: a point of
        it to start, or None (none wants a slot now, or they are still choosing;
        their answer plans again)."""
        for slot in slots:
            if slot.held or (before is not None and slot.position > before):
                break
            step = self.search.step(slot)
            if step == "wait":  # it is choosing: what comes after it may use the free slots meanwhile
                continue
            if step is not None:
                return ("run", step)
        return None

    def _schedule(self) -> None:
        while self._replan and self.executor.capacity() > 0 and not self.stopping:
            plan = self._plan_now()
            if not self._checked_first:  # the first plan is checked whole before anything starts
                self._snapshot(plan)
                self._replan = False
                return
            step = self._next(plan)
            if step is None:
                self._replan = bool(plan.pending)
                self._snapshot(plan)
                if plan.pending:
                    return
            elif step[0] == "broken":
                self._record_broken(*step[1])
                self._snapshot(plan)
            else:
                self._start(step[1], plan)
                self._snapshot(plan)

    # -- running ------------------------------------------------------------

    def model_dir(self, item: QueueItem) -> str:
        stem = os.path.splitext(os.path.basename(item.spec.script))[0]
        suffix = item.spec.params.get(version_parameters.MODEL_DIR_SUFFIX) or f"-{item.spec.version}"
        return os.path.join(self.project.outputs_dir, "model_ckpts", f"{stem}{suffix}")

    def _record_broken(self, rel: str, sha: str, error: ScriptError, version: Optional[str] = None) -> None:
        if version is None:
            self.broken_seen.add((rel, sha))
        run = self.ledger.start_run(script=rel, version=version, mode=self.mode, host=self.host, pid_start=self._identity,
                                    script_sha256=sha, command=self.options.command, runner_id=self.runner_id)
        outcome = Outcome(RunStatus.FAILED, error=str(error), traceback=error.details, script_error=True)
        self.ledger.set_status(run["id"], RunStatus.FAILED, error=outcome.error, traceback=outcome.traceback or None)
        self.say(str(error), logging.ERROR)
        if error.details:
            self.say(error.details, logging.ERROR, echo=False)
        self.ended.add(Finished.of(run["id"], None, outcome))
        if self.options.stop_on_error:
            self.stopping = True

    def _start(self, item: QueueItem, plan: Plan) -> None:
        spec = item.spec
        self.ran[item.key] = (spec.fingerprint, spec.params_sha256, False)
        self._idle_said = False
        self.forced.discard(item.key)
        test = self.options.test_mode
        model_dir = tempfile.mkdtemp(prefix="mlp-test-") if test else self.model_dir(item)
        git = repro.git_state(self.project.root)
        run = self.ledger.start_run(
            script=spec.rel, version=spec.version, mode=self.mode, host=self.host, pid_start=self._identity,
            params=dict(spec.params), script_sha256=spec.script_sha256, fingerprint=spec.fingerprint,
            params_sha256=spec.params_sha256, model_dir=None if test else model_dir,
            command=self.options.command, python_version=repro.python_version(),
            seed=spec.seed, git_commit=git.commit if git else None,
            git_dirty=int(git.dirty) if git else None, runner_id=self.runner_id)
        run_id = run["id"]
        run_dir = None if test else os.path.join(self.project.outputs_dir, "runs", str(run_id))
        if run_dir:
            self.ledger.update_run(run_id, run_dir=run_dir)
            if git:
                repro.save_diff(run_dir, git)
        where = "test mode, 1 step" if test else "model dir " + os.path.relpath(model_dir, self.project.root)
        self.say(f"{item.label}: started (run {run_id}, {where})")
        exec_mode = ExecutionModeKeys.TEST if test else ExecutionModeKeys.TRAIN
        sink = _RunSink(self, run_id, item.label)
        timeout = self.options.timeout or plan.timeout
        job = Job(spec, model_dir, exec_mode, run_dir, f"[{spec.rel} {spec.version}] " if self.options.label_output
                  else "", timeout, self.options.memory_limit, run["uid"])
        active = Active(item, run_id, 0, self.clock(), timeout, model_dir)
        sink.active = active
        fault_point("started")
        active.before = litter.snapshot(self._litter_folders())
        try:
            active.ticket = self.executor.submit(job, sink)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                why = "interrupted (Ctrl+C) while starting"
            elif isinstance(exc, MLPipelineError):
                why = f"the runner stopped before the version started: {exc}"
            else:
                why = f"the runner stopped on an internal error before the version started ({type(exc).__name__})"
            try:
                self.ledger.set_status(run_id, RunStatus.INTERRUPTED, error=why)
            finally:
                self._cleanup(active)
            raise
        self.active[active.ticket] = active

    def _finish(self, ticket: int, outcome: Outcome, now: float) -> None:
        active = self.active.pop(ticket, None)
        if active is None:
            return
        self._cleanup(active)
        self._warn_litter(active)
        try:
            self._record(active.run_id, active.item, outcome, now - active.started)
        except MLPipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: this run fails, not the runner
            outcome = Outcome(RunStatus.FAILED, error=f"its result could not be recorded ({type(exc).__name__}: "
                                                      f"{exc})")
            self.ledger.set_status(active.run_id, RunStatus.FAILED, error=outcome.error)
            self.say(f"{active.item.label}: failed (run {active.run_id}): {outcome.error}", logging.ERROR)
        self._succeeded.pop(active.item.rel, None)
        fingerprint, params, _ = self.ran[active.item.key]
        self.ran[active.item.key] = (fingerprint, params, outcome.status == RunStatus.SUCCEEDED)
        self.ended.add(Finished.of(active.run_id, active.item.key, outcome))
        self._replan = True
        if outcome.node_lost and not self.stopping:
            self._retry(active, outcome)
        self.search.finished(active.item.key, active.run_id, outcome.status.value,
                             again=active.item.key in self.forced)
        if outcome.status != RunStatus.SUCCEEDED and self.options.stop_on_error:
            self.stopping = True

    def prune(self, rel: str, version: str, reason: str) -> None:
        """A search's stopper ends a running point: cleanly, status ``pruned``, its curve kept."""
        for ticket, active in self.active.items():
            if active.item.key == (rel, version) and not active.ending:
                active.ending = True
                self.executor.cancel(ticket, RunStatus.PRUNED, reason, cold=False)
                return

    def search_failed(self, rel: str, name: str, sha: str, error: str, details: str) -> None:
        """A search's propose() failed (or its script no longer loads): recorded as a failed
        run of the search, which proposes no more; the rest of the queue goes on."""
        self._record_broken(rel, sha, ScriptError(error, details=details), version=name)

    def _retry(self, active: Active, outcome: Outcome) -> None:
        """A version whose machine was lost did not fail on its own: run it again,
        as a new run, up to ``retries`` times."""
        key = active.item.key
        done = self.retried.get(key, 0)
        if done >= self.options.retries:
            self.say(f"{active.item.label}: not run again: its node was lost {done + 1} times "
                     f"(--retries {self.options.retries})", logging.WARNING)
            return
        self.retried[key] = done + 1
        self.ran.pop(key, None)
        self.history_skips.discard(key)
        self.forced.add(key)
        self.say(f"{active.item.label}: its node was lost; running it again as a new run "
                 f"(retry {done + 1} of {self.options.retries})", logging.WARNING)

    def _litter_folders(self) -> List[str]:
        return [self.project.root, self.project.models_dir]

    def _warn_litter(self, active: Active) -> None:
        """Say which files next to the configs and scripts changed while a
        version ran: a version should write inside its model dir."""
        changed = litter.changed_since(active.before, self._litter_folders())
        if changed:
            shown = ", ".join(os.path.relpath(p, self.project.root) for p in changed[:5])
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            self.say(f"{active.item.label}: wrote outside its model dir while it ran (run {active.run_id}): {shown}"
                     f"{more}; keep a version's files in the model_dir it is given", logging.WARNING)

    def _cleanup(self, active: Active) -> None:
        if self.options.test_mode:
            shutil.rmtree(active.model_dir, ignore_errors=True)

    def record_output(self, run_id: int, item: QueueItem, record: Mapping[str, Any]) -> None:
        """Index a value the version stored with ``save_output`` (the runner is the ledger's only writer)."""
        from .cached_outputs import output_row

        row = output_row(record, item.rel, item.spec.version)
        if row is None:
            self.say(f"{item.label}: ignored a malformed output event (run {run_id})", logging.WARNING, echo=False)
            return
        self.ledger.add_output(run_id, row)
        self.say(f"{item.label}: output {row['name']!r} stored ({row['summary']}; {row['path']})", echo=False)

    def _record(self, run_id: int, item: QueueItem, outcome: Outcome, seconds: float) -> None:
        result = outcome.result or {}
        rows = [MetricRow(name, value, None, "train") for name, value in result.get("eval_train", {}).items()]
        rows += [MetricRow(name, value, None, "test") for name, value in result.get("eval_test", {}).items()]
        self._flush_metrics()
        self.ledger.add_metrics(run_id, rows)
        fault_point("record")
        known = {"data_fingerprint": result["data_fingerprint"]} if result.get("data_fingerprint") else {}
        self.ledger.set_status(  # (a version ended early keeps the data fingerprint it sent before training)
            run_id, outcome.status, exit_code=outcome.exit_code, signal=outcome.signal,
            error=outcome.error or None, traceback=outcome.traceback or None,
            steps=result.get("steps"), eval_train_text=result.get("eval_train_text"),
            eval_test_text=result.get("eval_test_text"), **known,
            packages=json.dumps(outcome.packages, sort_keys=True) if outcome.packages else None)
        took = elapsed_text(seconds)
        if outcome.status == RunStatus.SUCCEEDED:
            self.outputs.output_block(script=item.rel, version=item.spec.version, result=result,
                                      params=dict(item.spec.params),
                                      epochs=item.spec.params.get(version_parameters.EPOC_COUNT))
            self.say(f"{item.label}: succeeded in {took} (run {run_id}); train: {result.get('eval_train_text') or '-'}; "
                     f"test: {result.get('eval_test_text') or '-'}")
        else:
            asked = outcome.status in (RunStatus.CANCELLED, RunStatus.INTERRUPTED)  # asked for
            level = logging.INFO if outcome.status == RunStatus.PRUNED else logging.WARNING if asked else logging.ERROR
            self.say(f"{item.label}: {outcome.status.value} after {took} (run {run_id}): {outcome.error}", level)
            if outcome.traceback:
                self.say(outcome.traceback.rstrip(), logging.ERROR, echo=False)

    def queued_left(self) -> bool:
        """Is anything still waiting to run (after a stop)?"""
        try:
            plan = self.planner.plan()
        except Exception:  # noqa: BLE001 - only a hint for the exit code
            return False
        history = self._history(plan)
        return bool(plan.pending) or self.search.left() or \
            any(self._state(item, history, set())[0] == "queued" for item in plan.items)
