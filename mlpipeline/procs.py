"""Local processes: is one alive, who is it, and cleaning up after a runner that died."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any, Iterator, List, Optional, Sequence, Tuple

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
MARK_RUN, MARK_VERSION, MARK_PROJECT = "MLPIPELINE_RUN", "MLPIPELINE_VERSION", "MLPIPELINE_PROJECT"


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
