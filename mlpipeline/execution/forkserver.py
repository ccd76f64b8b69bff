"""A fork server: version child processes forked from a warm interpreter.

Spawning a version's child costs an interpreter start and mlpipeline's
imports, ~70 ms, each time. The fork server is one process, started by the
local executor at its first version, that has imported mlpipeline's child side
(``mlpipeline.child`` and what it needs before the user's script) and nothing
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
from typing import Any, Dict, List, Optional, Tuple

from ..procs import MARK_PROJECT, MARK_RUN, MARK_VERSION

# Started as `python -c SERVER_MAIN RUNNER_PID SOCKET_FD CWD TITLE_SLOT`: the first entry of sys.path (the current
# folder) goes, as in local.CHILD_MAIN, so the two interpreters see the same sys.path.
SERVER_MAIN = "import sys; del sys.path[0]; from mlpipeline.execution.forkserver import serve; serve(sys.argv[1:])"
# What a version's child imports before the user's script; the server imports it once for all of them.
PRELOAD = ("mlpipeline.child", "mlpipeline._packages", "mlpipeline.scripts", "mlpipeline.execute", "mlpipeline.specs",
           "mlpipeline.helper", "mlpipeline.utils", "ctypes", "resource")
MARKS = (MARK_RUN, MARK_VERSION, MARK_PROJECT)
MARK_SLOT = 128       # bytes reserved in the server's environment for each marker's value
TITLE_SLOT = 512      # bytes reserved in its command line for a child's title (script and version)
MAX_MESSAGE = 200_000  # a request larger than this (a huge environment) is spawned instead
START_TIMEOUT = 30.0  # seconds the server may take to import mlpipeline's child side
REPLY_TIMEOUT = 10.0  # seconds a fork may take
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


def _depends_on() -> List[str]:
    """What this interpreter's state was read from and a later install changes: the site-packages
    folders (a package or a ``.pth`` file added or removed there), their ``.pth`` files (``pip
    install -e``), and the files of every module imported from outside the standard library
    (mlpipeline itself: an upgrade)."""
    import site

    folders = [*site.getsitepackages(), site.getusersitepackages()]
    found = list(folders)
    for folder in folders:
        try:
            found += sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".pth"))
        except OSError:
            pass
    stdlib = os.path.dirname(os.__file__)  # (sysconfig would import a module of its own here)
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and not path.startswith(stdlib):
            found.append(path)
    return found


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

    def __init__(self, cwd: Optional[str]):
        import subprocess

        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **{name: "_" * MARK_SLOT for name in MARKS}}
        self._settings = _startup_settings(self.env)
        self.failure: Optional[str] = None
        self._statuses: Dict[int, int] = {}   # pid -> wait status, as the server reported it
        self._forked: set = set()             # pids forked and not yet reported
        self._forgotten: set = set()          # of those, the ones whose report nobody waits for
        self._next_id = 1
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVER_MAIN, str(os.getpid()), str(theirs.fileno()), self.cwd, "_" * TITLE_SLOT],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True, cwd=self.cwd, env=self.env)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = self.proc.pid
        try:
            got = self._receive_until(lambda message: "ready" in message, START_TIMEOUT)
            if got is None:
                raise self._fail(f"the fork server did not start within {START_TIMEOUT:g} s")
        except ForkServerError:
            self.close()
            raise
        self._watched: List[str] = list(got[0].get("watch") or [])
        self._stamp = stamp(self._watched)

    def stale(self) -> Optional[str]:
        """What changed since the server started that a version it forks would miss (a package
        installed or upgraded, a ``.pth`` file added: mlpipeline too), or None. A fresh server
        (or a spawned child) reads it; this one does not."""
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
             marks: Dict[str, str], title: str) -> Tuple[int, Optional[int]]:
        """Fork a version's child that runs ``mlpipeline.child`` with ``argv``;
        returns its pid and a pidfd for it (None where the kernel has none).
        By then the child leads its own process group and dies with the server.
        Raises ``ForkServerError`` (the server is then given up), or ValueError
        for a request too large to send (spawn that one)."""
        request_id = self._next_id
        self._next_id += 1
        data = json.dumps({"fork": request_id, "argv": argv, "env": env, "cwd": cwd or self.cwd, "marks": marks,
                           "title": title}).encode()
        if len(data) > MAX_MESSAGE:
            raise ValueError("the request is too large for the fork server")
        try:
            socket.send_fds(self.sock, [data], [out_fd, event_fd])
        except OSError as exc:
            raise self._fail(f"the fork server stopped taking requests ({exc})") from None
        got = self._receive_until(lambda message: message.get("forked") == request_id, REPLY_TIMEOUT)
        if got is None:
            raise self._fail(f"the fork server did not answer within {REPLY_TIMEOUT:g} s")
        reply, fds = got
        if "pid" not in reply:
            for fd in fds:
                os.close(fd)
            raise self._fail(f"the fork server could not fork: {reply.get('error')}")
        self._forked.add(reply["pid"])
        return reply["pid"], (fds[0] if fds else None)

    def drain(self) -> None:
        """Read what the server has said, without waiting."""
        try:
            self._receive(0.0)
        except ForkServerError:
            pass

    def returncode(self, pid: int) -> Optional[int]:
        """The exit code of a child (negative: the signal that ended it), as
        ``Popen.returncode``; None while it runs."""
        self.drain()
        status = self._statuses.pop(pid, None)
        return None if status is None else os.waitstatus_to_exitcode(status)

    def forget(self, pid: int) -> None:
        """Drop ``pid``'s exit report, now or when it comes: nobody will ask for it."""
        self._statuses.pop(pid, None)
        if pid in self._forked:
            self._forgotten.add(pid)

    def wait(self, pid: int, timeout: Optional[float]) -> Optional[int]:
        """Wait up to ``timeout`` seconds (None: for ever) for ``pid``'s exit code."""
        if pid not in self._statuses:
            try:
                self._receive_until(lambda message: message.get("exited") == pid, timeout)
            except ForkServerError:
                pass
        return self.returncode(pid)

    def close(self) -> None:
        """Stop the server (the executor has ended the versions it forked)."""
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
        import time

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


