"""A fork server: version child processes forked from a warm interpreter.

Spawning a version's child costs an interpreter start and mlpipeline's
imports, ~70 ms, each time. The fork server is one process, started by the
local executor at its first version, that has imported mlpipeline's child side
(``mlpipeline.script.child`` and what it needs before the user's script) and nothing
of the user's. For each version it forks a child, which then becomes what a
spawned child would be: its own process group, the version's
stdout/stderr and event pipes, current folder and full environment, fresh
``random`` state, default signal handlers; then it imports the script. So each
version still starts clean: a framework one version imported is never in the
next.

The server keeps one child forked ahead, a spare, set up as far as no
version decides (process group, death with the server, signals, descriptors,
event reporter) and blocked on a socket of its own. A request goes to it with
the version's pipes, and the server answers with its pid at once; the spare
does the rest (pipes, folder, environment, markers, title, ``random`` seed)
and runs the version, while the server forks the next spare. A spare is
forked from the server, never reused, and until it is handed a request it is
no version: its exit is never reported, the server kills it when it leaves,
and it dies with the server. A request that finds no live spare is forked
directly.

Death: the server dies with the runner (``PR_SET_PDEATHSIG``, relative to the
runner, and a ``getppid`` check), and every version it forked dies with the
server (``PR_SET_PDEATHSIG`` relative to it), so a SIGKILL of the runner still
leaves no version running. The markers ``procs.kill_marked`` looks for
(``MLPIPELINE_RUN`` ...) are written into the child's own environment block,
where ``/proc/PID/environ`` reads them, and its command line names the script
and the version.

Linux only: the executor spawns instead elsewhere (macOS: fork after the
Objective-C runtime started is unsafe), with ``MLPIPELINE_FORKSERVER=0``, for
a version whose interpreter settings (``PYTHON*``, locale variables, current
folder) differ from the server's, and for good once the server fails.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..core.timings import timings
from ..proc.spawn import spawn
from ..proc.system import MARK_PROJECT, MARK_RUN, MARK_VERSION

# Started as `python -c SERVER_MAIN RUNNER_PID SOCKET_FD CWD TITLE_SLOT`: the first entry of sys.path (the current
# folder) goes, as in local.CHILD_MAIN, so the two interpreters see the same sys.path.
SERVER_MAIN = "import sys; del sys.path[0]; from mlpipeline.execution.forkserver_main import serve; serve(sys.argv[1:])"
# What a version's child imports before the user's script; the server imports it once for all of them.
PRELOAD = ("mlpipeline.script.child", "mlpipeline.script.packages", "mlpipeline.script.loading", "mlpipeline.script.execute",
           "mlpipeline.script.describing",
           "mlpipeline.script.specs", "mlpipeline.script.runspec", "mlpipeline.script.plain",
           "mlpipeline.script.command", "argparse", "shlex",
           "mlpipeline.helper", "mlpipeline.utils", "mlpipeline.sweeps", "mlpipeline.outputs", "ctypes", "resource")
MARKS = (MARK_RUN, MARK_VERSION, MARK_PROJECT)
MARK_SLOT = 128       # bytes reserved in the server's environment for each marker's value
TITLE_SLOT = 512      # bytes reserved in its command line for a child's title (script and version)
MAX_MESSAGE = 200_000  # a request larger than this (a huge environment) is spawned instead
# Where a child writes its markers and title: (address, slot length) per marker, and the title's address.
_Marks = Tuple[Dict[str, Tuple[int, int]], Optional[int]]
# What a prepared child holds for its version: where its markers go, and the fd its event reporter writes to.
_Slots = Tuple[_Marks, int]


class ForkServerError(OSError):
    """The fork server could not start, stopped answering or died."""


def enabled() -> bool:
    """Whether versions may be forked here at all (Linux, and not turned off)."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork") and hasattr(socket, "send_fds")
            and os.environ.get("MLPIPELINE_FORKSERVER", "1").strip().lower() not in ("0", "false", "no", "off"))


def _startup_settings(env: Dict[str, str]) -> Dict[str, str]:
    """The variables an interpreter reads once, at start (sys.path, hash seed, warnings, encodings)."""
    return {k: v for k, v in env.items() if k.startswith(("PYTHON", "LC_")) or k == "LANG"}


