"""One batch: ``mlpipeline`` (test mode) or ``mlpipeline -r`` (execution mode).

``run_batch`` holds the policy the CLI used to: which executor and describer a
mode gets, the project lock, the watcher, the log files, and what the batch
amounted to. It returns a ``BatchResult``; the CLI renders it and picks the
exit code.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Optional

from ..plan.config import Project, find_project
from ..core.errors import MLPipelineError, UsageError
from ..core.lifecycle import RunStatus, VersionSpec
from .runner import Finished, Options, Runner

if TYPE_CHECKING:
    from ..execution.forkpool import ForkPool
    from .mlflowlog import MlflowObserver
    from .notify import NotifyObserver


DESCRIBE_TIMEOUT = 120.0  # seconds a script may take to load, unless --timeout says otherwise


@dataclass
class BatchOptions:
    directory: Optional[str] = None
    run: bool = False                    # execution mode
    use_history: bool = False
    no_log: bool = False
    only_version: Optional[str] = None
    isolate: Optional[bool] = None       # None: child processes in execution mode, in-process in test mode
    jobs: Optional[int] = None
    gpus: Optional[List[str]] = None
    watch: bool = False
    timeout: Optional[float] = None
    memory_limit: Optional[int] = None
    command: str = "mlpipeline"
    backend: Optional[str] = None        # local, ray or slurm (default: [MLP] backend in mlp.config, else local)
    ray_address: Optional[str] = None
    gpus_per_version: Optional[float] = None
    cpus_per_version: Optional[float] = None  # None: 1 on Ray, not counted locally
    gpu_foreign_memory: Optional[int] = 1 << 30  # a GPU another user's process holds more of is busy
    resources: Optional[Dict[str, float]] = None
    retries: Optional[int] = None        # default 0 here, 1 on a cluster backend
    retry_on: Optional[FrozenSet[str]] = None
    retry_delay: float = 30.0
    stall_timeout: Optional[float] = None
    stop_on_nan: bool = False
    sample_interval: float = 2.0         # seconds between samples of each running version's CPU, RSS, GPU (0: off)
    mlflow_uri: Optional[str] = None     # 2.x's --mlflow_tracking_uri: in place of [MLFLOW] tracking_uri
    # An exact re-run (``run.rerun``): run only this spec, record in this outputs folder's ledger, linked to that run.
    pinned: Optional[VersionSpec] = None
    records_in: Optional[str] = None
    rerun_of: Optional[int] = None


@dataclass
class BatchResult:
    project: Project
    test: bool
    finished: List[Finished] = field(default_factory=list)  # the last Ended.KEEP runs it ended, in order
    counts: Dict[str, int] = field(default_factory=dict)     # status -> runs it ended, all of them
    failed_earlier: int = 0                                  # failures older than ``finished`` holds
    stopped_early: bool = False          # stopped (signal) with versions left to run
    history_skipped: bool = False        # -u skipped versions that already succeeded
    searches_ended: List[str] = field(default_factory=list)  # "script search: why it proposed no more"
    missing: List[str] = field(default_factory=list)  # listed scripts that do not exist (why, per script)
    ledger_path: str = ""
    config_name: str = ""

    @property
    def failed(self) -> List[Finished]:
        """Runs that did not succeed, less those whose version ran again later in the batch after a lost
        node or a retry (the later attempt speaks for the version) and those a search's stopper ended
        (pruned: asked for)."""
        again = {f.run_id for f in self.retried}
        return [f for f in self.finished if f.status not in (RunStatus.SUCCEEDED, RunStatus.PRUNED)
                and f.run_id not in again]

    @property
    def retried(self) -> List[Finished]:
        """Runs whose version ran again later in the batch (a lost node, a retry): not the batch's failures."""
        later: set = set()
        found: List[Finished] = []
        for f in reversed(self.finished):
            if (f.node_lost or f.retried) and f.key in later:
                found.append(f)
            if f.key is not None:
                later.add(f.key)
        return found[::-1]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _check(options: BatchOptions, isolate: bool, jobs: int) -> None:
    if options.jobs is not None and options.jobs < 1:
        raise UsageError(f"-j {options.jobs}: give a number of versions to run at once, 1 or more")
    if options.timeout is not None and not (math.isfinite(options.timeout) and options.timeout > 0):
        raise UsageError(f"--timeout {options.timeout:g}: give a positive number of seconds")
    if not (math.isfinite(options.sample_interval) and options.sample_interval >= 0):
        raise UsageError(f"--sample-interval {options.sample_interval:g}: give 0 (off) or a positive number of seconds")
    if options.memory_limit and not isolate:
        raise UsageError("--memory-limit applies to versions in child processes; use it with -r or --isolate")
    if jobs > 1 and not isolate:
        raise UsageError(f"-j {jobs} runs versions side by side in child processes; drop --in-process")


