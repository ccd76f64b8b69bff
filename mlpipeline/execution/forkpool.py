"""The fork servers of one runner: the plain one, which has imported mlpipeline's child side and
forks every version and every describe child, and a few warm parents, one per set of third-party
modules a script imports (``ScriptInfo.imports``), which have imported those too and fork that
script's versions: a version then pays ``import torch`` (or optuna, or TensorFlow) once per
runner instead of once per version.

A warm parent starts in the background the first time a version asks for its imports, and that
version is forked by the plain server and imports them itself, beside it (two cores do both at
once); a later version waits for the parent rather than pay the same imports again. If the parent
failed, or its imports started a thread or CUDA (``ForkServer.unsafe``), versions are forked by the
plain server for good and import what they need themselves. A server that would
miss what was installed since it started is retired (the versions it forked finish) and started
afresh; so is the least recently used warm parent beyond ``warm`` of them. Servers are started in
the main thread only (``server``, ``prepare``); ``start`` (describe children) may be called from others.

``MLPIPELINE_FORKSERVER=0`` turns forking off (every child spawned); ``MLPIPELINE_WARM_IMPORTS=0``
only the warm parents.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Set, Tuple

from ..core.timings import timings
from ..proc.spawn import Child, Mark
from .forkserver import MARKS, ForkedProcess, ForkServer, ForkServerError
from .forkserver import enabled as forkserver_enabled

log = logging.getLogger(__name__)
Say = Callable[[str, int], None]


def warm_enabled() -> bool:
    return os.environ.get("MLPIPELINE_WARM_IMPORTS", "1").strip().lower() not in ("0", "false", "no", "off")


class ForkPool:
    """The plain fork server and the warm parents of one project folder (``cwd``)."""

    def __init__(self, cwd: Optional[str], warm: int = 2):
        self.cwd = cwd
        self.warm_limit = warm
        self.use_fork = forkserver_enabled()  # until the plain server fails: then spawn, for good
        self.plain: Optional[ForkServer] = None
        self._warm: OrderedDict[Tuple[str, ...], ForkServer] = OrderedDict()
        self._refused: Dict[Tuple[str, ...], str] = {}  # imports whose warm parent may not fork, and why
        self._paid: Set[Tuple[str, ...]] = set()  # imports a version paid for itself while its parent started
        self._retired: List[ForkServer] = []  # stale or evicted servers whose children still run
        self._lock = threading.Lock()  # the plain server's start: the loop and describe threads

    # -- for a version (the executor's loop) -------------------------------------------------------

    def server(self, imports: Tuple[str, ...], say: Say) -> Optional[ForkServer]:
        """The server to fork a version importing ``imports`` from: its warm parent when one is
        ready, else the plain server; None: spawn it."""
        plain = self._plain(say)
        if plain is None or not imports or not warm_enabled() or self.warm_limit <= 0:
            return plain
        key = tuple(imports)
        if key in self._refused:
            return plain
        warm = self._warm.get(key)
        if warm is not None and warm.alive and warm.stale() is not None:
            say(f"fork server for {', '.join(key)}: {warm.stale()}; a fresh one is started", logging.INFO)
            self._retire(self._warm.pop(key))
            warm = None
        if warm is None:
            self._start_warm(key, say)
            self._paid.add(key)  # this version imports them itself, beside the parent that does so once
            return plain
        state = warm.ready()
        if state is None and key in self._paid:  # a second version would pay again what is nearly done
            state = warm.wait_ready(timings().fork_start)
        if state is None:
            self._paid.add(key)
            return plain
        if not state:
            why = warm.unsafe or warm.failure or "it failed"
            self._refused[key] = why
            self._retire(self._warm.pop(key))
            say(f"fork server for {', '.join(key)}: not used ({why}); its versions import them themselves",
                logging.INFO)
            return plain
        self._warm.move_to_end(key)
        return warm

    def _start_warm(self, key: Tuple[str, ...], say: Say) -> None:
        while len(self._warm) >= self.warm_limit:
            _, oldest = self._warm.popitem(last=False)
            self._retire(oldest)
        try:
            self._warm[key] = ForkServer(self.cwd, preload=key, wait=False)
        except OSError as exc:
            self._refused[key] = str(exc)
            say(f"fork server for {', '.join(key)}: it did not start ({exc})", logging.INFO)

    def start_early(self) -> ForkPool:
        """Start the plain server now, without waiting for it: it imports while the runner sets up."""
        with self._lock:
            if self.use_fork and self.plain is None:
                try:
                    self.plain = ForkServer(self.cwd, wait=False)
                except OSError:
                    self.plain = None  # the first use tries again, and says why
        return self

    def _plain(self, say: Say) -> Optional[ForkServer]:
        """The plain server, started at the first use (None: spawn). One that would miss what was
        installed since it started is retired (its running children finish) and a fresh one started."""
        with self._lock:
            if self.use_fork and self.plain is not None and self.plain.ready() is None:
                self.plain.wait_ready(timings().fork_start)  # started early, still importing
            if self.use_fork and self.plain is not None and self.plain.ready() is False:
                self.give_up(self.plain.failure or "it did not start", say)
            if self.use_fork and self.plain is not None and self.plain.alive:
                why = self.plain.stale()
                if why is not None:
                    say(f"fork server: {why}; a fresh one forks the versions from now on", logging.INFO)
                    self._retire(self.plain)
                    self.plain = None
            if self.use_fork and self.plain is None:
                try:
                    self.plain = ForkServer(self.cwd)
                except OSError as exc:
                    self.give_up(f"it did not start ({exc})", say)
            return self.plain if self.use_fork else None

    def give_up(self, reason: str, say: Say) -> None:
        """The plain server failed: spawn every child from now on."""
        if self.use_fork:
            self.use_fork = False
            message = f"fork server: {reason}; versions are spawned from now on"
            log.warning(message)
            say(message, logging.WARNING)

    def failed(self, server: ForkServer, say: Say) -> None:
        """``server`` failed on a version (which was spawned instead)."""
        if server is self.plain:
            self.give_up(server.failure or "it failed", say)
        else:
            for key, warm in list(self._warm.items()):
                if warm is server:
                    self._refused[key] = server.failure or "it failed"
                    self._retire(self._warm.pop(key))

    # -- for a describe child (any thread) ---------------------------------------------------------

    def prepare(self) -> None:
        """In the main thread, before ``start`` is called from others: start (or renew) the plain
        server there. A server started from a thread would die when that thread ends (the kernel's
        parent-death signal follows the thread that forked it)."""
        self._plain(lambda message, level: log.log(level, "%s", message))

    def start(self, argv: List[str], mark: Mark, title: str) -> Optional[Child]:
        """Fork a child that runs ``mlpipeline.script.child`` with ``argv``, the server's pid (its
        parent, to die with) and an event fd it may ignore; its output piped, marked ``mark``.
        None: spawn it instead (no live plain server: ``prepare`` starts one). Any thread."""
        with self._lock:
            server = self.plain if self.use_fork else None
        return self._start(server, argv, mark, title, {}, None, None)

    def start_warm(self, argv: List[str], mark: Mark, title: str, imports: Tuple[str, ...], env: Dict[str, str],
                   out_fd: int, event_fd: int, say: Say) -> Optional[Child]:
        """``start`` from the main thread, for a long-lived child of a script (its search): from the
        warm parent for ``imports`` as a version would be, with ``env`` added, its output to
        ``out_fd`` and ``event_fd`` its own (the caller keeps both)."""
        return self._start(self.server(imports, say), argv, mark, title, env, out_fd, event_fd)

    def _start(self, server: Optional[ForkServer], argv: List[str], mark: Mark, title: str, extra: Dict[str, str],
               out_fd: Optional[int], event_fd: Optional[int]) -> Optional[Child]:
        if server is None or not server.alive:
            return None
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra, mark[0]: mark[1]}
        marks = {name: env[name] for name in MARKS if env.get(name)}
        if server.refusal(env, self.cwd, marks) is not None:
            return None
        out_r, out_w = os.pipe() if out_fd is None else (-1, out_fd)
        events = os.open(os.devnull, os.O_WRONLY) if event_fd is None else event_fd
        try:
            pid, pid_fd = server.fork([*argv, str(server.pid)], env, self.cwd, out_w, events, marks, title,
                                      light=True)
        except (ValueError, ForkServerError):
            if out_r >= 0:
                os.close(out_r)
            return None
        finally:
            if out_fd is None:
                os.close(out_w)
            if event_fd is None:
                os.close(events)
        if pid_fd is not None:
            os.close(pid_fd)
        proc = ForkedProcess(server, pid, os.fdopen(out_r, "rb", buffering=0) if out_r >= 0 else None)
        return Child(proc, mark)  # type: ignore[arg-type]

    # -- upkeep ------------------------------------------------------------------------------------

    def _retire(self, server: ForkServer) -> None:
        if server.alive and server.forked:
            self._retired.append(server)
        else:
            server.close()

    def tidy(self, in_use: List[ForkServer]) -> None:
        """Close the retired servers none of whose children still runs."""
        for server in list(self._retired):
            server.drain()
            if server not in in_use and not server.forked:
                self._retired.remove(server)
                server.close()

    def servers(self) -> List[ForkServer]:
        """Every live server (their sockets carry exit reports)."""
        found = [s for s in [self.plain, *self._warm.values(), *self._retired] if s is not None and s.alive]
        return found

    def close(self) -> None:
        """Stop every server (the children they forked are ended already)."""
        for server in [*self._retired, *self._warm.values(), *([self.plain] if self.plain is not None else [])]:
            server.close()
        self._retired, self._warm, self.plain = [], OrderedDict(), None
        self.use_fork = False


def early_pool(directory: Optional[str]) -> Optional[ForkPool]:
    """A pool whose plain server is starting already, for ``mlpipeline -r`` in ``directory``'s
    project (None where there is no project, or it runs on Ray: the batch says why, or spawns)."""
    from ..core.errors import MLPipelineError
    from ..plan.config import find_project

    if not forkserver_enabled():
        return None
    try:
        project = find_project(directory)
    except (MLPipelineError, OSError):
        return None
    if (project.backend or "local") in ("ray", "slurm"):  # versions run on the cluster's nodes
        return None
    return ForkPool(project.root).start_early()
