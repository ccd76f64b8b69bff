"""Versions in child processes on this machine, one process group each.

The local executor owns everything that is a local process: pids, process
groups, the pipes it reads, GPUs handed out through ``CUDA_VISIBLE_DEVICES``.
The runner sees tickets, events and outcomes.
"""
from __future__ import annotations

import logging
import os
import selectors
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..core.timings import timings
from ..core.lifecycle import Job, RunStatus, Sink, VersionSpec
from ..proc.protocol import deliver
from ..proc.system import MARK_PROJECT, MARK_RUN, MARK_VERSION, kill_marked, kill_marked_any, project_mark
from ..core.lifecycle import Ended
from .childrun import ChildRun, child_env, open_output
from .forkpool import ForkPool
from .forkserver import ForkServer
from .sampler import Sampler, gpu_indices, oom_outcome
from .gpubook import GpuBook
from ..core.resources import Wait

log = logging.getLogger(__name__)



class _Running:
    def __init__(self, run: ChildRun, log_file: Any, gpu: Optional[str], mark: str, sink: Any = None,
                 memory_limit: Optional[int] = None):
        self.run, self.log_file, self.gpu, self.mark = run, log_file, gpu, mark
        self.sink, self.memory_limit = sink, memory_limit  # where its sampled points go; its --memory-limit

    def close_log(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _event_handler(sink: Sink) -> Callable[[Dict[str, Any]], None]:
    return lambda event: deliver(event, sink)


class LocalExecutor:
    """Runs each version in a fresh child process (``mlpipeline.script.child``), up to
    ``jobs`` at once, each with the GPUs, CPUs and memory it asks for (``GpuBook``).

    GPU memory is freed when a child exits and a crash cannot take the runner
    down. Its stdout/stderr are shown live (``echo``) and kept in
    ``run_dir/output.log``; events arrive as JSON lines on a pipe of their own.
    """

    def __init__(self, jobs: int = 1, gpus: Optional[List[str]] = None, cwd: Optional[str] = None,
                 echo: bool = True, clock: Callable[[], float] = time.monotonic, sweep: bool = False,
                 pool: Optional[ForkPool] = None, gpus_per_version: Optional[float] = None,
                 cpus_per_version: Optional[float] = None, gpu_foreign_memory: Optional[int] = None,
                 say: Callable[[str, int], None] = lambda text, level: None, jobs_given: bool = True,
                 book: Optional[GpuBook] = None, strict: bool = True, sample_interval: float = 2.0):
        self.book = book or GpuBook(gpus, gpus_per_version, cpus_per_version, gpu_foreign_memory, say, strict=strict)
        self.jobs = max(1, jobs)
        if not jobs_given and self.book.slots:  # GPUs here: what versions ask for bounds how many run
            self.jobs = max(len(self.book.slots), os.cpu_count() or 1)
        self.cwd = cwd
        self.echo = echo
        self.clock = clock
        self._running: Dict[int, _Running] = {}
        self._next_ticket = 1
        self.project_mark = project_mark(cwd)
        self.pool = pool or ForkPool(cwd)  # the fork servers (shared with the describer)
        # Finished versions' marks not yet swept for helpers that left their group: one pass over /proc
        # serves them all, at most every timings().sweep_every seconds while versions run, at once when none does.
        self._unswept: List[Tuple[str, str]] = []
        self._swept_at = clock()
        self._versions_run: set = set()  # version marks this executor started (their model dirs were used)
        # With the project's lock held (execution mode), processes a dead runner's versions left are ended first.
        self.sweep = sweep
        if sweep:
            kill_marked(MARK_PROJECT, self.project_mark)
        # What each running version uses (CPU, RSS, GPU), every sample_interval seconds (0: never), as sys/ curves.
        self.sample_interval = sample_interval
        self.sampler = Sampler() if sample_interval > 0 else None
        self._sampled_at = clock()

    def capacity(self) -> int:
        return self.jobs - len(self._running)

    def fits(self, spec: VersionSpec) -> Optional[Wait]:
        """None when ``spec``'s resources are free now; else why it waits (``never``: it never could here)."""
        return self.book.fits(spec, self._own_pids)

    def heard(self, ticket: int) -> Optional[float]:
        """When (time.monotonic) the version last printed a line; None: not yet."""
        running = self._running.get(ticket)
        return None if running is None else running.run.heard_at

    def last_line(self, ticket: int) -> str:
        running = self._running.get(ticket)
        return "" if running is None else running.run.last_line

    def _own_pids(self) -> set:
        """The processes of the running versions (their whole trees): any other on a GPU is someone else's."""
        import psutil

        pids = set()
        for running in self._running.values():
            pids.add(running.run.proc.pid)
            try:
                pids.update(p.pid for p in psutil.Process(running.run.proc.pid).children(recursive=True))
            except psutil.Error:
                pass
        return pids

    def running(self) -> int:
        return len(self._running)

    def submit(self, job: Job, sink: Sink) -> int:
        if self.capacity() <= 0:
            raise RuntimeError("LocalExecutor.submit beyond capacity")
        given = self.book.take(self._next_ticket, job.spec, self._own_pids)
        try:
            log_file, capture = open_output(job, self.echo)
        except BaseException:
            self.book.release(self._next_ticket)
            raise
        gpu = given["where"].get("gpu")

        payload = {"spec": job.spec.to_json(), "model_dir": job.model_dir, "exec_mode": job.exec_mode,
                   "memory_limit": job.memory_limit, "run_dir": job.run_dir,
                   "run_id": job.run_id}
        env, version_mark = child_env(self.project_mark, job, f"{os.getpid()}-{self._next_ticket}", self.sweep)
        if version_mark in self._versions_run:  # nothing of its earlier run may still be at work in its model dir
            self._sweep_marks([(MARK_VERSION, version_mark)] if self.sweep else [])
        self._versions_run.add(version_mark)  # (a dead runner's were ended by the sweep at the start)
        env.update(given["env"])
        server = self.pool.server(job.spec.imports, sink.log)
        try:
            run = ChildRun("run", payload, _event_handler(sink), capture, self.cwd, env, server=server,
                           title=f"mlpipeline version {job.spec.script} {job.spec.version}")
            if server is not None and not server.alive:  # it failed on this version, which was spawned instead
                self.pool.failed(server, sink.log)
        except BaseException:
            self.book.release(self._next_ticket)
            if log_file is not None:
                log_file.close()
            raise
        ticket = self._next_ticket
        self._next_ticket += 1
        self._running[ticket] = _Running(run, log_file, gpu, env[MARK_RUN], sink=sink, memory_limit=job.memory_limit)
        sink.started({"pid": run.proc.pid, **{k: v for k, v in given["where"].items() if v is not None}})
        return ticket

    @property
    def _server(self) -> Optional[ForkServer]:
        """The plain fork server (None until the first version, or when versions are spawned)."""
        return self.pool.plain if self.pool.use_fork else None

    def poll(self, timeout: float) -> List[Ended]:
        if not self._running:
            return []
        with selectors.DefaultSelector() as selector:
            for running in self._running.values():
                for fd in running.run.fds():
                    selector.register(fd, selectors.EVENT_READ, running)
            for server in self._servers_in_use():
                selector.register(server.fileno(), selectors.EVENT_READ, server)  # exit reports
            if selector.get_map():
                for key, _ in selector.select(timeout):
                    if isinstance(key.data, ForkServer):
                        key.data.drain()
                    else:
                        key.data.run.on_ready(key.fd)
            else:  # output is done and the child is exiting: wait for that rather than sleep blindly
                try:
                    next(iter(self._running.values())).run.proc.wait(min(timeout, 0.05))
                except subprocess.TimeoutExpired:
                    pass
        now = self.clock()
        finished: List[Ended] = []
        for ticket, running in list(self._running.items()):
            running.run.check(now)
            if running.run.returncode is None:
                continue
            del self._running[ticket]
            running.run.end_group()
            self._unswept.append((MARK_RUN, running.mark))  # helpers that left the group (setsid) end too
            running.close_log()
            if running.gpu is not None:
                self._sweep_marks()  # before its GPU goes to the next version
            self.book.release(ticket)
            seen = self.sampler.forget(ticket) if self.sampler is not None else None
            finished.append((ticket, oom_outcome(running.run.outcome(), seen, running.memory_limit,
                                                 running.run.proc.pid, running.run.killed is not None)))
        if self.sampler is not None and self._running and now - self._sampled_at >= self.sample_interval:
            self._sampled_at = now
            try:
                sampled = self.sampler.sample({ticket: (running.run.proc.pid, gpu_indices(running.gpu))
                                               for ticket, running in self._running.items()})
            except Exception as exc:  # noqa: BLE001 - what the runner samples never stops a version
                log.warning("sampling the running versions failed (%s: %s); no more sys/ curves in this batch",
                            type(exc).__name__, exc)
                self.sampler, sampled = None, {}
            for ticket, rows in sampled.items():
                sink = self._running[ticket].sink
                if sink is not None:
                    sink.metrics(rows)
        if self._unswept and (not self._running or now - self._swept_at >= timings().sweep_every):
            self._sweep_marks()
        self.pool.tidy(self._servers_in_use())  # retired servers whose versions are done leave
        return finished

    def _servers_in_use(self) -> List[ForkServer]:
        """The live fork servers (the current one, retired ones) that forked a running version."""
        found: List[ForkServer] = []
        for running in self._running.values():
            server = running.run.proc.server if running.run.forked else None
            if server is not None and server.alive and server not in found:
                found.append(server)
        return found

    def _sweep_marks(self, extra: Optional[List[Tuple[str, str]]] = None) -> None:
        """End the processes holding the finished versions' marks (and ``extra``)."""
        marks = self._unswept + list(extra or [])
        self._unswept = []
        self._swept_at = self.clock()
        if marks:
            kill_marked_any(marks)

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        running = self._running.get(ticket)
        if running is not None:
            running.run.kill(status, reason, cold, self.clock())

    def close(self) -> None:
        self._sweep_marks()
        for running in self._running.values():
            running.run.kill(RunStatus.INTERRUPTED, "the runner stopped")
            kill_marked(MARK_RUN, running.mark, wait=1.0)
            running.close_log()
        self.pool.close()  # their versions are ended: they leave on EOF