def _backend(options: BatchOptions, project: Project, test: bool) -> str:
    """Where versions run: --backend, else [MLP] backend in mlp.config, else here."""
    backend = options.backend or project.backend or "local"
    if backend != "ray" and options.ray_address:
        raise UsageError("--ray-address applies to --backend ray")
    if backend == "local":
        return backend
    if test:
        if options.backend:
            raise UsageError(f"--backend {backend} runs execution mode (mlpipeline -r --backend {backend}); test mode "
                             f"runs here")
        return "local"  # [MLP] backend = ray or slurm is for the real batch; a smoke test runs here
    placer = {"ray": "Ray", "slurm": "Slurm"}[backend]
    if options.gpus:
        raise UsageError(f"--gpus hands out this machine's GPUs; with --backend {backend}, {placer} places GPUs: use "
                         f"--gpus-per-version or a version's resources")
    if options.memory_limit:
        raise UsageError(f"--memory-limit is for local child processes; with --backend {backend} declare memory in "
                         f"a version's resources (resources={{'memory': '8G'}})")
    if backend == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            raise UsageError("--backend slurm: sbatch is not on PATH; run the runner where the Slurm commands are "
                             "(a login node of the cluster)")
        return backend
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UsageError("--backend ray needs Ray on this machine: pip install 'mlpipeline[ray]'") from None
    return backend


def _notifications(project: Project, runner: Runner, ledger: Any) -> Optional[NotifyObserver]:
    """``[NOTIFY]`` in mlp.config (execution mode): the observer that sends what the runs amount to, after
    telling of runners that died before this one. Without apprise: one warning, and the batch runs."""
    if project.notify is None or not project.notify.urls:
        return None
    from .notify import Notifier, NotifyObserver

    try:
        notifier = Notifier(project.notify, warn=lambda message: runner.say(message, logging.WARNING))
    except UsageError as exc:
        runner.say(f"{exc}; this batch sends no notifications", logging.WARNING)
        return None
    observer = NotifyObserver(notifier, project, ledger, counts=lambda: runner.ended.counts)
    runner.observers.add(observer)
    observer.dead_runners(ledger)
    return observer


def _mlflow(project: Project, runner: Runner, uri: Optional[str] = None) -> Optional[MlflowObserver]:
    """``[MLFLOW] tracking_uri`` in mlp.config, or ``uri`` (execution mode): the observer that also logs each run
    to MLflow. Without mlflow: one warning, and the batch runs."""
    if not (uri or project.mlflow_uri):
        return None
    from .mlflowlog import mlflow_observer

    observer = mlflow_observer(project, uri, warn=lambda message: runner.say(message, logging.WARNING))
    if observer is not None:
        runner.observers.add(observer)
    return observer


