"""The loop that works through the queue.

``Runner.run_once(now)`` is one step: consume requests (cancel, pause, resume, rerun, reorder)
→ end what is overdue → poll the executor → record what arrived and what finished → apply the
decisions (stoppers, searches, runs that cannot be recorded) → schedule what the queue allows.
``run`` is the thin driver that calls it until nothing is left (or, with ``--watch``, until it
is told to stop).

The runner holds an executor, a describer and its parts without knowing which: the queue
(``queue.BatchQueue``: what runs next), the searches (``search.Searches``), the recorder (the
ledger), and the observers (the terminal, the host files, the litter check). It never sees a pid.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Set

from ..core.faults import fault_point
from ..core.timings import timings
from ..core.errors import MLPipelineError, ScriptError
from ..core.layout import Project
from ..core.lifecycle import SYSTEM_SPLIT, Decision, Job, MetricRow, Mode, Outcome, RunStatus, VersionSpec
from ..core.resources import Wait
from ..core.lifecycle import Executor
from ..plan.planner import Describer, Plan, Planner, QueueItem
from ..proc.system import process_start
from ..script.modes import ExecutionModeKeys
from ..script.versions import dir_suffix
from ..store.curate import apply_curation
from ..store.ledger import Ledger
from ..store.liveness import Liveness
from .hostfiles import NullOutputs
from .observers import HostFiles, Litter, Observers, Run, Terminal
from .ended import Ended, Finished
from .adopt import adopt, adoptable, still_in_slurm
from .events import RunEvents
from .guards import Retries, silence_note, stalled_error
from .queue import BatchQueue, Broken, Key, Refused
from .recorder import Recorder, shared_model_dir, why_stopped
from .search import Searches
from .search.pipe import Fork

log = logging.getLogger(__name__)
WAIT_RECHECK = 2.0  # seconds between looks at the resources a waiting version needs
# The library never prints: without a handler configured by the application,
# mlpipeline's loggers stay silent instead of falling back to bare stderr lines.
logging.getLogger("mlpipeline").addHandler(logging.NullHandler())



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
    retries: Optional[int] = None       # runs again a version whose run ended as retry_on says (over [MLP] retries)
    default_retries: int = 0            # without --retries or [MLP] retries: 0 here, 1 on a cluster backend
    retry_on: Optional[FrozenSet[str]] = None  # over [MLP] retry_on; default node_lost, signal, oom, stalled
    retry_delay: float = 30.0           # seconds before the first retry; doubles, at most 10 minutes
    stall_timeout: Optional[float] = None  # seconds of silence that end a version (over [MLP] stall_timeout)
    stop_on_nan: bool = False           # a NaN or infinite point ends its version (or [MLP] stop_on_nan)
    options_text: Dict[str, Any] = field(default_factory=dict)  # shown by status


class Runner:
    """Works through a project's queue with the executor and describer it is given.

    ``clock`` is the monotonic clock every timing decision reads (heartbeats,
    timeouts, metric batches); tests inject one."""

    def __init__(self, project: Project, ledger: Ledger, executor: Executor, describer: Describer, options: Options,
                 outputs: Any = None, host: str = "localhost", planner: Optional[Planner] = None,
                 notify: Optional[Callable[[str, int], None]] = None, watcher: Any = None,
                 clock: Callable[[], float] = time.monotonic, fork: Optional[Fork] = None):
        """``fork``: what forks the searches' children (the local executor's fork servers), or None
        to spawn them; ``planner``: where the queue comes from (default: the queue config)."""
        self.project, self.ledger, self.executor, self.describer = project, ledger, executor, describer
        self.options = options
        self.outputs = outputs or NullOutputs()
        self.host = host
        self.notify = notify or (lambda message, level: None)
        self.watcher = watcher
        self.clock = clock
        self.mode = Mode.TEST if options.test_mode else Mode.RUN
        self.planner = planner or Planner(project, describer, project.config_path(options.test_mode),
                                          options.only_version, self.say)
        self.searches = Searches(ledger, project.root, options.test_mode, options.use_history,
                                 lambda message, level: self.say(message, level), clock, fork=fork)
        self.queue = BatchQueue(self.planner, ledger, self.searches, self.mode, options.use_history, self.say)
        self.recorder = Recorder(ledger, project, self.mode, host, process_start(), options.command)
        self.observers = Observers([Terminal(self.say, self.notify, project, options.test_mode),
                                    HostFiles(self.outputs), Litter(project, self.say)],
                                   lambda message: self.say(message, logging.WARNING))
        self.retries = Retries(options, ledger)
        self._config: Any = None                           # the queue config as last read ([MLP] policies)
        self._silences: Dict[Key, str] = {}                # running versions silent past half the stall timeout
        self.ended = Ended()
        self.active: Dict[int, Run] = {}                   # ticket -> the run it carries
        self.runner_id: Optional[int] = None
        self.stopping = False          # finish the running versions, start nothing new
        self.kill_requested = False    # kill the running versions now
        self.paused = False
        self.missing: List[str] = []   # listed scripts that do not exist, entries left out (in the summary; exit 1)
        self.waiting = False           # the last step found nothing to do but wait
        self._decisions: List[Decision] = []
        self._pending: List[str] = []  # scripts the last plan was still describing
        self._idle_said = False
        self._replan = True
        self._fits_at = float("-inf")  # when the queue last asked whether versions' resources are free
        self._parked: Optional[QueueItem] = None  # a search's point that waits for resources
        self._checked_first = False
        self._last_requests = float("-inf")
        self._beats: Any = None
        ledger.on_busy = lambda message: self.say(message, logging.WARNING)
        ledger.give_up = lambda: self.kill_requested

    @property
    def history_skips(self) -> Set[Key]:
        return self.queue.history_skips

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
                                                      self.runner_id), timings().heartbeat)
        if self.mode != Mode.RUN:
            return
        liveness = Liveness(self.ledger, self.host)
        stale = [row for row in self.ledger.running_runs() if not liveness.run_alive(row)]
        adopted, stale = adoptable(self.executor, stale)  # a cluster's jobs outlive their runner (Slurm)
        self.ledger.mark_interrupted(stale, "the runner working on it stopped without finishing it "
                                            f"(found at the start of runner pid {os.getpid()})")
        dead = [r["id"] for r in self.ledger.open_runners() if not liveness.runner_alive(r)]
        if dead:
            self.ledger.end_runners(dead)
        self.retries.dead_runners = set(dead)
        if stale:
            self.say(f"marked run(s) {', '.join(str(row['id']) for row in stale)} interrupted: their runner is gone",
                     logging.WARNING)
            still = still_in_slurm(stale)
            if still:
                self.say(still, logging.WARNING)
        self.runner_id = self.ledger.register_runner(self.mode, self.host, self.options.options_text,
                                                     self.recorder.identity)
        self.recorder.runner_id = self.runner_id
        for row, job in adopted:
            adopt(self, row, job)

    def end(self) -> None:
        if self._beats is not None:
            self._beats.stop()
            self._beats = None
        if self.watcher is not None:
            self.watcher.stop()
        self.searches.close(0.0 if self.kill_requested else timings().close_grace)
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
                    self._idle(0.02)
        except BaseException as exc:
            self._abandon(exc)
            raise
        finally:
            self._end_quietly()
        return self.ended

    def _idle(self, seconds: float) -> None:
        """Nothing runs: wait up to ``seconds``, less when a search's answer or a script's
        description (what the queue waits for) arrives first."""
        wait = getattr(self.describer, "wait", None)
        if self.searches.waiting():
            self.searches.poll(seconds)
        elif self._pending and wait is not None:
            wait(seconds)
        else:
            time.sleep(seconds)

    def _abandon(self, exc: BaseException) -> None:
        """Never leave a version running unwatched, nor its run ``running``."""
        self.executor.close()
        try:
            self.recorder.flush(self.clock())  # points before the status that ends their run
        except BaseException:  # noqa: BLE001 - a full disk or a second Ctrl+C: the status matters more
            pass
        why = why_stopped(exc, "while the version ran", "while the version ran")
        self.recorder.abandon([run.run_id for run in self.active.values()], why)
        for run in self.active.values():
            self._cleanup(run)
        self.active.clear()

    def _end_quietly(self) -> None:
        try:
            self.recorder.flush(self.clock())
            self.end()
        except MLPipelineError as exc:  # e.g. the disk is still full; the error that stopped us is shown
            log.warning("could not close the runner's records: %s", exc)

    # -- one step -----------------------------------------------------------

    def run_once(self, now: Optional[float] = None) -> bool:
        """One step of the loop; False when there is nothing left to do."""
        now = self.clock() if now is None else now
        self._consume_requests(now)
        self._end_overdue(now)
        finished = self.executor.poll(timings().poll_wait if self.active else 0.0)
        now = self.clock()
        self._flush(now, force=bool(finished))
        for ticket, outcome in finished:
            self._finish(ticket, outcome, now)
        if self.searches.changed() or ((self.queue.waiting or self.queue.not_before)
                                       and now - self._fits_at >= WAIT_RECHECK):
            self._replan = True  # (a version waiting for resources: look again, another user's job may be done)
        self._take_decisions()
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
        if self._replan or self._pending or self.paused or self.searches.waiting() or self.queue.waiting \
                or self._parked is not None or self.queue.not_before:
            return True
        if self.options.watch:
            if not self._idle_said:  # one line, so a waiting runner does not look hung
                self._idle_said = True
                self.say(f"queue empty: waiting for edits to {os.path.basename(self.planner.config_path)} or "
                         f"{os.path.relpath(self.project.models_dir, self.project.root)}/ (Ctrl+C to stop)")
                self.observers.tell("queue_empty")
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
        return -1.0 < age < timings().config_settle

    def _consume_requests(self, now: float) -> None:
        if self.runner_id is None or now - self._last_requests < timings().requests:
            return
        self._last_requests = now
        for request in self.ledger.open_requests():
            result = self._act(request["kind"], request["run_id"], json.loads(request["payload"] or "{}"))
            self.ledger.consume_request(request["id"], self.runner_id, result)

    def _act(self, kind: str, run_id: Optional[int], payload: Dict[str, Any]) -> str:
        self.queue.moved()
        if kind == "cancel":
            run = next((r for r in self.active.values() if r.run_id == run_id), None)
            if run is None:
                return "not running in this runner"
            self.apply(Decision(RunStatus.CANCELLED, run.item.key, "cancelled with mlpipeline cancel", cold=True))
            return "cancelling"
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
            self.queue.again((str(payload.get("script")), str(payload.get("version"))))
            self._replan = True
            return "queued again"
        if kind == "reorder":
            self.queue.reorder([(str(s), str(v)) for s, v in payload.get("order", [])])
            self._replan = True
            return "reordered"
        return apply_curation(self.ledger, kind, run_id, payload)  # tag, untag, note, delete (or unknown)

    def _end_overdue(self, now: float) -> None:
        limit = self.options.stall_timeout or getattr(self._config, "stall_timeout", None)
        silences: Dict[Key, str] = {}
        for ticket, run in self.active.items():
            if self.kill_requested:
                self.executor.cancel(ticket, RunStatus.INTERRUPTED, "the runner was told to stop twice (Ctrl+C or "
                                                                    "SIGTERM) and killed the version")
            elif not run.notes.get("placed"):
                continue  # still waiting in a cluster's queue
            elif not run.ending and run.timeout and now - run.started > run.timeout:
                self.apply(Decision(RunStatus.TIMEOUT, run.item.key, f"timed out after {run.timeout:g} s (the "
                                    f"version's timeout); its processes were killed", cold=True))
            elif limit and not run.ending:
                heard = getattr(self.executor, "heard", lambda ticket: None)(ticket)  # its last output line
                silent = time.monotonic() - max(run.notes.get("heard", 0.0), heard or 0.0)
                note = silence_note(silent, limit)
                if note is not None:
                    silences[run.item.key] = note
                if silent >= limit:
                    run.notes["reason"] = RunStatus.STALLED.value
                    last_line = getattr(self.executor, "last_line", lambda ticket: "")(ticket)
                    self.apply(Decision(RunStatus.STALLED, run.item.key, stalled_error(
                        silent, limit, last_line, run.notes.get("last_metric", "")), cold=False))
        if silences != self.queue.silences:
            self.queue.silences = silences
            self._snapshot(self._plan_now())

    def _stop_on_nan(self) -> bool:
        return self.options.stop_on_nan or bool(getattr(self._config, "stop_on_nan", False))

    def _notice_changes(self, now: float) -> None:
        described = bool(self.describer.poll())
        edited = self.watcher is not None and self.watcher.settled()
        if edited:  # a module or data file a script missed may be there now
            self.describer.forget_transient()
        if described or edited:
            self._replan = True
            if self.stopping or self.paused or self.executor.capacity() <= 0:  # no slot to fill: show the new queue
                self._snapshot(self._plan_now())

    # -- decisions: every way a run is ended by the runner, applied in one place ------------------------

    def apply(self, decision: Decision) -> None:
        """End the running version ``decision`` names with its status and reason: pruned (a
        stopper), cancelled, timed out, failed (it cannot be recorded). Cold kills now; warm
        asks first (SIGTERM), then kills after a grace."""
        for ticket, run in self.active.items():
            if run.item.key == decision.key and not run.ending:
                run.ending = True
                self.executor.cancel(ticket, decision.action, decision.reason, cold=decision.cold)
                return

    def _take_decisions(self) -> None:
        decisions, failures = self.searches.take()
        for decision in self._decisions + decisions:
            self.apply(decision)
        self._decisions = []
        for failure in failures:  # a search whose propose() failed: a failed run named after it
            self._record_broken(failure.rel, failure.sha256, ScriptError(failure.error, details=failure.traceback),
                                version=failure.name)

    # -- points, written in batches -----------------------------------------------------------------

    def points(self, run_id: int, run: Optional[Run], rows: Sequence[MetricRow]) -> None:
        """A running version's new points: to the ledger (in batches), its stopper, the observers."""
        if self.recorder.points(run_id, rows):
            self._flush(self.clock())
        if run is None or rows and rows[0].split == SYSTEM_SPLIT:  # the executor's samples: curves, never a decision
            return
        run.notes["heard"] = time.monotonic()
        last = rows[-1] if rows else None
        if last is not None:
            run.notes["last_metric"] = f"{last.split}/{last.name} = {last.value!r}" + \
                ("" if last.step is None else f" (step {last.step})")
        if self._stop_on_nan() and not run.ending:
            bad = next((r for r in rows if r.value is not None and not math.isfinite(r.value)), None)
            if bad is not None:
                run.notes["reason"] = "nan"
                where = "" if bad.step is None else f" at step {bad.step}"
                self.apply(Decision(RunStatus.FAILED, run.item.key, f"metric {bad.split}/{bad.name} was "
                                    f"{bad.value!r}{where} (--stop-on-nan)", cold=False))
        decision = self.searches.metrics(run.item.key, rows)
        if decision is not None:
            self._decisions.append(decision)
        self.observers.metrics(run, rows, self.clock())

    def _flush(self, now: float, force: bool = True) -> None:
        for run_id, reason in self.recorder.flush(now, force):
            run = next((r for r in self.active.values() if r.run_id == run_id), None)
            if run is None:
                self.say(f"run {run_id}: {reason}", logging.ERROR)
            else:
                self.apply(Decision(RunStatus.FAILED, run.item.key, reason, cold=True))

    # -- planning -----------------------------------------------------------

    def _plan_now(self) -> Plan:
        plan = self.planner.plan()
        self._config = plan.config
        self._pending = plan.pending
        # as the queue now stands: scripts not there, and entries a config error leaves out (not run: exit 1)
        self.missing = list(dict.fromkeys(plan.missing + [f"{p} (that entry was left out)" for p in plan.problems]))
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

    def _running(self) -> Set[Key]:
        return {run.item.key for run in self.active.values()}

    def _snapshot(self, plan: Plan) -> None:
        self.queue.snapshot(self.runner_id, plan, self._running())

    def _fits(self, spec: VersionSpec) -> Optional[Wait]:
        fits = getattr(self.executor, "fits", None)  # (an executor that places by itself: Ray, in-process)
        return None if fits is None else fits(spec)

    def _schedule(self) -> None:
        while self._replan and self.executor.capacity() > 0 and not self.stopping:
            plan = self._plan_now()
            if not self._checked_first:  # the first plan is checked whole before anything starts
                self._snapshot(plan)
                self._replan = False
                return
            self._fits_at = self.clock()
            parked = self._parked
            if parked is not None:  # a search's point that waits for resources goes first
                if self._fits(parked.spec) is not None:
                    self._replan = False
                    self._snapshot(plan)
                    return
                self._parked = None
                self._start(parked, plan)
                self._snapshot(plan)
                continue
            step = self.queue.next(plan, self._running(), self._fits, self._fits_at)
            if isinstance(step, QueueItem) and self._fits(step.spec) is not None:  # a search's point
                self._parked = step
                continue
            if step is None:
                self._replan = bool(plan.pending)
                self._snapshot(plan)
                if plan.pending:
                    return
            elif isinstance(step, Broken):
                self._record_broken(step.rel, step.sha256, step.error)
                self._snapshot(plan)
            elif isinstance(step, Refused):
                self.queue.started(step.item)
                self.queue.finished(step.item, False)
                self._record_broken(step.item.rel, step.item.spec.script_sha256, ScriptError(
                    f"{step.item.label}: {step.reason}; lower its resources (or --gpus-per-version), or run it where "
                    f"there is more"), version=step.item.spec.version)
                self._snapshot(plan)
            else:
                self._start(step, plan)
                self._snapshot(plan)

    # -- running ------------------------------------------------------------

    def model_dir(self, item: QueueItem) -> str:
        suffix = dir_suffix(item.spec.params, item.spec.version)
        return self.project.model_dir(item.spec.script, suffix)

    def _record_broken(self, rel: str, sha: str, error: ScriptError, version: Optional[str] = None) -> None:
        """A script that does not load (or a search that cannot propose): a failed run that says why."""
        outcome = Outcome(RunStatus.FAILED, error=str(error), traceback=error.details, script_error=True)
        run_id = self.recorder.failed_to_load(rel, version, sha, outcome.error, outcome.traceback)
        self.say(str(error), logging.ERROR)
        if error.details:
            self.say(error.details, logging.ERROR, echo=False)
        self.ended.add(Finished.of(run_id, None, outcome))
        self.observers.tell("broken", run_id, rel, version, outcome)
        if self.options.stop_on_error:
            self.stopping = True

    def _start(self, item: QueueItem, plan: Plan) -> None:
        spec = item.spec
        self.queue.started(item)
        self._idle_said = False
        test = self.options.test_mode
        model_dir = tempfile.mkdtemp(prefix="mlp-test-") if test else self.model_dir(item)
        clash = None if test else shared_model_dir(self.ledger, self.project, item.label, spec.rel, model_dir)
        if clash is not None:  # never two scripts' checkpoints in one folder: this version fails, alone
            self.queue.finished(item, False)
            self._record_broken(item.rel, spec.script_sha256, clash, version=spec.version)
            return
        link = {} if test else self.retries.link(item.key, self._config)
        row, run_dir = self.recorder.start(spec, None if test else model_dir, **link)
        run_id = row["id"]
        events = RunEvents(self, run_id, item.label)
        timeout = self.options.timeout or plan.timeout
        job = Job(spec, model_dir, ExecutionModeKeys.TEST if test else ExecutionModeKeys.TRAIN, run_dir,
                  f"[{spec.rel} {spec.version}] " if self.options.label_output else "", timeout,
                  self.options.memory_limit, row["uid"], run_id)
        run = Run(item, run_id, 0, self.clock(), timeout, model_dir)
        run.notes["attempt"] = link.get("attempt", 1)
        run.notes["heard"] = time.monotonic()
        run.notes["placed"] = not getattr(self.executor, "places_later", False)  # (a job may wait in Slurm's queue)
        events.run = run
        self.observers.started(run)
        fault_point("started")
        try:
            run.ticket = self.executor.submit(job, events)
        except BaseException as exc:
            why = why_stopped(exc, "before the version started", "while starting")
            try:
                self.recorder.abandon([run_id], why)
            finally:
                self._cleanup(run)
            raise
        self.active[run.ticket] = run

    def _finish(self, ticket: int, outcome: Outcome, now: float) -> None:
        run = self.active.pop(ticket, None)
        if run is None:
            return
        self._cleanup(run)
        if run.notes.get("reason") and outcome.reason is None and outcome.status != RunStatus.SUCCEEDED:
            outcome.reason = run.notes["reason"]  # the runner ended it: nan, stalled
        try:
            self.recorder.flush(now)
            self.recorder.finish(run.run_id, outcome)
        except MLPipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: this run fails, not the runner
            outcome = Outcome(RunStatus.FAILED, error=f"its result could not be recorded ({type(exc).__name__}: "
                                                      f"{exc})")
            self.ledger.set_status(run.run_id, RunStatus.FAILED, error=outcome.error)
        self.observers.finished(run, outcome, now - run.started)
        self.queue.finished(run.item, outcome.status == RunStatus.SUCCEEDED)
        self.queue.took(now - run.started)
        self._replan = True
        again = self._retry(run, outcome, now)
        self.ended.add(Finished.of(run.run_id, run.item.key, outcome, retried=again))
        self.searches.finished(run.item.key, run.run_id, outcome.status, again=again)
        self.observers.tell("searches", self.searches)
        if outcome.status != RunStatus.SUCCEEDED and self.options.stop_on_error:
            self.stopping = True

    def _retry(self, run: Run, outcome: Outcome, now: float) -> bool:
        """Whether the version of a run that just ended runs again (the retry policy), after its back-off."""
        if self.stopping or self.options.test_mode:
            return False
        decided = self.retries.after(run.item.key, run.run_id, run.notes.get("attempt", 1), outcome, self._config)
        if decided is None:
            word = self.retries.last_word(run.notes.get("attempt", 1), outcome, self._config)
            if word is not None:
                self.say(f"{run.label}: {word}", logging.INFO if outcome.status == RunStatus.SUCCEEDED
                         else logging.WARNING)
            return False
        delay, said = decided
        self.queue.again(run.item.key, now + delay if delay else None)
        self.say(f"{run.label}: {said}", logging.WARNING)
        attempt = run.notes.get("attempt", 1)
        self.observers.tell("retried", run, attempt + 1, self.retries.policy(self._config).retries + 1)
        return True

    def _cleanup(self, run: Run) -> None:
        if self.options.test_mode:
            shutil.rmtree(run.model_dir, ignore_errors=True)

    def queued_left(self) -> bool:
        """Is anything still waiting to run (after a stop)?"""
        try:
            plan = self.planner.plan()
        except MLPipelineError:  # a config that no longer reads: only a hint for the exit code
            return False
        return self.queue.left(plan)
