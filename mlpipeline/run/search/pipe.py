"""A search's child process (``script.search_child``) and its two pipes, seen from the runner:
requests go out without ever blocking the runner, replies come back as JSON lines."""
from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ...proc.spawn import Child, Lines, LineTooLong, Mark, spawn
from ...proc.system import probe_mark, roomy_pipe
from ...script.search_child import CHILD_MAIN

MAX_REPLY = 64 << 20  # bytes of one reply line


class Fork(Protocol):
    """What forks a search's child (``execution.forkpool.ForkPool``)."""

    def start_warm(self, argv: List[str], mark: Mark, title: str, imports: Tuple[str, ...], env: Dict[str, str],
                   out_fd: int, event_fd: int, say: Callable[[str, int], None]) -> Optional[Child]: ...


class SearchProcess:
    """A search child and its pipes; never blocks the runner on a write."""

    def __init__(self, script: str, cwd: str, env: Dict[str, str], fork: Optional[Fork] = None,
                 imports: Tuple[str, ...] = ()):
        try:
            stdout: Any = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            stdout = None
        self._sock: Optional[socket.socket] = None
        forked = self._fork(fork, script, env, stdout, imports) if fork is not None and stdout is not None else None
        if forked is not None:
            self.child = forked
        else:
            request_read, self._request = os.pipe()
            self._reply, reply_write = os.pipe()
            for fd in (self._request, self._reply):
                roomy_pipe(fd)  # the first history arrives in one write
            try:
                self.child = spawn(CHILD_MAIN, [script, str(request_read), str(reply_write), str(os.getpid())],
                                   cwd=cwd, env=env, stdout=stdout, stderr=stdout, pass_fds=(request_read, reply_write))
            finally:
                os.close(request_read)
                os.close(reply_write)
        self.proc = self.child.proc
        os.set_blocking(self._request, False)
        os.set_blocking(self._reply, False)
        self._out = bytearray()
        self._lines = Lines(MAX_REPLY)
        self._ready: List[bytes] = []
        self.closed = False

    def _fork(self, fork: Fork, script: str, env: Dict[str, str], stdout: int,
              imports: Tuple[str, ...]) -> Optional[Child]:
        """The child forked (from the warm parent for the script's imports, as its versions are), its
        requests and replies on one socket; None: spawn it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for end in (ours, theirs):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)  # the first history in one write
        try:
            child = fork.start_warm(["search", script], probe_mark(), f"mlpipeline search {script}", imports, env,
                                    stdout, theirs.fileno(), lambda message, level: None)
        finally:
            theirs.close()
        if child is None:
            ours.close()
            return None
        self._sock = ours
        self._request = self._reply = ours.fileno()
        return child

    def send(self, message: Dict[str, Any]) -> None:
        self._out += json.dumps(message).encode() + b"\n"
        self.flush()

    def flush(self) -> None:
        while self._out and not self.closed:
            try:
                written = os.write(self._request, self._out)
            except BlockingIOError:
                return
            except OSError:  # the child is gone: its replies (or their absence) say so
                self._out.clear()
                return
            del self._out[:written]

    def replies(self, wait: float = 0.0) -> List[Dict[str, Any]]:
        """The replies that have arrived, waiting up to ``wait`` seconds for the first."""
        self.flush()
        if wait > 0 and not self._ready:
            with selectors.DefaultSelector() as selector:
                selector.register(self._reply, selectors.EVENT_READ)
                selector.select(wait)
        while True:
            try:
                data = os.read(self._reply, 1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                break
            try:
                self._ready += self._lines.feed(data)
            except LineTooLong:
                pass  # a reply nobody can use: its question goes unanswered, and times out
        lines, self._ready = self._ready, []
        found = []
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                found.append(message)
        return found

    def alive(self) -> bool:
        return self.child.poll() is None

    def close(self, grace: float = 0.0) -> None:
        """End the child; with ``grace``, it first gets that long to act on what it was sent
        (an adapter telling its study the last results) and leave on its own."""
        if self.closed:
            return
        if grace > 0 and self.alive():
            deadline = time.monotonic() + grace
            while self._out and time.monotonic() < deadline:
                self.flush()
                time.sleep(0.01)
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_WR)  # end of input: the child's loop ends and it exits
            else:
                os.close(self._request)
                self._request = -1
            self.child.wait(max(0.0, deadline - time.monotonic()))
        self.closed = True
        self.child.end(wait=1.0)  # its group, and what the script started at import (setsid)
        if self._sock is not None:
            self._sock.close()
            return
        for fd in (self._request, self._reply):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
