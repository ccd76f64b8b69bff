"""Versions in child processes on this machine, one process group each.

The local executor owns everything that is a local process: pids, process
groups, the pipes it reads, GPUs handed out through ``CUDA_VISIBLE_DEVICES``.
The runner sees tickets, events and outcomes.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import MLPipelineError, write_failed
from ..lifecycle import STEP_RANGE, Job, Outcome, RunStatus, Sink, metric_row
from ..procs import MARK_PROJECT, MARK_RUN, MARK_VERSION, kill_marked, kill_marked_any
from .base import Finished, signal_name
from .forkserver import MARKS, ForkedProcess, ForkServer, ForkServerError
from .forkserver import enabled as forkserver_enabled

log = logging.getLogger(__name__)

REAP_GRACE = 2.0   # seconds a finished child's leftover processes may keep its pipes open
RESULT_GRACE = 20.0  # seconds a child may take to exit after sending its result before it is ended
WARM_GRACE = 10.0  # seconds a warm cancel waits before it kills
SWEEP_EVERY = 0.5  # seconds between sweeps for what finished versions left outside their process groups
# -c: cheaper than -m. The first entry of sys.path (the current folder, the project root) goes: a json.py or
# mlpipeline.py there must not shadow the standard library or mlpipeline; the script's own folder comes first later.
CHILD_MAIN = "import sys; del sys.path[0]; from mlpipeline.child import run; run(sys.argv[1:])"



MAX_EVENT_LINE = 64 << 20  # bytes of one event line (log messages are cut to 1 MiB where they are sent)


class BadEvent(ValueError):
    """An event from a version's child that the runner cannot use."""


PAYLOAD_INLINE = 64 << 10  # bytes of JSON passed as an argument; more (huge parameters) goes through a file


