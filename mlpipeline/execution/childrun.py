"""A version's child process and its two pipes — the script's own output (echoed, kept in the
run's ``output.log``) and the JSON-lines event pipe (``proc.protocol``) — forked by the fork
server or spawned (``proc.spawn``). The local executor runs versions through it, and so does a
Ray node (``node``)."""
from __future__ import annotations

import hashlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..core.timings import timings
from ..core.errors import MLPipelineError, write_failed
from ..core.layout import run_log
from ..core.lifecycle import Job, Outcome, RunStatus
from ..proc.outcome import exit_outcome
from ..proc.protocol import MAX_EVENT_LINE, BadEvent, check_result, shown
from ..proc.spawn import Lines, LineTooLong, spawn
from ..proc.system import MARK_PROJECT, MARK_RUN, MARK_VERSION, killpg, roomy_pipe
from .forkserver import MARKS, ForkedProcess, ForkServer, ForkServerError

# -c: cheaper than -m. The first entry of sys.path (the current folder, the project root) goes: a json.py or
# mlpipeline.py there must not shadow the standard library or mlpipeline; the script's own folder comes first later.
CHILD_MAIN = "import sys; del sys.path[0]; from mlpipeline.script.child import run; run(sys.argv[1:])"


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
    """A ``mlpipeline.script.child`` process and its two pipes: the script's own
    output (echoed and kept) and the JSON-lines event pipe."""

    def __init__(self, op: str, payload: Dict[str, Any], on_event: Callable[[Dict[str, Any]], None],
                 capture: Callable[[bytes], None], cwd: Optional[str], env: Dict[str, str],
                 server: Optional[ForkServer] = None, title: str = ""):
        read_fd, write_fd = os.pipe()
        roomy_pipe(read_fd)  # metric batches arrive in fewer, larger reads
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc: Any = None
        self.pid_fd: Optional[int] = None
        try:
            if server is not None:
                self.proc = self._fork(server, op, payload, full_env, cwd, write_fd, title)
            if self.proc is None:
                arg = payload_arg({**payload, "parent_pid": os.getpid()})
                try:  # (the executor put the version's marks in env)
                    self.proc = spawn(CHILD_MAIN, [op, arg, str(write_fd)], cwd=cwd, env=env, marked=False,
                                      stdout=subprocess.PIPE, pass_fds=(write_fd,)).proc
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
        self._lines = Lines(MAX_EVENT_LINE)
        self._exited_at: Optional[float] = None
        self.killed: Optional[tuple] = None  # (status, reason) when we ended it
        self._final_at: Optional[float] = None  # when the result (or error) arrived
        self.kill_at: Optional[float] = None  # a warm cancel's deadline
        self.returncode: Optional[int] = None
        self.heard_at: Optional[float] = None  # (monotonic) when it last printed
        self.last_line = ""
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
            self.heard_at = time.monotonic()  # a line it printed: it is not stalled
            text = data.rstrip().rsplit(b"\n", 1)[-1].strip()
            if text:
                self.last_line = text[-500:].decode("utf-8", "replace")
            return
        if self.refused:
            return  # its events no longer count: it is being ended
        try:
            lines = self._lines.feed(data)
        except LineTooLong as exc:
            self._refuse(f"an event that is {exc}")
            return
        for line in lines:
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
            raise BadEvent(f"a line that is not JSON ({shown(line[:40])})") from None
        if not isinstance(event, dict):
            raise BadEvent(f"a line that is not an event object ({shown(event)})")
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
        self._lines.clear()
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
        if self._final_at is not None and time.monotonic() - self._final_at > timings().result_grace:
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
            if now - self._exited_at < timings().reap_grace:
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
        killpg(self.proc.pid, signum)

    def kill(self, status: RunStatus, reason: str, cold: bool = True, now: Optional[float] = None) -> None:
        if self.killed is None:
            self.killed = (status, reason)
        if cold:
            self._killpg(signal.SIGKILL)
        elif self.kill_at is None:
            self._killpg(signal.SIGTERM)
            self.kill_at = (time.monotonic() if now is None else now) + timings().warm_grace

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
        assert self.returncode is not None
        return exit_outcome(self.returncode, self.final, self._final_at is not None, self.killed)


class Echo:
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


def open_output(job: Job, echo: bool) -> Tuple[Any, Callable[[bytes], None]]:
    """The run's output.log (None in test mode) and the function that keeps a
    version's output there and echoes it (labelled) to the terminal."""
    log_file = None
    if job.run_dir:
        try:
            os.makedirs(job.run_dir, exist_ok=True)
            log_file = open(run_log(job.run_dir), "ab")
        except OSError as exc:
            raise write_failed(exc.filename or job.run_dir, exc, "create the run's output") from None
    shown = Echo(echo, job.label)

    def capture(data: bytes) -> None:
        if log_file is not None and not log_file.closed:
            try:
                log_file.write(data)
                log_file.flush()
            except OSError as exc:
                raise write_failed(log_file.name, exc, "keep the version's output") from None
        shown(data)
    return log_file, capture


def child_env(project: str, job: Job, fallback: str, marked: bool) -> Tuple[Dict[str, str], str]:
    """The markers a version's child carries in its environment, and its version
    mark: its run always; with ``marked`` (the lock holder's versions, not a test
    session's) the project and the version too, so a later runner can end them."""
    version_mark = hashlib.sha256(f"{project}\0{job.spec.rel}\0{job.spec.version}".encode()).hexdigest()[:16]
    env = {MARK_RUN: job.tag or fallback}
    if marked:
        env.update({MARK_PROJECT: project, MARK_VERSION: version_mark})
    return env, version_mark


