"""Versions in the runner's own process: fast, and a debugger works.

A submitted job runs when the runner next polls, to the end, in this thread.
Its ``timeout`` is enforced with an interval timer that raises inside the
version (in the main thread), since nothing else can interrupt it.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

from ..script import report as _report
from ..core.lifecycle import Job, MetricRow, Outcome, RunStatus, Sink
from ..proc.outcome import failure
from ..proc.protocol import output_row
from ..proc.system import MARK_RUN, Alarm, VersionTimeout, kill_marked, working_dir
from ..core.lifecycle import Ended


class _SinkReporter(_report.Reporter):
    """Script events go to the terminal and straight to the sink."""

    def __init__(self, sink: Sink):
        self.sink = sink

    def log(self, message: str, level: int = logging.INFO) -> None:
        super().log(message, level)
        self.sink.log(str(message), level)

    def add(self, row: MetricRow) -> None:
        self.sink.metrics([row])

    def output(self, record: Dict[str, Any]) -> None:
        row = output_row(record)  # checked as a child's event is (proc.protocol)
        if row is None:
            raise ValueError(f"save_output sent a record the runner cannot index: {record!r:.200}")
        self.sink.output(row)

    def data(self, fingerprint: str) -> None:
        self.sink.data(fingerprint)

    def params(self, params: Dict[str, Any]) -> None:
        self.sink.params(params)


class InProcessExecutor:
    """One job at a time, run in this process when polled.

    A script is imported once per content (sha256) and reused for its versions."""

    def __init__(self, cwd: Optional[str] = None) -> None:
        self.cwd = cwd  # the project root: where a child process would run the version
        self._loaded: Dict[str, Any] = {}
        self._pending: Optional[Tuple[int, Job, Sink]] = None
        self._cancelled: List[Ended] = []
        self._next_ticket = 1

    def capacity(self) -> int:
        return 0 if self._pending else 1

    def running(self) -> int:
        return 1 if self._pending else 0

    def submit(self, job: Job, sink: Sink) -> int:
        ticket = self._next_ticket
        self._next_ticket += 1
        self._pending = (ticket, job, sink)
        sink.started({})
        return ticket

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        if self._pending and self._pending[0] == ticket:  # not started yet: it never will be
            self._pending = None
            self._cancelled.append((ticket, Outcome(status, error=reason)))

    def close(self) -> None:
        self._pending = None

    def _load(self, path: str) -> Any:
        from ..script.loading import file_sha256, load_module

        key = f"{path}:{file_sha256(path)}"
        if key not in self._loaded:
            self._loaded[key] = load_module(path)
        return self._loaded[key]

    def poll(self, timeout: float) -> List[Ended]:
        finished, self._cancelled = self._cancelled, []
        if self._pending is not None:
            ticket, job, sink = self._pending
            try:
                finished.append((ticket, self._run(job, sink)))
            finally:
                self._pending = None
        return finished

    def _run(self, job: Job, sink: Sink) -> Outcome:
        from ..script.runspec import run_spec
        from ..script.packages import imported_packages

        spec = job.spec
        previous = _report.install(_SinkReporter(sink))
        alarm = Alarm(job.timeout)
        mark = job.tag or f"{os.getpid()}-{id(job)}"
        before = os.environ.get(MARK_RUN)
        os.environ[MARK_RUN] = mark  # every process the version starts inherits it, setsid'd or not
        try:
            with alarm, working_dir(self.cwd):
                result = run_spec(spec.to_json(), job.model_dir, job.exec_mode, job.run_dir, job.run_id, self._load)
            return Outcome(RunStatus.SUCCEEDED, result=result.to_json(), packages=imported_packages())
        except (VersionTimeout, SystemExit, Exception) as exc:  # noqa: BLE001 - a failing version is an outcome
            # (a hook that calls sys.exit() must not end the whole session quietly; Ctrl+C still does)
            failed = failure(exc, timeout=job.timeout)
            return Outcome(failed.status, error=failed.error, traceback=failed.traceback,
                           script_error=failed.kind == "script", packages=imported_packages(), reason=failed.reason)
        finally:
            _report.install(previous)
            if before is None:
                os.environ.pop(MARK_RUN, None)
            else:
                os.environ[MARK_RUN] = before
            kill_marked(MARK_RUN, mark, wait=2.0)  # what the version started and forgot ends with it
