"""Where a version executes: in this process, or in a child process of its own.

Both executors offer ``describe(path)`` and ``start(job, sink)``; ``start``
returns a handle the runner drives with the same calls either way
(``fds``/``on_ready``/``check``/``kill``/``outcome``), so the runner never
branches on which executor it holds. An in-process handle is finished when
``start`` returns; a child's finishes when its pipes close and it is reaped.
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
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol

from . import _report
from .errors import ScriptError
from .ledger import MetricRow, RunStatus
from .scripts import ScriptInfo

REAP_GRACE = 2.0  # seconds a finished child's leftover processes may keep its pipes open
CHILD_MAIN = "import sys; from mlpipeline.child import run; run(sys.argv[1:])"  # -c: cheaper than -m


@dataclass
class Job:
    """One version to run."""

    script: str           # absolute path of the model script
    version: str
    model_dir: str
    exec_mode: str        # ExecutionModeKeys.TRAIN or .TEST
    run_dir: Optional[str] = None   # where a child's captured output is kept
    env: Dict[str, str] = field(default_factory=dict)  # extra environment (CUDA_VISIBLE_DEVICES)
    label: str = ""       # prefix for echoed output lines when versions run side by side
    memory_limit: Optional[int] = None  # bytes of address space (RLIMIT_AS) for a child


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


class _Done:
    """The handle of a version that already finished (in-process)."""

    def __init__(self, outcome: Outcome):
        self._outcome = outcome

    def fds(self) -> List[int]:
        return []

    def on_ready(self, fd: int) -> None:
        pass

    def check(self, now: float) -> None:
        pass

    def kill(self, status: RunStatus, reason: str) -> None:
        pass

    def wait_exit(self, timeout: float) -> None:
        pass

    def outcome(self) -> Optional[Outcome]:
        return self._outcome


class InProcessExecutor:
    """Runs versions in the runner's own process: fast, and a debugger works.

    A script is imported once per content (sha256) and reused for its versions.
    """

    parallel = False

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

    def start(self, job: Job, sink: Sink) -> _Done:
        from .child import user_traceback
        from .execute import run_version
        from ._packages import imported_packages

        sink.started(None)
        previous = _report.install(_SinkReporter(sink))
        try:
            module, model, _ = self._load(job.script)
            version = model.versions.get_version(job.version)
            result = run_version(model, version, job.script, job.model_dir, job.exec_mode,
                                 source=getattr(module, "__mlpipeline_source__", None))
            return _Done(Outcome(RunStatus.SUCCEEDED, result=result.to_json(), packages=imported_packages()))
        except ScriptError as exc:
            return _Done(Outcome(RunStatus.FAILED, error=str(exc), traceback=exc.details, script_error=True))
        except SystemExit as exc:  # a hook that calls sys.exit() must not end the whole session quietly
            return _Done(Outcome(RunStatus.FAILED, error=f"the version called sys.exit({exc.code!r}) before finishing",
                                 traceback=user_traceback(exc), packages=imported_packages()))
        except Exception as exc:  # noqa: BLE001 - a failing version is an outcome, not a crash
            return _Done(Outcome(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}",
                                 traceback=user_traceback(exc), packages=imported_packages()))
        finally:
            _report.install(previous)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ChildRun:
    """A ``mlpipeline.child`` process and its two pipes: the script's
    own output (echoed and kept) and the JSON-lines event pipe."""

    def __init__(self, op: str, payload: Dict[str, Any], on_event: Callable[[Dict[str, Any]], None],
                 capture: Callable[[bytes], None], cwd: Optional[str], env: Dict[str, str]):
        read_fd, write_fd = os.pipe()
        payload = {**payload, "parent_pid": os.getpid()}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD_MAIN, op, json.dumps(payload), str(write_fd)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), start_new_session=True, cwd=cwd,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.out_fd = self.proc.stdout.fileno()
        self.event_fd = read_fd
        self.open = {self.out_fd, read_fd}
        self.on_event, self.capture = on_event, capture
        self.final: Dict[str, Any] = {}
        self._pending = b""
        self._exited_at: Optional[float] = None
        self.killed: Optional[tuple] = None  # (status, reason) when we killed it
        self.returncode: Optional[int] = None
        try:  # readable the moment the process exits: no polling for it (Linux 5.3+)
            self.pid_fd: Optional[int] = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.pid_fd = None

    def fds(self) -> List[int]:
        return sorted(self.open) + ([self.pid_fd] if self.pid_fd is not None else [])

    def on_ready(self, fd: int) -> None:
        if fd == self.pid_fd:  # the process exited; its pipes may still hold output to read
            self._close_pid_fd()
            return
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        if fd == self.out_fd:
            self.capture(data)
            return
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a script that wrote to our pipe by accident; ignore it
            if event.get("type") in ("result", "error", "described"):
                self.final = event
            self.on_event(event)

    def _close(self, fd: int) -> None:
        if fd in self.open:
            self.open.discard(fd)
            if fd == self.out_fd:
                self.proc.stdout.close()
            else:
                os.close(fd)

    def check(self, now: float) -> None:
        """Reap the child once its pipes are closed; if it has exited but left
        processes holding its pipes, kill them after a grace period."""
        if self.returncode is not None:
            return
        code = self.proc.poll()
        if code is None:
            return
        self._close_pid_fd()
        if self.open:
            self._exited_at = self._exited_at or now
            if now - self._exited_at < REAP_GRACE:
                return
            self._killpg()
            for fd in list(self.open):
                self._close(fd)
        self.returncode = code

    def _close_pid_fd(self) -> None:
        if self.pid_fd is not None:
            os.close(self.pid_fd)
            self.pid_fd = None

    def _killpg(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self, status: RunStatus, reason: str) -> None:
        if self.killed is None:
            self.killed = (status, reason)
        self._killpg()

    def wait(self) -> None:
        """Block until finished (used for short-lived describe children)."""
        with selectors.DefaultSelector() as selector:
            for fd in self.fds():
                selector.register(fd, selectors.EVENT_READ)
            while self.open:
                for key, _ in selector.select(timeout=0.5):
                    self.on_ready(key.fd)
                    if key.fd not in self.open:
                        selector.unregister(key.fd)
                self.check(time.monotonic())
        self.proc.wait()
        self.check(time.monotonic())


class _ChildHandle:
    """A running version in a child process."""

    def __init__(self, run: ChildRun, log_file):
        self.run, self.log_file = run, log_file

    def fds(self) -> List[int]:
        return self.run.fds()

    def on_ready(self, fd: int) -> None:
        self.run.on_ready(fd)

    def check(self, now: float) -> None:
        self.run.check(now)
        if self.run.returncode is not None and self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def kill(self, status: RunStatus, reason: str) -> None:
        self.run.kill(status, reason)

    def wait_exit(self, timeout: float) -> None:
        """Block up to ``timeout`` for the process to exit (its pipes are closed)."""
        try:
            self.run.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def outcome(self) -> Optional[Outcome]:
        code = self.run.returncode
        if code is None:
            return None
        final = self.run.final
        packages = final.get("packages") or {}
        if self.run.killed is not None:
            status, reason = self.run.killed
            return Outcome(status, exit_code=code if code >= 0 else None, signal=-code if code < 0 else None,
                           error=reason, packages=packages)
        if code == 0 and final.get("type") == "result":
            return Outcome(RunStatus.SUCCEEDED, result=final["result"], exit_code=0, packages=packages)
        if final.get("type") == "error":
            return Outcome(RunStatus.FAILED, exit_code=code if code >= 0 else None,
                           signal=-code if code < 0 else None, error=final["error"], packages=packages,
                           traceback=final.get("traceback") or "", script_error=final.get("kind") == "script")
        if code < 0:
            return Outcome(RunStatus.FAILED, signal=-code,
                           error=f"the version's process was killed by {signal_name(-code)}")
        return Outcome(RunStatus.FAILED, exit_code=code,
                       error=f"the version's process exited with code {code} before reporting a result")


class _Echo:
    """Copies a child's output to the terminal, each line prefixed when asked."""

    def __init__(self, enabled: bool, label: str):
        self.enabled, self.label = enabled, label.encode()
        self._partial = b""

    def __call__(self, data: bytes) -> None:
        if not self.enabled:
            return
        if self.label:
            data = self._partial + data
            *lines, self._partial = data.split(b"\n")
            data = b"".join(self.label + line + b"\n" for line in lines)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