# -- the server's side -------------------------------------------------------


def serve(argv: List[str]) -> None:
    """The server process: import the child side, then fork a child per request
    and report each one's exit, until the executor closes its socket or the
    runner dies. A request is handed to the spare, forked and set up ahead
    of it; the next spare is forked once the reply is sent."""
    import importlib

    from ..child import _die_with_parent

    runner = int(argv[0])
    sock = socket.socket(fileno=int(argv[1]))
    _die_with_parent(runner)
    for name in PRELOAD:
        importlib.import_module(name)
    defaults: Dict[int, Any] = {signal.SIGCHLD: signal.getsignal(signal.SIGCHLD)}
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    server_fds = [sock.fileno(), wake_r, wake_w]
    sock.send(json.dumps({"ready": os.getpid(), "watch": _depends_on()}).encode())
    spare: Optional[_Spare] = None
    try:
        spare = _fork_spare(defaults, server_fds)
        while os.getppid() == runner:
            readable = select.select([sock.fileno(), wake_r], [], [], 1.0)[0]
            if wake_r in readable:
                while _read_nonblocking(wake_r):
                    pass
            if _reap(sock, spare) and spare is not None:
                spare.close()  # it died unassigned: the next request is forked directly
                spare = None
            if sock.fileno() in readable:
                data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
                if not data:
                    break  # the executor closed: its versions are ended already
                request = json.loads(data)
                if spare is None or len(fds) != 2:
                    _fork(sock, request, fds, defaults, server_fds)
                    if spare is not None:
                        continue
                elif not spare.assign(sock, request, data, fds):
                    _fork(sock, request, fds, defaults, server_fds)  # it died: fork this one directly
                if spare is not None:
                    spare.end()  # it is a version now, or it is killed and reaped here (never reported)
                spare = _fork_spare(defaults, server_fds)  # after the reply: off the version's path
    finally:
        if spare is not None:
            spare.end()
        os._exit(0)


