"""Starting a child process, one way for every child mlpipeline starts (a version, the fork
server, a describe or a state probe, a search, a prediction): ``python -c CODE ARGS`` in a
session and process group of its own, its environment marked, stdin closed, unbuffered; ended
with its whole group and everything that carries its mark (``end``), warm or cold.

``Lines`` splits a child's JSON-lines stream into lines with a bounded buffer."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from .system import kill_marked, killpg, probe_mark

Mark = Tuple[str, str]  # (environment variable, value) that every process the child starts inherits
TAIL_BYTES = 64 << 10   # output kept of a child that reports through a file


class Child:
    """A started child: ``pid``, ``stdout`` (when piped), its ``mark``."""

    def __init__(self, proc: subprocess.Popen, mark: Optional[Mark]):
        self.proc, self.mark = proc, mark
        self.pid: int = proc.pid
        self.stdout = proc.stdout

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def poll(self) -> Optional[int]:
        return self.proc.poll()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """The exit code once it exits (None when ``timeout`` passes first)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int = signal.SIGKILL) -> None:
        """Signal its whole process group: SIGTERM asks (warm), SIGKILL ends (cold)."""
        killpg(self.pid, signum)

    def end(self, wait: float = 5.0, sweep: bool = True) -> None:
        """Kill its group, reap it, then end whatever it started outside the group (``setsid``,
        a daemon) by its mark, waiting up to ``wait`` s for them to go (``sweep=False``: the
        caller sweeps its mark later, with others, in one look at every process). Idempotent."""
        if self.proc.returncode is None:
            killpg(self.pid, signal.SIGKILL)  # not reaped yet: the group id is still its own
            self.proc.wait()
        if self.mark is not None and sweep:
            kill_marked(*self.mark, wait=wait)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def drain(self, deadline: float, stop: Callable[[], bool] = lambda: False,
              done: Callable[[], bool] = lambda: False) -> Tuple[bytes, bool]:
        """Read its (piped) output, keeping the last ``TAIL_BYTES``, until it closes, ``deadline``
        passes (then True: timed out), ``stop()`` says so, or it exited and ``done()`` (its result
        is there, though something it started still holds the pipe)."""
        assert self.proc.stdout is not None
        tail = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return tail, self.proc.poll() is None
                if stop():
                    return tail, False
                if selector.select(timeout=min(left, 0.2)):
                    data = os.read(self.proc.stdout.fileno(), 65536)
                    if not data:
                        return tail, False
                    tail = (tail + data)[-TAIL_BYTES:]
                elif self.proc.poll() is not None and done():
                    return tail, False


def spawn(code: str, args: Sequence[str], *, cwd: Optional[str], env: Optional[Mapping[str, Optional[str]]] = None,
          mark: Optional[Mark] = None, marked: bool = True, stdout: Any = subprocess.DEVNULL,
          stderr: Any = subprocess.STDOUT, pass_fds: Sequence[int] = ()) -> Child:
    """Start ``python -c code args`` (this interpreter). ``env`` adds to this process's
    environment (None: leave that variable out); ``mark`` (a fresh probe mark when None and ``marked``) goes into it, so
    ``Child.end`` finds everything the child starts, in its group or not."""
    if mark is None and marked:
        mark = probe_mark()
    full = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    if mark is not None:
        full[mark[0]] = mark[1]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr, pass_fds=tuple(pass_fds), start_new_session=True, cwd=cwd, env=full)
    return Child(proc, mark)


class LineTooLong(ValueError):
    """A line longer than the buffer's limit."""


class Lines:
    """A byte stream cut into lines; holds at most ``limit`` bytes of a line not yet ended
    (a bytearray: a long line arriving in pieces costs linear time)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._pending = bytearray()

    def feed(self, data: bytes) -> List[bytes]:
        """The lines ``data`` completes (ends stripped, blank ones left out)."""
        self._pending += data
        if b"\n" not in data:
            if len(self._pending) > self.limit:
                self.clear()
                raise LineTooLong(f"a line over {self.limit >> 20} MiB")
            return []
        cut = self._pending.rfind(b"\n")
        lines = bytes(self._pending[:cut]).split(b"\n")
        del self._pending[:cut + 1]
        return [line for line in lines if line.strip()]

    def clear(self) -> None:
        self._pending.clear()
