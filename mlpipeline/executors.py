"""Where a version executes: in this process, or in a child process of its own.

Both executors have the same two methods, ``describe(path)`` and
``execute(job, sink)``, so the runner never branches on which one it holds.
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Protocol

from . import _report
from .errors import ScriptError
from .ledger import MetricRow, RunStatus
from .scripts import ScriptInfo


@dataclass
class Job:
    """One version to run."""

    script: str           # absolute path of the model script
    version: str
    model_dir: str
    exec_mode: str        # ExecutionModeKeys.TRAIN or .TEST
    run_dir: Optional[str] = None   # where a child's captured output is kept


@dataclass
class Outcome:
    status: RunStatus
    result: Optional[Dict[str, Any]] = None
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error: str = ""
    traceback: str = ""
    script_error: bool = False   # the script could not be loaded at all
    packages: Dict[str, str] = field(default_factory=dict)  # versions of what the script imported


class Sink(Protocol):
    """Receives a running version's events as they happen."""

    def started(self, child_pid: Optional[int]) -> None: ...
    def log(self, message: str, level: int) -> None: ...
    def metric(self, row: MetricRow) -> None: ...


class _SinkReporter(_report.Reporter):
    """In-process: script events go to the terminal and straight to the sink."""

    def __init__(self, sink: Sink):
        self.sink = sink

    def log(self, message: str, level: int = logging.INFO) -> None:
        super().log(message, level)
        self.sink.log(str(message), level)

    def metric(self, name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
        self.sink.metric(MetricRow(str(name), float(value), step, split))


class InProcessExecutor:
    """Runs versions in the runner's own process: fast, and a debugger works.

    A script is imported once per content (sha256) and reused for its versions.
    """

    def __init__(self) -> None:
        self._loaded: Dict[str, Any] = {}

    def _load(self, path: str):
        from .scripts import file_sha256, load_script

        key = f"{path}:{file_sha256(path)}"
        if key not in self._loaded:
            self._loaded[key] = load_script(path)
        return self._loaded[key]

    def describe(self, path: str) -> ScriptInfo:
        return self._load(path)[2]

    def execute(self, job: Job, sink: Sink) -> Outcome:
        from .execute import run_version
        from .repro import imported_packages

        sink.started(None)
        previous = _report.install(_SinkReporter(sink))
        try:
            _, model, _ = self._load(job.script)
            version = model.versions.get_version(job.version)
            result = run_version(model, version, job.script, job.model_dir, job.exec_mode)
            return Outcome(RunStatus.SUCCEEDED, result=result.to_json(), packages=imported_packages())
        except ScriptError as exc:
            return Outcome(RunStatus.FAILED, error=str(exc), traceback=exc.details, script_error=True)
        except Exception as exc:  # noqa: BLE001 - a failing version is an outcome, not a crash
            from .child import user_traceback
            return Outcome(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}", traceback=user_traceback(exc),
                           packages=imported_packages())
        finally:
            _report.install(previous)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ChildProcessExecutor:
    """Runs each version in a fresh ``python -m mlpipeline.child`` process.

    GPU memory is freed when it exits and a crash cannot take the runner down.
    Its stdout/stderr are shown live (``echo``) and kept in ``run_dir/output.log``;
    events arrive as JSON lines on a pipe of their own.
    """

    def __init__(self, cwd: Optional[str] = None, echo: bool = True, env: Optional[Dict[str, str]] = None):
        self.cwd = cwd
        self.echo = echo
        self.env = env

    def _spawn(self, op: str, payload: Dict[str, Any]):
        read_fd, write_fd = os.pipe()
        payload = {**payload, "parent_pid": os.getpid()}
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlpipeline.child", op, json.dumps(payload), str(write_fd)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), start_new_session=True, cwd=self.cwd, env=env)
        finally:
            os.close(write_fd)
        return proc, read_fd

    def _pump(self, proc, read_fd: int, on_event, capture) -> None:
        """Copy the child's output and dispatch its events until both pipes close."""
        selector = selectors.DefaultSelector()
        out_fd = proc.stdout.fileno()
        selector.register(out_fd, selectors.EVENT_READ)
        selector.register(read_fd, selectors.EVENT_READ)
        pending = b""
        open_fds = 2
        while open_fds:
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fd)
                    open_fds -= 1
                    continue
                if key.fd == out_fd:
                    capture(data)
                    continue
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        on_event(json.loads(line))
        selector.close()
        os.close(read_fd)
        proc.stdout.close()

    def _kill(self, proc) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def describe(self, path: str) -> ScriptInfo:
        proc, read_fd = self._spawn("describe", {"script": path})
        events = []
        output = bytearray()
        try:
            self._pump(proc, read_fd, events.append, output.extend)
            proc.wait()
        except BaseException:
            self._kill(proc)
            proc.wait()
            raise
        for event in events:
            if event["type"] == "described":
                return ScriptInfo.from_json(event["info"])
            if event["type"] == "error":
                raise ScriptError(event["error"], event.get("traceback") or "")
        tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        how = (f"was killed by {_signal_name(-proc.returncode)}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        raise ScriptError(f"{os.path.relpath(path)}: loading it {how} before reporting its versions {tail[0]}".rstrip())

    def execute(self, job: Job, sink: Sink) -> Outcome:
        payload = {"script": job.script, "version": job.version, "model_dir": job.model_dir,
                   "exec_mode": job.exec_mode}
        log_file = None
        if job.run_dir:
            os.makedirs(job.run_dir, exist_ok=True)
            log_file = open(os.path.join(job.run_dir, "output.log"), "ab")
        proc, read_fd = self._spawn("run", payload)
        sink.started(proc.pid)
        final: Dict[str, Any] = {}

        def on_event(event: Dict[str, Any]) -> None:
            kind = event.get("type")
            if kind == "log":
                sink.log(event["message"], event.get("level", logging.INFO))
            elif kind == "metric":
                sink.metric(MetricRow(event["name"], event["value"], event.get("step"), event.get("split", "train")))
            elif kind in ("result", "error"):
                final.update(event)

        def capture(data: bytes) -> None:
            if log_file:
                log_file.write(data)
                log_file.flush()
            if self.echo:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()

        try:
            self._pump(proc, read_fd, on_event, capture)
            code = proc.wait()
        except BaseException:
            self._kill(proc)
            proc.wait()
            raise
        finally:
            if log_file:
                log_file.close()
        return self._outcome(code, final)

    @staticmethod
    def _outcome(code: int, final: Dict[str, Any]) -> Outcome:
        packages = final.get("packages") or {}
        if code == 0 and final.get("type") == "result":
            return Outcome(RunStatus.SUCCEEDED, result=final["result"], exit_code=0, packages=packages)
        if final.get("type") == "error":
            return Outcome(RunStatus.FAILED, exit_code=code if code >= 0 else None,
                           signal=-code if code < 0 else None, error=final["error"], packages=packages,
                           traceback=final.get("traceback") or "", script_error=final.get("kind") == "script")
        if code < 0:
            return Outcome(RunStatus.FAILED, signal=-code,
                           error=f"the version's process was killed by {_signal_name(-code)}")
        return Outcome(RunStatus.FAILED, exit_code=code,
                       error=f"the version's process exited with code {code} before reporting a result")


def make_executor(isolate: bool, cwd: Optional[str] = None, echo: bool = True):
    return ChildProcessExecutor(cwd=cwd, echo=echo) if isolate else InProcessExecutor()