class _Spare:
    """A child forked ahead of the next request and set up as far as no
    version decides (``_prepare``), blocked on a socket of its own until the
    server hands it a request and the version's pipes. Unassigned, it is no
    version: its exit is never reported, and it ends with the server."""

    def __init__(self, pid: int, sock: socket.socket):
        self.pid, self.sock = pid, sock
        try:
            self.pid_fd: Optional[int] = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pid_fd = None
        self.assigned = False

    def assign(self, sock: socket.socket, request: Dict[str, Any], data: bytes, fds: List[int]) -> bool:
        """Hand it the request and the version's two pipes; answer the executor
        with its pid (and pidfd). False, the fds untouched, when it cannot take it (it died)."""
        try:
            socket.send_fds(self.sock, [data], fds)
        except OSError:
            return False
        self.assigned = True
        for fd in fds:
            os.close(fd)
        try:  # it does the same: whichever comes first, its group exists before anyone hears of its pid
            os.setpgid(self.pid, self.pid)
        except OSError:
            pass
        socket.send_fds(sock, [json.dumps({"forked": request["fork"], "pid": self.pid}).encode()],
                        [self.pid_fd] if self.pid_fd is not None else [])
        return True

    def close(self) -> None:
        """Drop the server's hold on it (it runs on, as a version, if assigned)."""
        self.sock.close()
        if self.pid_fd is not None:
            os.close(self.pid_fd)
            self.pid_fd = None

    def end(self) -> None:
        """Kill it and wait for it, unless it became a version."""
        if not self.assigned:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        self.close()


def _fork_spare(defaults: Dict[int, Any], server_fds: List[int]) -> Optional[_Spare]:
    """Fork the next spare (None when it cannot be forked: requests are forked directly)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        code = 70
        try:
            os.close(ours.fileno())
            code = _wait_as_spare(theirs, server, defaults, server_fds)
        finally:
            os._exit(code)
    theirs.close()
    return _Spare(pid, ours)


def _wait_as_spare(sock: socket.socket, server: int, defaults: Dict[int, Any], server_fds: List[int]) -> int:
    """In a spare: set up, wait for a request, then become its version."""
    slots = _prepare(server, defaults, server_fds, keep=[sock.fileno()])
    try:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
    except OSError:
        return 0
    sock.close()
    if not data or len(fds) != 2:
        return 0  # the server closed, or never meant it: no version ran
    return _become_version(json.loads(data), fds[0], fds[1], slots)


def _read_nonblocking(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def _reap(sock: socket.socket, spare: Optional[_Spare]) -> bool:
    """Report each exited child, the unassigned spare excepted; whether that one exited."""
    spare_died = False
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return spare_died
        if not pid:
            return spare_died
        if spare is not None and pid == spare.pid and not spare.assigned:
            spare_died = True
            continue
        sock.send(json.dumps({"exited": pid, "status": status}).encode())


def _fork(sock: socket.socket, request: Dict[str, Any], fds: List[int], defaults: Dict[int, Any],
          server_fds: List[int]) -> None:
    """Fork one version's child without a spare; answer with its pid (and a
    pidfd for it). By then it leads its own process group; it dies with this server."""
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"forked": request.get("fork"), "error": "expected two pipes"}).encode())
        return
    server = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"forked": request["fork"], "error": str(exc)}).encode())
        return
    if pid == 0:
        code = 70
        try:
            slots = _prepare(server, defaults, server_fds, keep=fds)
            code = _become_version(request, fds[0], fds[1], slots)
        finally:
            os._exit(code)
    try:  # the child does the same: whichever comes first, its group exists before anyone hears of its pid
        os.setpgid(pid, pid)
    except OSError:
        pass
    for fd in fds:
        os.close(fd)
    try:
        pid_fd: Optional[int] = os.pidfd_open(pid)  # before it is reaped: this pid cannot be another's yet
    except (AttributeError, OSError):
        pid_fd = None
    try:
        socket.send_fds(sock, [json.dumps({"forked": request["fork"], "pid": pid}).encode()],
                        [pid_fd] if pid_fd is not None else [])
    finally:
        if pid_fd is not None:
            os.close(pid_fd)


def _prepare(server: int, defaults: Dict[int, Any], server_fds: List[int], keep: List[int]) -> _Slots:
    """In a freshly forked child, what no version decides: its own process group
    (pgid == pid, in the server's session, which has no terminal: what
    start_new_session gives a spawned child, less a session id of its own),
    death with the server, default signal handlers, none of the server's
    descriptors but ``keep``, its event reporter started on a stand-in pipe;
    returns where its markers and title go, and that pipe's fd."""
    from .. import child

    os.setpgid(0, 0)
    child.watch_parent(server)  # and if the server is already gone, leave
    signal.set_wakeup_fd(-1)
    for signum, handler in defaults.items():
        signal.signal(signum, handler)
    for fd in server_fds:
        os.close(fd)
    for fd in _open_fds():
        if fd > 2 and fd not in keep and fd not in server_fds:
            try:
                os.close(fd)
            except OSError:
                pass
    return _marks(), child.prepare_reporter()