def run_batch(options: BatchOptions, notify: Callable[[str, int], None],
              prepare: Optional[Callable[[Runner], None]] = None, pool: Optional[ForkPool] = None) -> BatchResult:
    """Run the project's queue once (or, with ``watch``, until stopped).

    ``notify`` receives progress lines; ``prepare`` sees the runner before it
    starts (the CLI installs its signal handlers there); ``pool``: fork servers started early
    (``forkpool.early_pool``), for the local executor (closed here whatever happens)."""
    from ..execution.inprocess import InProcessExecutor
    from ..execution.local import LocalExecutor
    from ..plan.describe import Describer
    from ..plan.planner import Pinned
    from ..store.ledger import open_ledger
    from ..store.lock import RunnerLock
    from ..proc.system import hostname
    from .hostfiles import HostOutputs, NullOutputs

    test = not options.run
    isolate = options.isolate if options.isolate is not None else not test
    jobs = options.jobs or (len(options.gpus) if options.gpus else 1)
    _check(options, isolate, jobs)
    project = find_project(options.directory)
    project.records_in = options.records_in
    for warning in project.warnings:
        notify(warning, 30)
    if test and options.use_history:
        notify("-u applies to execution mode (-r); test mode runs every version", 30)
    host = hostname()
    lock = watcher = describer = ledger = told = logged = None
    executor: Any = None
    try:
        if not test:  # the lock first: a refused runner writes nothing
            lock = RunnerLock(project.ledger_dir)
            lock.acquire(host, "run")
        ledger = open_ledger(project.ledger_dir)
        if not test and options.pinned is None:
            from .watcher import ChangeWatcher

            watcher = ChangeWatcher([project.config_path(False), os.path.join(project.root, "mlp.config")],
                                    project.models_dir).start()
        outputs = NullOutputs() if (test or options.no_log) else HostOutputs(project.outputs_dir, host)
        backend = _backend(options, project, test)
        if backend == "ray":
            from ..execution.raycluster import RayExecutor, ray_describer

            executor = RayExecutor(jobs=options.jobs, cwd=project.root,
                                   address=options.ray_address or project.ray_address,
                                   gpus_per_version=options.gpus_per_version,
                                   cpus_per_version=1.0 if options.cpus_per_version is None else options.cpus_per_version,
                                   resources=options.resources,
                                   outputs_dir=project.outputs_dir, say=notify)
            jobs = executor.jobs
            describer = ray_describer(project.root, ledger.cached_script, ledger.cache_script,
                                      timeout=options.timeout or DESCRIBE_TIMEOUT)
        elif backend == "slurm":
            from ..execution.slurm import SlurmExecutor

            executor = SlurmExecutor(jobs=options.jobs, cwd=project.root, settings=project.slurm,
                                     gpus_per_version=options.gpus_per_version,
                                     cpus_per_version=options.cpus_per_version, timeout=options.timeout, say=notify)
            jobs = executor.jobs
            describer = Describer(project.root, ledger.cached_script, ledger.cache_script,  # here, on the login node
                                  timeout=options.timeout or DESCRIBE_TIMEOUT)
        else:
            if pool is not None and (pool.cwd != project.root or not isolate):
                pool.close()
                pool = None
            executor = (LocalExecutor(jobs=jobs, gpus=options.gpus, cwd=project.root, sweep=not test, pool=pool,
                                      gpus_per_version=options.gpus_per_version,
                                      cpus_per_version=options.cpus_per_version,
                                      gpu_foreign_memory=options.gpu_foreign_memory, say=notify,
                                      jobs_given=options.jobs is not None, strict=not test,
                                      sample_interval=options.sample_interval)
                        if isolate else InProcessExecutor(cwd=project.root))
            jobs = getattr(executor, "jobs", jobs)
            describer = Describer(project.root, ledger.cached_script, ledger.cache_script,  # forked as versions are
                                  timeout=options.timeout or DESCRIBE_TIMEOUT, in_process=not isolate,
                                  fork=executor.pool if isolate else None)
        shown = {"jobs": jobs, "gpus": options.gpus, "watch": options.watch, "use_history": options.use_history,
                 "timeout": options.timeout, "backend": backend if backend != "local" else None}
        runner_options = Options(test_mode=test, use_history=options.use_history, only_version=options.only_version,
                                 command=options.command, watch=options.watch, timeout=options.timeout,
                                 stop_on_error=test, memory_limit=options.memory_limit, label_output=jobs > 1,
                                 retries=options.retries, default_retries=0 if backend == "local" else 1,
                                 retry_on=options.retry_on, retry_delay=options.retry_delay,
                                 stall_timeout=options.stall_timeout, stop_on_nan=options.stop_on_nan,
                                 options_text=shown)
        pinned = None if options.pinned is None else Pinned(project, describer, options.pinned, notify)
        runner = Runner(project, ledger, executor, describer, runner_options, outputs=outputs, host=host,
                        fork=getattr(executor, "pool", None), planner=pinned,
                        notify=notify, watcher=watcher)
        if options.rerun_of is not None:
            runner.recorder.also["rerun_of"] = options.rerun_of
        if backend == "local":  # the driver and GPUs the versions see, for their environment (read once, if asked)
            from ..execution.gpus import driver_info

            runner.recorder.gpu = driver_info
        if prepare is not None:
            prepare(runner)
        outputs.log(f"session started: {options.command} (pid {os.getpid()})")
        told = None if test else _notifications(project, runner, ledger)
        logged = None if test else _mlflow(project, runner, options.mlflow_uri)
        try:
            ended = runner.run()
        except BaseException as exc:
            if told is not None:
                told.batch_done(stopped="interrupted (Ctrl+C)" if isinstance(exc, KeyboardInterrupt) else
                                f"the runner stopped: {exc if isinstance(exc, MLPipelineError) else type(exc).__name__}")
            if isinstance(exc, KeyboardInterrupt):
                outputs.log("session interrupted", 30)
            raise
        outputs.log("session ended")
        stopped_early = runner.stopping and (runner.kill_requested or runner.queued_left())
        if told is not None:
            told.batch_done(stopped="stopped (a signal) with versions left to run" if stopped_early else None)
        return BatchResult(project, test, list(ended.recent), dict(ended.counts), ended.failed_earlier,
                           stopped_early=stopped_early,
                           history_skipped=bool(runner.history_skips), ledger_path=ledger.path,
                           config_name=os.path.basename(project.config_path(test)), missing=runner.missing,
                           searches_ended=runner.searches.ended())
    finally:
        if describer is not None:
            describer.close()
        if executor is not None:
            executor.close()  # idempotent: a Ray backend disconnects (or stops its own Ray) and clears its marker
        if pool is not None:
            pool.close()  # idempotent: the local executor's own, or one it never used
        if watcher is not None:
            watcher.stop()
        if ledger is not None:
            ledger.close()
        if lock is not None:
            lock.release()
        if told is not None:
            told.notifier.close()  # what is still being sent gets [NOTIFY]'s short drain, then is given up
        if logged is not None:
            logged.close()  # what is still to be logged to MLflow gets mlflow_drain, then is given up