def stamp(paths: List[str]) -> List[Any]:
    """Each path's modification time and size (None for a path that is not there)."""
    stamped: List[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
            stamped.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamped.append(None)
    return stamped


# -- the executor's side -----------------------------------------------------


class ForkServer:
    """A started fork server, seen from the executor: ask it to fork a version,
    learn its children's exit statuses. One per executor; not thread-safe."""

    def __init__(self, cwd: Optional[str], preload: Tuple[str, ...] = (), wait: bool = True):
        """Start a server in ``cwd``. ``preload``: third-party modules it imports before it forks
        anything (a warm parent for one set of a script's imports); then ``wait=False`` returns at
        once and ``ready()`` says when it can fork."""
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.preload = tuple(preload)
        self._lock = threading.RLock()  # the executor's loop and the describe threads share a server
        self._ready = False
        self.unsafe: Optional[str] = None  # why a warm parent may not fork (a thread, a CUDA context)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **{name: "_" * MARK_SLOT for name in MARKS}}
        self._settings = _startup_settings(self.env)
        self.failure: Optional[str] = None
        self._statuses: Dict[int, int] = {}   # pid -> wait status, as the server reported it
        self._forked: set = set()             # pids forked and not yet reported
        self._forgotten: set = set()          # of those, the ones whose report nobody waits for
        self._next_id = 1
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        try:  # (its marks are slots its children fill in: it carries none of its own)
            self.proc = spawn(SERVER_MAIN, [str(os.getpid()), str(theirs.fileno()), self.cwd, ",".join(self.preload),
                                            "_" * TITLE_SLOT],
                              cwd=self.cwd, env=self.env, marked=False, stderr=None,
                              pass_fds=(theirs.fileno(),)).proc
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self._started = time.monotonic()
        self._watched: List[str] = []
        self._stamp: List[Any] = []
        if wait:
            try:
                got = self._receive_until(lambda message: "ready" in message, timings().fork_start)
                if got is None:
                    raise self._fail(f"the fork server did not start within {timings().fork_start:g} s")
            except ForkServerError:
                self.close()
                raise

    def wait_ready(self, timeout: float) -> Optional[bool]:
        """``ready()``, waiting up to ``timeout`` seconds while it imports."""
        with self._lock:
            if not self._ready and self.failure is None:
                try:
                    self._receive_until(lambda message: "ready" in message, timeout)
                except ForkServerError:
                    pass
        return self.ready()

    def ready(self, limit: Optional[float] = None) -> Optional[bool]:
        """Without waiting: True once it can fork, None while it imports, False when it failed,
        took longer than ``limit`` seconds (default ``timings().fork_start``) or may not fork
        (``unsafe``)."""
        with self._lock:
            if self._ready:
                return self.unsafe is None
            try:
                self._receive(0.0)
            except ForkServerError:
                return False
            if self._ready:
                return self.unsafe is None
            if time.monotonic() - self._started > (timings().fork_start if limit is None else limit):
                self._fail(f"it did not finish its imports within {limit or timings().fork_start:g} s")
                return False
            return None

    def stale(self) -> Optional[str]:
        """What changed since the server started that a version it forks would miss (a package
        installed or upgraded, a ``.pth`` file added: mlpipeline too), or None. A fresh server
        (or a spawned child) reads it; this one does not."""
        with self._lock:
            return self._stale()

    def _stale(self) -> Optional[str]:
        now = stamp(self._watched)
        if now == self._stamp:
            return None
        changed = next(path for path, a, b in zip(self._watched, self._stamp, now) if a != b)
        return f"{changed} changed since it started"

    @property
    def forked(self) -> int:
        """Children it forked whose exit is not reported yet."""
        return len(self._forked)

    @property
    def alive(self) -> bool:
        return self.failure is None

    def fileno(self) -> int:
        return self.sock.fileno()

    def refusal(self, env: Dict[str, str], cwd: Optional[str], marks: Dict[str, str]) -> Optional[str]:
        """Why a version with this environment cannot be forked here (None: it can)."""
        if self.failure is not None:
            return self.failure
        if os.path.abspath(cwd or os.getcwd()) != self.cwd:
            return "its current folder is not the fork server's"
        if _startup_settings(env) != self._settings:
            return "its interpreter settings (PYTHON*, locale) differ from the fork server's"
        if any(len(value.encode()) > MARK_SLOT for value in marks.values()):
            return "a marker is too long"
        return None

    def fork(self, argv: List[str], env: Dict[str, str], cwd: Optional[str], out_fd: int, event_fd: int,
             marks: Dict[str, str], title: str, light: bool = False) -> Tuple[int, Optional[int]]:
        """Fork a version's child that runs ``mlpipeline.script.child`` with ``argv``;
        returns its pid and a pidfd for it (None where the kernel has none). ``light``: a short
        child that sends no events (a describe): forked as asked, not from the spare, without
        the event reporter and the parent-watching thread a version gets (the kernel's
        parent-death signal still ends it with the server).
        By then the child leads its own process group and dies with the server.
        Raises ``ForkServerError`` (the server is then given up), or ValueError
        for a request too large to send (spawn that one)."""
        with self._lock:
            return self._fork(argv, env, cwd, out_fd, event_fd, marks, title, light)

    def _fork(self, argv: List[str], env: Dict[str, str], cwd: Optional[str], out_fd: int, event_fd: int,
              marks: Dict[str, str], title: str, light: bool) -> Tuple[int, Optional[int]]:
        if not self._ready:
            raise ForkServerError(self.failure or "the fork server is still starting")
        request_id = self._next_id
        self._next_id += 1
        data = json.dumps({"fork": request_id, "argv": argv, "env": env, "cwd": cwd or self.cwd, "marks": marks,
                           "title": title, "light": light}).encode()
        if len(data) > MAX_MESSAGE:
            raise ValueError("the request is too large for the fork server")
        try:
            socket.send_fds(self.sock, [data], [out_fd, event_fd])
        except OSError as exc:
            raise self._fail(f"the fork server stopped taking requests ({exc})") from None
        got = self._receive_until(lambda message: message.get("forked") == request_id, timings().fork_reply)
        if got is None:
            raise self._fail(f"the fork server did not answer within {timings().fork_reply:g} s")
        reply, fds = got
        if "pid" not in reply:
            for fd in fds:
                os.close(fd)
            raise self._fail(f"the fork server could not fork: {reply.get('error')}")
        self._forked.add(reply["pid"])
        return reply["pid"], (fds[0] if fds else None)

    def drain(self) -> None:
        """Read what the server has said, without waiting."""
        with self._lock:
            try:
                while self._receive(0.0) is not None:
                    pass
            except ForkServerError:
                pass

    def returncode(self, pid: int) -> Optional[int]:
        """The exit code of a child (negative: the signal that ended it), as
        ``Popen.returncode``; None while it runs."""
        with self._lock:
            self.drain()
            status = self._statuses.pop(pid, None)
            return None if status is None else os.waitstatus_to_exitcode(status)

    def forget(self, pid: int) -> None:
        """Drop ``pid``'s exit report, now or when it comes: nobody will ask for it."""
        with self._lock:
            self._statuses.pop(pid, None)
            if pid in self._forked:
                self._forgotten.add(pid)

    def wait(self, pid: int, timeout: Optional[float]) -> Optional[int]:
        """Wait up to ``timeout`` seconds (None: for ever) for ``pid``'s exit code; another
        thread may use the server meanwhile (the wait holds its lock a slice at a time)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if pid in self._statuses or self.failure is not None:
                    return self.returncode(pid)
                left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if left <= 0:
                    return None
                try:
                    self._receive(left)
                except ForkServerError:
                    pass

    def close(self) -> None:
        """Stop the server (the executor has ended the versions it forked)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(2.0)
        except Exception:  # noqa: BLE001 - it did not leave on EOF: end it (its children die with it)
            self.proc.kill()
            self.proc.wait()
        if self.failure is None:
            self.failure = "the fork server was closed"

    # -- messages ------------------------------------------------------------

    def _fail(self, reason: str) -> ForkServerError:
        """Give the server up: end it (and so whatever it forked that we do not
        know of), and count every child not yet reported as killed: each died with it."""
        if self.failure is None:
            self.failure = reason
            try:
                self.proc.kill()
            except OSError:
                pass
            try:
                self.proc.wait(5.0)
            except Exception:  # noqa: BLE001 - a zombie the next Popen reaps
                pass
            for pid in self._forked - self._forgotten:
                self._statuses.setdefault(pid, signal.SIGKILL)  # a wait status: killed by SIGKILL
        return ForkServerError(reason)

    def _receive(self, timeout: Optional[float]) -> Optional[Tuple[Dict[str, Any], List[int]]]:
        """One message (None when none came within ``timeout``); exit reports are kept."""
        if self.failure is not None:
            raise ForkServerError(self.failure)
        if not select.select([self.sock], [], [], timeout)[0]:
            return None
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 1)
        except OSError as exc:
            raise self._fail(f"the fork server's socket failed ({exc})") from None
        if not data:
            code = self.proc.poll()
            raise self._fail("the fork server died" + (f" (exit code {code})" if code is not None else ""))
        message = json.loads(data)
        if "ready" in message:
            self._ready = True
            self.unsafe = message.get("unsafe")
            self._watched = list(message.get("watch") or [])
            self._stamp = stamp(self._watched)
        if "exited" in message:
            pid = message["exited"]
            self._forked.discard(pid)
            if pid in self._forgotten:
                self._forgotten.discard(pid)
            else:
                self._statuses[pid] = message["status"]
        return message, fds

    def _receive_until(self, wanted: Any, timeout: Optional[float]) -> Optional[Tuple[Dict[str, Any], List[int]]]:
        """The first message ``wanted`` accepts (None if none came within ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            got = self._receive(left)
            if got is None:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            if wanted(got[0]):
                return got
            for fd in got[1]:
                os.close(fd)


class ForkedProcess:
    """The part of ``subprocess.Popen`` that ``ChildRun`` uses, for a child the
    fork server forked: pid, its output pipe, ``poll`` and ``wait``."""

    def __init__(self, server: ForkServer, pid: int, stdout: Any):
        self.server, self.pid, self.stdout = server, pid, stdout
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self.returncode = self.server.returncode(self.pid)
        return self.returncode

    def exited_after_result(self) -> int:
        """The child exited (its pidfd said so) after sending its result: its
        exit code, if the server reported it already, else 0, and its report is
        not waited for (the outcome of a version that sent its result does not
        depend on the code: saves a round trip through the server a version)."""
        code = self.poll()
        if code is None:
            self.server.forget(self.pid)
            code = self.returncode = 0
        return code

    def wait(self, timeout: Optional[float] = None) -> int:
        import subprocess

        if self.returncode is None:
            self.returncode = self.server.wait(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"version child {self.pid}", timeout or 0.0)
        return self.returncode
