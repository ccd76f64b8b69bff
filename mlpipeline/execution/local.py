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
from ..core.lifecycle import Job, RunStatus, Sink
from ..proc.protocol import deliver
from ..proc.system import MARK_PROJECT, MARK_RUN, MARK_VERSION, kill_marked, kill_marked_any, project_mark
from ..core.lifecycle import Ended
from .childrun import ChildRun, child_env, open_output
from .forkpool import ForkPool
from .forkserver import ForkServer

log = logging.getLogger(__name__)



class _Running:
    def __init__(self, run: ChildRun, log_file: Any, gpu: Optional[str], mark: str):
        self.run, self.log_file, self.gpu, self.mark = run, log_file, gpu, mark

    def close_log(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _event_handler(sink: Sink) -> Callable[[Dict[str, Any]], None]:
    return lambda event: deliver(event, sink)


class LocalExecutor:
    """Runs each version in a fresh child process (``mlpipeline.script.child``), up to
    ``jobs`` at once, each with a GPU of its own when ``gpus`` are given.

    GPU memory is freed when a child exits and a crash cannot take the runner
    down. Its stdout/stderr are shown live (``echo``) and kept in
    ``run_dir/output.log``; events arrive as JSON lines on a pipe of their own.
    """

    def __init__(self, jobs: int = 1, gpus: Optional[List[str]] = None, cwd: Optional[str] = None,
                 echo: bool = True, clock: Callable[[], float] = time.monotonic, sweep: bool = False,
                 pool: Optional[ForkPool] = None):
        self.jobs = max(1, jobs)
        self.gpus = list(gpus or [])
        self.free_gpus = list(self.gpus)
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

    def capacity(self) -> int:
        free = self.jobs - len(self._running)
        return min(free, len(self.free_gpus)) if self.gpus else free

    def running(self) -> int:
        return len(self._running)

    def submit(self, job: Job, sink: Sink) -> int:
        if self.capacity() <= 0:
            raise RuntimeError("LocalExecutor.submit beyond capacity")
        log_file, capture = open_output(job, self.echo)
        gpu = self.free_gpus.pop(0) if self.gpus else None

        payload = {"spec": job.spec.to_json(), "model_dir": job.model_dir, "exec_mode": job.exec_mode,
                   "memory_limit": job.memory_limit, "run_dir": job.run_dir,
                   "run_id": job.run_id}
        env, version_mark = child_env(self.project_mark, job, f"{os.getpid()}-{self._next_ticket}", self.sweep)
        if version_mark in self._versions_run:  # nothing of its earlier run may still be at work in its model dir
            self._sweep_marks([(MARK_VERSION, version_mark)] if self.sweep else [])
        self._versions_run.add(version_mark)  # (a dead runner's were ended by the sweep at the start)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        server = self.pool.server(job.spec.imports, sink.log)
        try:
            run = ChildRun("run", payload, _event_handler(sink), capture, self.cwd, env, server=server,
                           title=f"mlpipeline version {job.spec.script} {job.spec.version}")
            if server is not None and not server.alive:  # it failed on this version, which was spawned instead
                self.pool.failed(server, sink.log)
        except BaseException:
            if gpu is not None:
                self._free_gpu(gpu)
            if log_file is not None:
                log_file.close()
            raise
        ticket = self._next_ticket
        self._next_ticket += 1
        self._running[ticket] = _Running(run, log_file, gpu, env[MARK_RUN])
        sink.started({"pid": run.proc.pid, "gpu": gpu})
        return ticket

    @property
    def _server(self) -> Optional[ForkServer]:
        """The plain fork server (None until the first version, or when versions are spawned)."""
        return self.pool.plain if self.pool.use_fork else None

    def _free_gpu(self, gpu: str) -> None:
        self.free_gpus.append(gpu)
        self.free_gpus.sort(key=self.gpus.index)

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
                self._free_gpu(running.gpu)
            finished.append((ticket, running.run.outcome()))
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
