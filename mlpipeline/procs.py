"""Local processes: is one alive, who is it, and cleaning up after a runner that died."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Iterable, Iterator, List, Optional

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


def kill_orphans(pids: Iterable[int], wait: float = 5.0) -> None:
    """Kill the process groups of children a dead runner left behind (they
    would otherwise train on for up to a second, into the same model dirs)."""
    mine: List[int] = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"mlpipeline.child" not in handle.read():
                    continue  # the pid was reused by something else
            os.killpg(pid, signal.SIGKILL)
            mine.append(pid)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while mine and time.monotonic() < deadline:
        mine = [pid for pid in mine if pid_alive(pid)]
        time.sleep(0.01)
