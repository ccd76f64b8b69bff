"""The fork server's own process (``forkserver.ForkServer`` starts it): import mlpipeline's
child side once, then fork a child per request — a spare set up ahead — and report each one's
exit, until the executor closes its socket or the runner dies."""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import sys
from typing import Any, Dict, List, Optional, Tuple

from ..proc.system import die_with_parent, watch_parent
from .forkserver import MARK_SLOT, MARKS, PRELOAD, TITLE_SLOT, _Marks, _Slots


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



def _preload(names: List[str]) -> Optional[str]:
    """Import a script's third-party modules (a warm parent), their output to /dev/null; why
    forking versions from here would not be what a fresh interpreter gives them, or None."""
    import importlib
    import threading

    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(null, 1)
        os.dup2(null, 2)
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException as exc:  # noqa: BLE001 - whatever it raised, versions import it themselves
                return f"importing {name} failed ({type(exc).__name__}: {exc})"
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        return f"importing {', '.join(names)} started a thread ({others[0]}), and a fork copies no thread"
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and getattr(cuda, "is_initialized", lambda: False)():
        return "importing torch set up CUDA, which a forked process cannot use"
    return None


def serve(argv: List[str]) -> None:
    """The server process: import the child side, then fork a child per request
    and report each one's exit, until the executor closes its socket or the
    runner dies. A request is handed to the spare, forked and set up ahead
    of it; the next spare is forked once the reply is sent."""
    import importlib

    runner = int(argv[0])
    sock = socket.socket(fileno=int(argv[1]))
    die_with_parent(runner)
    for name in PRELOAD:
        importlib.import_module(name)
    watch = _depends_on()
    extras = [name for name in argv[3].split(",") if name]
    unsafe = _preload(extras) if extras else None
    watch += [path for path in (getattr(sys.modules.get(name), "__file__", None) for name in extras) if path]
    defaults: Dict[int, Any] = {signal.SIGCHLD: signal.getsignal(signal.SIGCHLD)}
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    server_fds = [sock.fileno(), wake_r, wake_w]
    global _MARKS_AT
    _MARKS_AT = _marks()  # where every child's markers and title go: the same addresses in each (inherited)
    gc.freeze()  # what is imported now is never collected: a child's collections neither walk nor copy it
    spare: Optional[_Spare] = None
    try:
        sock.send(json.dumps({"ready": os.getpid(), "watch": watch, "unsafe": unsafe}).encode())
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
                if request.get("light"):
                    _fork(sock, request, fds, defaults, server_fds)  # the spare waits for the next version
                    continue
                if spare is None or len(fds) != 2:
                    _fork(sock, request, fds, defaults, server_fds)
                    if spare is not None:
                        continue
                elif not spare.assign(sock, request, data, fds):
                    _fork(sock, request, fds, defaults, server_fds)  # it died: fork this one directly
                if spare is not None:
                    spare.end()  # it is a version now, or it is killed and reaped here (never reported)
                spare = _fork_spare(defaults, server_fds)  # after the reply: off the version's path
    except (BrokenPipeError, ConnectionResetError):
        pass  # the executor closed its end (it stopped, even before this server was ready): leave quietly
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
            slots = _prepare(server, defaults, server_fds, keep=fds, light=bool(request.get("light")))
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


def _prepare(server: int, defaults: Dict[int, Any], server_fds: List[int], keep: List[int],
             light: bool = False) -> _Slots:
    """In a freshly forked child, what no version decides: its own process group
    (pgid == pid, in the server's session, which has no terminal: what
    start_new_session gives a spawned child, less a session id of its own),
    death with the server, default signal handlers, none of the server's
    descriptors but ``keep``, its event reporter started on a stand-in pipe;
    returns where its markers and title go, and that pipe's fd."""
    from ..script import child
    from ..script import utils as script_utils

    os.setpgid(0, 0)
    if light:
        die_with_parent(server)  # the kernel's signal: no thread (a short child that starts nothing, as a rule)
    else:
        watch_parent(server)  # and if the server is already gone, leave; its process group goes along
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
    _leave_finalizers_to_the_server()
    script_utils.PRELOADED = frozenset(sys.modules)  # ahead of the version: it reads which modules are its own
    return _MARKS_AT or _marks(), (-1 if light else child.prepare_reporter())


def _leave_finalizers_to_the_server() -> None:
    """The ``weakref.finalize`` callbacks a warm parent's imports registered are its own: the child
    does not run them as it exits (torch's free its operator tables: 25 ms a version, for memory the
    exit frees anyway; a temporary folder the parent made must outlive the child). Those the version
    registers run as usual."""
    import weakref

    try:
        inherited = list(weakref.finalize._registry)  # type: ignore[attr-defined]
    except AttributeError:
        return
    for finalizer in inherited:
        finalizer.atexit = False


def _become_version(request: Dict[str, Any], out_fd: int, event_fd: int, slots: _Slots) -> int:
    """In a prepared child: become the request's version (what a spawned
    version's child would be), then run it."""
    import random

    from ..script import child

    os.setpgid(0, 0)  # done already; cheap, and the pid is now a version's
    marks_at, events_at = slots
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    if events_at < 0:  # a light child: no reporter waits for the event pipe
        events_at = event_fd
    else:
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
    generator = sys.modules.get("numpy.random")  # a warm parent imported it: fresh state, as an import gives
    if generator is not None:
        try:
            generator.seed()
        except Exception:  # noqa: BLE001 - a numpy without the legacy global generator
            pass
    argv = [*request["argv"], str(events_at)]
    sys.argv = ["-c", *argv]
    child.run_forked(argv)
    return 70  # not reached: run_forked leaves through os._exit


def _open_fds() -> List[int]:
    try:
        return sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        return list(range(3, 256))


_MARKS_AT: Optional[_Marks] = None


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