def payload_arg(payload: Dict[str, Any]) -> str:
    """The child's payload argument: the JSON itself, or ``@`` and a file holding it (Linux refuses an
    argument over 128 KiB; the child reads the file and removes it)."""
    text = json.dumps(payload)
    if len(text) <= PAYLOAD_INLINE:
        return text
    handle, path = tempfile.mkstemp(prefix="mlp-payload-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    return "@" + path


def _drop_payload(arg: str) -> None:
    """Remove a payload file no child will read."""
    if arg.startswith("@"):
        try:
            os.unlink(arg[1:])
        except OSError:
            pass


class ChildRun:
    """A ``mlpipeline.child`` process and its two pipes: the script's own
    output (echoed and kept) and the JSON-lines event pipe."""

    def __init__(self, op: str, payload: Dict[str, Any], on_event: Callable[[Dict[str, Any]], None],
                 capture: Callable[[bytes], None], cwd: Optional[str], env: Dict[str, str],
                 server: Optional[ForkServer] = None, title: str = ""):
        read_fd, write_fd = os.pipe()
        try:  # a roomier pipe: metric batches arrive in fewer, larger reads (Linux F_SETPIPE_SZ)
            fcntl.fcntl(read_fd, 1031, 1 << 20)
        except OSError:
            pass
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc: Any = None
        self.pid_fd: Optional[int] = None
        try:
            if server is not None:
                self.proc = self._fork(server, op, payload, full_env, cwd, write_fd, title)
            if self.proc is None:
                arg = payload_arg({**payload, "parent_pid": os.getpid()})
                try:
                    self.proc = subprocess.Popen(
                        [sys.executable, "-c", CHILD_MAIN, op, arg, str(write_fd)],
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        pass_fds=(write_fd,), start_new_session=True, cwd=cwd, env=full_env)
                except BaseException:
                    _drop_payload(arg)
                    raise
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        assert self.proc.stdout is not None
        self.out_fd = self.proc.stdout.fileno()
        self.event_fd = read_fd
        self.open = {self.out_fd, read_fd}
        self.on_event, self.capture = on_event, capture
        self.final: Dict[str, Any] = {}
        self.refused = False  # it sent an event the runner cannot use
        self._pending = bytearray()
        self._exited_at: Optional[float] = None
        self.killed: Optional[tuple] = None  # (status, reason) when we ended it
        self._final_at: Optional[float] = None  # when the result (or error) arrived
        self.kill_at: Optional[float] = None  # a warm cancel's deadline
        self.returncode: Optional[int] = None
        self._pid_exited = False  # its pidfd said it exited
        if self.pid_fd is None and not self.forked:
            try:  # readable the moment the process exits: no polling for it (Linux 5.3+)
                self.pid_fd = os.pidfd_open(self.proc.pid)
            except (AttributeError, OSError):
                self.pid_fd = None

    @property
    def forked(self) -> bool:
        """Whether the fork server forked this child (else it was spawned)."""
        return isinstance(self.proc, ForkedProcess)

    def _fork(self, server: ForkServer, op: str, payload: Dict[str, Any], env: Dict[str, str], cwd: Optional[str],
              event_fd: int, title: str) -> Optional[ForkedProcess]:
        """Have the fork server fork this child (None: spawn it instead)."""
        marks = {name: env[name] for name in MARKS if env.get(name)}
        if server.refusal(env, cwd, marks) is not None:
            return None
        out_r, out_w = os.pipe()
        argv = [op, ""]
        try:
            argv[1] = payload_arg({**payload, "parent_pid": server.pid})
            pid, self.pid_fd = server.fork(argv, env, cwd, out_w, event_fd, marks, title)
        except (ValueError, ForkServerError):
            _drop_payload(argv[1])
            os.close(out_r)
            return None
        finally:
            os.close(out_w)
        return ForkedProcess(server, pid, os.fdopen(out_r, "rb", buffering=0))

    def fds(self) -> List[int]:
        return sorted(self.open) + ([self.pid_fd] if self.pid_fd is not None else [])

    def on_ready(self, fd: int) -> None:
        if fd == self.pid_fd:  # the process exited; its pipes may still hold output to read
            self._pid_exited = True
            self._close_pid_fd()
            return
        try:
            data = os.read(fd, 1 << 20)
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        if fd == self.out_fd:
            self.capture(data)
            return
        if self.refused:
            return  # its events no longer count: it is being ended
        self._pending += data  # a bytearray: a 32 MB log line arriving in pieces costs linear time
        if b"\n" not in data:
            if len(self._pending) > MAX_EVENT_LINE:
                self._refuse(f"an event line over {MAX_EVENT_LINE >> 20} MiB")
            return
        cut = self._pending.rfind(b"\n")
        lines = bytes(self._pending[:cut]).split(b"\n")
        del self._pending[:cut + 1]
        for line in lines:
            if not line.strip():
                continue
            try:
                self._take(line)
            except MLPipelineError:
                raise  # the runner's own records failed (a full disk): not this version's doing
            except Exception as exc:  # noqa: BLE001 - a bad event, or anything handling it raised: this version fails
                self._refuse(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc))
                return

    def _take(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            raise BadEvent(f"a line that is not JSON ({_shown(line[:40])})") from None
        if not isinstance(event, dict):
            raise BadEvent(f"a line that is not an event object ({_shown(event)})")
        if event.get("type") == "result":
            check_result(event.get("result"))
        if event.get("type") in ("result", "error"):
            self.final = event
            self._final_at = time.monotonic()
        self.on_event(event)

    def _refuse(self, reason: str) -> None:
        """The version sent what the runner cannot use: it is ended, and fails with the reason
        (the last line of defence: one version's events never stop the runner)."""
        self.refused = True
        self._pending.clear()
        self.final = {}
        self._final_at = None
        self.kill(RunStatus.FAILED, f"it sent an event the runner cannot record: {reason}; the version was ended")

    def _close(self, fd: int) -> None:
        if fd in self.open:
            self.open.discard(fd)
            if fd == self.out_fd:
                assert self.proc.stdout is not None
                self.proc.stdout.close()
            else:
                os.close(fd)

    def check(self, now: float) -> None:
        """Reap the child once its pipes are closed; if it has exited but left
        processes holding its pipes, kill them after a grace period."""
        if self.returncode is not None:
            return
        if self.kill_at is not None and now >= self.kill_at:
            self._killpg(signal.SIGKILL)
        if self._final_at is not None and time.monotonic() - self._final_at > RESULT_GRACE:
            self._killpg(signal.SIGKILL)  # it reported and will not leave (a stray thread): its result stands
        code = self.proc.poll()
        if code is None and self._pid_exited and self.forked and self.killed is None \
                and self.final.get("type") == "result":
            code = self.proc.exited_after_result()
        if code is None:
            return
        self._close_pid_fd()
        if self.open:
            self._exited_at = self._exited_at or now
            if now - self._exited_at < REAP_GRACE:
                return
            self._killpg(signal.SIGKILL)
            for fd in list(self.open):
                self._close(fd)
        self.returncode = code

    def end_group(self) -> None:
        """End whatever the version left in its process group."""
        self._killpg(signal.SIGKILL)

    def _close_pid_fd(self) -> None:
        if self.pid_fd is not None:
            os.close(self.pid_fd)
            self.pid_fd = None

    def _killpg(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self, status: RunStatus, reason: str, cold: bool = True, now: Optional[float] = None) -> None:
        if self.killed is None:
            self.killed = (status, reason)
        if cold:
            self._killpg(signal.SIGKILL)
        elif self.kill_at is None:
            self._killpg(signal.SIGTERM)
            self.kill_at = (time.monotonic() if now is None else now) + WARM_GRACE

    def wait(self) -> None:
        """Block until finished (short-lived children)."""
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

    def outcome(self) -> Outcome:
        code = self.returncode
        assert code is not None
        final = self.final
        packages = final.get("packages") or {}
        exit_code, signum = (code, None) if code >= 0 else (None, -code)
        if self.killed is not None:
            status, reason = self.killed
            return Outcome(status, exit_code=exit_code, signal=signum, error=reason, packages=packages)
        if final.get("type") == "result" and (code == 0 or self._final_at is not None):
            return Outcome(RunStatus.SUCCEEDED, result=final["result"], exit_code=0, packages=packages)
        if final.get("type") == "error":
            return Outcome(RunStatus.FAILED, exit_code=exit_code, signal=signum, error=final["error"],
                           packages=packages, traceback=final.get("traceback") or "",
                           script_error=final.get("kind") == "script")
        if signum is not None:
            return Outcome(RunStatus.FAILED, signal=signum,
                           error=f"the version's process was killed by {signal_name(signum)}")
        return Outcome(RunStatus.FAILED, exit_code=code,
                       error=f"the version's process exited with code {code} before reporting a result")


class _Echo:
    """Copies a child's output to the terminal, each line prefixed when asked.

    A closed stdout (``mlpipeline -r | head``) only stops the echo; the output
    is still kept in the run's output.log. A line without an end (a ``\r``
    progress bar) is passed on in pieces, so memory stays bounded."""

    MAX_PARTIAL = 1 << 16

    def __init__(self, enabled: bool, label: str):
        self.enabled, self.label = enabled, label.encode()
        self._partial = bytearray()

    def __call__(self, data: bytes) -> None:
        if not self.enabled:
            return
        if self.label:
            self._partial += data
            cut = max(self._partial.rfind(b"\n"), self._partial.rfind(b"\r"))
            if cut < 0 and len(self._partial) < self.MAX_PARTIAL:
                return
            end = cut + 1 if cut >= 0 else len(self._partial)
            chunk, self._partial = bytes(self._partial[:end]), self._partial[end:]
            pieces = chunk.replace(b"\r", b"\r\0").split(b"\n")
            data = b"".join((self.label + piece.replace(b"\r\0", b"\r" + self.label) + b"\n")
                            for piece in pieces[:-1])
            if pieces[-1]:
                data += self.label + pieces[-1].replace(b"\r\0", b"\r" + self.label)
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except (OSError, ValueError):  # the reader went away: keep running, keep the log file
            self.enabled = False


class _Running:
    def __init__(self, run: ChildRun, log_file: Any, gpu: Optional[str], mark: str):
        self.run, self.log_file, self.gpu, self.mark = run, log_file, gpu, mark

    def close_log(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _event_handler(sink: Sink) -> Callable[[Dict[str, Any]], None]:
    return lambda event: deliver(event, sink)


def deliver(event: Dict[str, Any], sink: Sink) -> None:
    """Hand one event of a version's child to its sink, every field checked
    where it enters the runner: BadEvent (or BadMetric) names what is wrong,
    and the caller fails that version alone."""
    kind = event.get("type")
    if kind == "metrics":
        rows = event.get("rows")
        if not isinstance(rows, list):
            raise BadEvent("a metrics event without a list of rows")
        checked = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 4:
                raise BadEvent(f"a metric row {_shown(row)} is not [name, value, step, split]")
            checked.append(metric_row(*row))
        sink.metrics(checked)
    elif kind == "log":
        message, level = event.get("message"), event.get("level", logging.INFO)
        if type(message) is not str or type(level) is not int:
            raise BadEvent("a log event needs a text message and a whole-number level")
        sink.log(message, level)
    elif kind == "output":
        if not isinstance(event.get("record"), dict):
            raise BadEvent("an output event without a record")
        sink.output(event["record"])
    elif kind == "data":
        if type(event.get("fingerprint")) is not str or len(event["fingerprint"]) > 200:
            raise BadEvent("a data event without a fingerprint")
        sink.data(event["fingerprint"])
    elif kind not in ("result", "error"):  # those two end the version: ChildRun keeps them
        raise BadEvent(f"an event of unknown type {_shown(kind)}")


def check_result(result: Any) -> Dict[str, Any]:
    """A child's reported result, checked as ``deliver`` checks events."""
    if not isinstance(result, dict):
        raise BadEvent(f"a result {_shown(result)} that is not an object")
    for split in ("eval_train", "eval_test"):
        values = result.get(split) or {}
        if not isinstance(values, dict):
            raise BadEvent(f"a result whose {split} is not an object")
        for name, value in values.items():
            metric_row(name, value)
    steps = result.get("steps")
    if steps is not None and (type(steps) is not int or not STEP_RANGE[0] <= steps <= STEP_RANGE[1]):
        raise BadEvent(f"a result whose steps {_shown(steps)} is not a whole number")
    for key in ("eval_train_text", "eval_test_text", "data_fingerprint"):
        if result.get(key) is not None and type(result[key]) is not str:
            raise BadEvent(f"a result whose {key} is not text")
    return result


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def open_output(job: Job, echo: bool) -> Tuple[Any, Callable[[bytes], None]]:
    """The run's output.log (None in test mode) and the function that keeps a
    version's output there and echoes it (labelled) to the terminal."""
    log_file = None
    if job.run_dir:
        try:
            os.makedirs(job.run_dir, exist_ok=True)
            log_file = open(os.path.join(job.run_dir, "output.log"), "ab")
        except OSError as exc:
            raise write_failed(exc.filename or job.run_dir, exc, "create the run's output") from None
    shown = _Echo(echo, job.label)

    def capture(data: bytes) -> None:
        if log_file is not None and not log_file.closed:
            try:
                log_file.write(data)
                log_file.flush()
            except OSError as exc:
                raise write_failed(log_file.name, exc, "keep the version's output") from None
        shown(data)
    return log_file, capture


def project_mark(cwd: Optional[str]) -> str:
    """The mark every version of this project carries (its root's path, hashed)."""
    return hashlib.sha256(os.path.abspath(cwd or os.getcwd()).encode()).hexdigest()[:16]


def child_env(project: str, job: Job, fallback: str, marked: bool) -> Tuple[Dict[str, str], str]:
    """The markers a version's child carries in its environment, and its version
    mark: its run always; with ``marked`` (the lock holder's versions, not a test
    session's) the project and the version too, so a later runner can end them."""
    version_mark = hashlib.sha256(f"{project}\0{job.spec.rel}\0{job.spec.version}".encode()).hexdigest()[:16]
    env = {MARK_RUN: job.tag or fallback}
    if marked:
        env.update({MARK_PROJECT: project, MARK_VERSION: version_mark})
    return env, version_mark


class LocalExecutor:
    """Runs each version in a fresh child process (``mlpipeline.child``), up to
    ``jobs`` at once, each with a GPU of its own when ``gpus`` are given.

    GPU memory is freed when a child exits and a crash cannot take the runner
    down. Its stdout/stderr are shown live (``echo``) and kept in
    ``run_dir/output.log``; events arrive as JSON lines on a pipe of their own.
    """

    def __init__(self, jobs: int = 1, gpus: Optional[List[str]] = None, cwd: Optional[str] = None,
                 echo: bool = True, clock: Callable[[], float] = time.monotonic, sweep: bool = False):
        self.jobs = max(1, jobs)
        self.gpus = list(gpus or [])
        self.free_gpus = list(self.gpus)
        self.cwd = cwd
        self.echo = echo
        self.clock = clock
        self._running: Dict[int, _Running] = {}
        self._next_ticket = 1
        self.project_mark = project_mark(cwd)
        self._use_fork = forkserver_enabled()  # until the fork server fails: then spawn, for good
        self._server: Optional[ForkServer] = None
        self._retired: List[ForkServer] = []  # servers that went stale while versions they forked still run
        # Finished versions' marks not yet swept for helpers that left their group: one pass over /proc
        # serves them all, at most every SWEEP_EVERY seconds while versions run, at once when none does.
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
                   "memory_limit": job.memory_limit, "run_dir": job.run_dir}
        env, version_mark = child_env(self.project_mark, job, f"{os.getpid()}-{self._next_ticket}", self.sweep)
        if version_mark in self._versions_run:  # nothing of its earlier run may still be at work in its model dir
            self._sweep_marks([(MARK_VERSION, version_mark)] if self.sweep else [])
        self._versions_run.add(version_mark)  # (a dead runner's were ended by the sweep at the start)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        server = self._fork_server(sink)
        try:
            run = ChildRun("run", payload, _event_handler(sink), capture, self.cwd, env, server=server,
                           title=f"mlpipeline version {job.spec.script} {job.spec.version}")
            if server is not None and not server.alive:  # it failed on this version, which was spawned instead
                self._give_up(server.failure or "it failed", sink)
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

    def _fork_server(self, sink: Sink) -> Optional[ForkServer]:
        """The fork server, started at the first version (None: spawn). One that would miss what was
        installed since it started is retired (its running versions finish) and a fresh one started."""
        if self._use_fork and self._server is not None and self._server.alive:
            why = self._server.stale()
            if why is not None:
                sink.log(f"fork server: {why}; a fresh one forks the versions from now on", logging.INFO)
                self._retired.append(self._server)
                self._server = None
        if self._use_fork and self._server is None:
            try:
                self._server = ForkServer(self.cwd)
            except OSError as exc:
                self._give_up(f"it did not start ({exc})", sink)
        return self._server if self._use_fork else None

    def _give_up(self, reason: str, sink: Sink) -> None:
        if self._use_fork:
            self._use_fork = False
            message = f"fork server: {reason}; versions are spawned from now on"
            log.warning(message)
            sink.log(message, logging.WARNING)

    def _free_gpu(self, gpu: str) -> None:
        self.free_gpus.append(gpu)
        self.free_gpus.sort(key=self.gpus.index)

    def poll(self, timeout: float) -> List[Finished]:
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
        finished: List[Finished] = []
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
        if self._unswept and (not self._running or now - self._swept_at >= SWEEP_EVERY):
            self._sweep_marks()
        if self._retired:
            in_use = self._servers_in_use()
            for server in [s for s in self._retired if s not in in_use]:
                self._retired.remove(server)
                server.close()  # its versions are done
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
        for server in [*self._retired, *([self._server] if self._server is not None else [])]:
            server.close()  # its versions are ended: it leaves on EOF
        self._retired, self._server = [], None
        self._use_fork = False
