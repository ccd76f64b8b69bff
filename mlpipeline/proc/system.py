"""Local processes: is one alive, who is it, how it ends with its parent, and cleaning up
after a runner that died (the markers every process a version or a probe starts inherits)."""
from __future__ import annotations

import contextlib
import os
import sys
import signal
import threading
import time
from typing import Any, Iterator, List, Optional, Sequence, Tuple

F_SETPIPE_SZ = 1031      # fcntl: a pipe's buffer size (Linux)
PR_SET_PDEATHSIG = 1     # prctl: the signal this process gets when its parent dies (Linux)


def pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:  # a zombie has exited
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc: trust kill(0)


@contextlib.contextmanager
def working_dir(path: Optional[str]) -> Iterator[None]:
    """Run a block in ``path`` (the project root), as a version's child process
    would, and come back: in-process versions see the same current folder as
    isolated ones, and the runner's own current folder is left as it was after."""
    if not path or os.path.abspath(path) == os.getcwd():
        yield
        return
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def process_start(pid: Optional[int] = None) -> Optional[int]:
    """When process ``pid`` (default: this one) started, in clock ticks since
    boot: with the pid, an identity that a reused pid does not share."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


# Environment markers every process a version starts inherits (see ``marked``).
MARK_RUN, MARK_VERSION, MARK_PROJECT = "MLPIPELINE_RUN", "MLPIPELINE_VERSION_MARK", "MLPIPELINE_PROJECT"


def marked(name: str, value: str) -> List[int]:
    """Live processes (not this one) whose environment holds ``name=value``.

    Every process a version starts inherits the markers its child process was
    given, whether it stays in the version's process group or leaves it
    (``setsid``, a daemonising helper), so the markers find them all."""
    return marked_any([(name, value)])


def marked_any(marks: Sequence[Tuple[str, str]]) -> List[int]:
    """Live processes (not this one) holding any of ``marks`` (name, value): one
    pass over /proc for them all (a pass reads every process's environment)."""
    needles = [f"{name}={value}".encode() + b"\0" for name, value in marks]
    if not needles:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read() + b"\0"
        except OSError:
            continue
        if any(needle in environ for needle in needles) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def kill_marked(name: str, value: str, wait: float = 5.0) -> List[int]:
    """SIGKILL every process marked ``name=value`` (and its process group) and
    wait, up to ``wait`` seconds, until they are gone. Returns their pids."""
    return kill_marked_any([(name, value)], wait)


def kill_marked_any(marks: Sequence[Tuple[str, str]], wait: float = 5.0) -> List[int]:
    """``kill_marked`` for several marks at once."""
    pids = marked_any(marks)
    for pid in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + wait
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [pid for pid in alive if pid_alive(pid)]
    return pids


def probe_mark() -> Tuple[str, str]:
    """A fresh marker for a short-lived child that loads user code (a describe, a script check, a
    search): every process the script starts at import inherits it, setsid'd or not, so
    ``kill_marked(*mark)`` ends them all with the child."""
    import uuid

    return MARK_RUN, f"probe-{uuid.uuid4().hex[:16]}"


class VersionTimeout(BaseException):
    """Raised inside an in-process version when its time is up (a BaseException,
    so a script's ``except Exception`` cannot swallow it)."""


class Alarm:
    """Raise ``VersionTimeout`` in the main thread after ``seconds`` (no-op
    without a timeout or off the main thread)."""

    def __init__(self, seconds: Optional[float]):
        self.seconds = seconds
        self._previous: Any = None
        self._armed = False

    def _fire(self, signum: int, frame: Any) -> None:
        raise VersionTimeout(f"timed out after {self.seconds:g} s")

    def __enter__(self) -> Alarm:
        if self.seconds and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self._armed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


def hostname() -> str:
    """This machine's name, as runs record it."""
    import socket

    return socket.gethostname() or "localhost"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def killpg(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal the process group ``pid`` leads (gone already: nothing to do)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def roomy_pipe(fd: int, size: int = 1 << 20) -> None:
    """A larger pipe buffer, where Linux allows it: bursts arrive in fewer, larger reads."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:
        pass


def die_with_parent(parent: int) -> None:
    """In a child: let the kernel kill this process when ``parent`` dies (PR_SET_PDEATHSIG),
    even while it holds the GIL in C code; leave at once if it is gone already."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watch thread of watch_parent is all there is
    if os.getppid() != parent:  # it died before the line above
        os._exit(137)


def _leave_with_parent(parent: int, every: float) -> None:
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            try:
                os.killpg(0, signal.SIGKILL)  # this process's whole group
            finally:
                os._exit(137)


_watching: Tuple[int, int] = (0, 0)  # (this process, the parent it watches): once per process


def watch_parent(parent: int, every: float = 1.0) -> None:
    """In a child: die with ``parent`` — ``die_with_parent``, and a thread that takes the
    process group along where the kernel cannot (a SIGKILLed parent on another platform)."""
    global _watching
    if _watching == (os.getpid(), parent):
        return
    die_with_parent(parent)
    threading.Thread(target=_leave_with_parent, args=(parent, every), daemon=True,
                     name="mlpipeline-parent-watch").start()
    _watching = (os.getpid(), parent)


def project_mark(root: Optional[str]) -> str:
    """The mark every process of this project's runner carries (its root's path, hashed)."""
    import hashlib

    return hashlib.sha256(os.path.abspath(root or os.getcwd()).encode()).hexdigest()[:16]


def leave_now(code: int) -> None:
    """Exit now, threads or not: atexit handlers first, then the streams (not the interpreter's
    teardown of every module, which a child about to vanish does not need)."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