def _become_version(request: Dict[str, Any], out_fd: int, event_fd: int, slots: _Slots) -> int:
    """In a prepared child: become the request's version (what a spawned
    version's child would be), then run it."""
    import random

    from .. import child

    os.setpgid(0, 0)  # done already; cheap, and the pid is now a version's
    marks_at, events_at = slots
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.dup2(event_fd, events_at)  # over the stand-in its reporter writes to
    for fd in (out_fd, event_fd):
        if fd not in (1, 2, events_at):
            os.close(fd)
    os.chdir(request["cwd"])
    env = request["env"]  # the whole environment, as spawning gives it; only what differs is touched (faster)
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    _mark(marks_at, request.get("marks") or {}, request.get("title") or "")
    random.seed(os.urandom(32))  # never the server's state, nor another spare's
    argv = [*request["argv"], str(events_at)]
    sys.argv = ["-c", *argv]
    child.run_forked(argv)
    return 70  # not reached: run_forked leaves through os._exit


def _open_fds() -> List[int]:
    try:
        return sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        return list(range(3, 256))


def _marks() -> _Marks:
    """Where this process's environment block and command line hold the
    marker and title slots (the server's, inherited), found once per child
    before its version is known."""
    marks: Dict[str, Tuple[int, int]] = {}
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[-1].split()
        arg_start, env_start = int(fields[45]), int(fields[47])  # fields 48 and 50 of proc(5)
        with open("/proc/self/environ", "rb") as handle:
            block = handle.read()
        for name in MARKS:
            slot = f"{name}={'_' * MARK_SLOT}".encode()
            at = (b"\0" + block).find(b"\0" + slot + b"\0")  # the offset in block, thanks to the added \0
            if at >= 0:
                marks[name] = (env_start + at, len(slot))
        with open("/proc/self/cmdline", "rb") as handle:
            line = handle.read()
        at = line.find(b"_" * TITLE_SLOT)
        return marks, (arg_start + at if at >= 0 else None)
    except (OSError, ValueError, IndexError):
        return marks, None


def _mark(slots: _Marks, marks: Dict[str, str], title: str) -> None:
    """Write this child's markers and title over the slots the server's
    environment block and command line hold for them, where
    ``/proc/PID/environ`` and ``/proc/PID/cmdline`` read them (``os.environ``
    changes only the process's copy, which /proc does not show)."""
    try:
        import ctypes

        where, title_at = slots
        for name, (address, size) in where.items():
            value = marks.get(name)
            data = (f"{name}={value}".encode() if value else b"").ljust(size, b"\0")
            ctypes.memmove(address, data, size)
        if title_at is not None and title:
            data = title.encode()[:TITLE_SLOT - 1].ljust(TITLE_SLOT, b"\0")
            ctypes.memmove(title_at, data, len(data))
    except (OSError, ValueError, AttributeError):
        pass  # no /proc: the markers are in os.environ only, so what the version starts still carries them