class ChildProcessExecutor:
    """Runs each version in a fresh child process (``mlpipeline.child``).

    GPU memory is freed when it exits and a crash cannot take the runner down.
    Its stdout/stderr are shown live (``echo``) and kept in ``run_dir/output.log``;
    events arrive as JSON lines on a pipe of their own.
    """

    parallel = True

    def __init__(self, cwd: Optional[str] = None, echo: bool = True):
        self.cwd = cwd
        self.echo = echo

    def describe(self, path: str) -> ScriptInfo:
        output = bytearray()
        run = ChildRun("describe", {"script": path}, lambda event: None, output.extend, self.cwd, {})
        try:
            run.wait()
        except BaseException:
            run.kill(RunStatus.INTERRUPTED, "interrupted")
            raise
        final = run.final
        if final.get("type") == "described":
            return ScriptInfo.from_json(final["info"])
        if final.get("type") == "error":
            raise ScriptError(final["error"], final.get("traceback") or "")
        tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        code = run.returncode or 0
        how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with code {code}"
        raise ScriptError(f"{os.path.relpath(path)}: loading it {how} before reporting its versions {tail[0]}".rstrip())

    def start(self, job: Job, sink: Sink) -> _ChildHandle:
        payload = {"script": job.script, "version": job.version, "model_dir": job.model_dir,
                   "exec_mode": job.exec_mode, "memory_limit": job.memory_limit}
        log_file = None
        if job.run_dir:
            try:
                os.makedirs(job.run_dir, exist_ok=True)
                log_file = open(os.path.join(job.run_dir, "output.log"), "ab")
            except OSError as exc:
                from .errors import StorageError

                raise StorageError(f"{os.path.relpath(exc.filename or job.run_dir)}: cannot create the run's output "
                                   f"({exc.strerror}); free some space and run again") from None
        echo = _Echo(self.echo, job.label)

        def on_event(event: Dict[str, Any]) -> None:
            kind = event.get("type")
            if kind == "log":
                sink.log(event["message"], event.get("level", logging.INFO))
            elif kind == "metric":
                sink.metric(MetricRow(event["name"], event["value"], event.get("step"), event.get("split", "train")))

        def capture(data: bytes) -> None:
            if log_file is not None and not log_file.closed:
                try:
                    log_file.write(data)
                    log_file.flush()
                except OSError as exc:
                    from .errors import StorageError

                    raise StorageError(f"{os.path.relpath(log_file.name)}: cannot keep the version's output "
                                       f"({exc.strerror}); free some space and run again") from None
            echo(data)

        run = ChildRun("run", payload, on_event, capture, self.cwd, job.env)
        sink.started(run.proc.pid)
        return _ChildHandle(run, log_file)


def make_executor(isolate: bool, cwd: Optional[str] = None, echo: bool = True):
    return ChildProcessExecutor(cwd=cwd, echo=echo) if isolate else InProcessExecutor()
