"""Learning a script's versions without importing it in the runner.

Loading a model script runs user code (a framework import, data loading, a
blocking call), so the runner never does it on its loop: ``Describer`` loads
each script in a short-lived child process, in a background thread, under a
time limit, and the loop asks ``lookup(path)``, which answers at once: the
description, or None while the child works. ``close()`` kills those children,
so Ctrl+C never waits for an import.

Descriptions are cached under the script's content (and path). An entry holds
the files the script read while loading, each with its sha256, and stays valid
while they are unchanged: touching one script re-describes only the scripts
that read it. A script that fails to load is cached like one that loads; only
a hang or a crash (which may not happen again) is kept in memory alone, so the
next runner tries it again.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Set, Tuple

from ..core.timings import timings
from ..core.layout import PACKAGE_PARENT
from ..core.errors import ScriptError
from ..proc.spawn import Child, Mark, spawn
from ..proc.system import Alarm, VersionTimeout, kill_marked_any, probe_mark, signal_name, working_dir
from ..script.describing import CHILD_MAIN, Described, cache_key, describe_entry
from ..script.loading import display, file_sha256

log = logging.getLogger(__name__)


class Fork(Protocol):
    """What forks describe children (``execution.forkpool.ForkPool``)."""

    def prepare(self) -> None:
        """Called in the caller's thread before describes start: set up what ``start`` needs."""

    def start(self, argv: List[str], mark: Mark, title: str) -> Optional[Child]:
        """Called from a describe thread: the forked child, or None (then it is spawned)."""


def _transient(described: Described) -> bool:
    return described.error is not None and getattr(described.error, "transient", False)


@dataclass
class DescribeResult:
    path: str
    key: str
    described: Described
    persist: bool  # False for a hang or a crash: retried by the next runner


class Describer:
    """Describes scripts in short-lived child processes, off the caller's loop,
    under a time limit, cached by content and by the files each one read.

    ``cache_get``/``cache_put`` (e.g. the ledger's script cache) are called only
    from the caller's thread, in ``lookup`` and ``poll``. ``spawns`` counts the
    children started.
    """

    def __init__(self, cwd: str, cache_get: Callable[[str], Optional[dict]], cache_put: Callable[[str, dict], None],
                 timeout: float = 120.0, in_process: bool = False, max_parallel: int = 2, load: bool = True,
                 fork: Optional[Fork] = None):
        self.cwd = cwd
        self.fork = fork  # forks a describe child (None from it, or no fork: spawn one)
        self.cache_get, self.cache_put = cache_get, cache_put
        self.timeout = timeout
        self.in_process = in_process
        self.load = load  # False: serve what is cached, load nothing (a preview of the queue)
        self.max_parallel = max(1, max_parallel)
        self.spawns = 0
        self._memo: Dict[str, Tuple[str, Described]] = {}       # path -> (cache key, description)
        self._transient_at: Dict[str, float] = {}              # path -> when a machine-dependent failure was seen
        self._hashes: Dict[str, Tuple[Tuple[int, int, int], str]] = {}  # path -> (stat key, sha256)
        self._lock = threading.RLock()  # close() may run in a signal handler on a thread that holds it
        self._todo: Deque[Tuple[str, str]] = deque()             # (path, sha256 seen when asked)
        self._pending: Set[str] = set()                           # started, not yet handed over by poll()
        self._finished: List[DescribeResult] = []
        self._done = threading.Event()                            # set while _finished holds something
        self._running: Dict[int, Child] = {}                      # pid -> describe child
        self._unswept: List[Mark] = []                            # marks of ended children, not yet swept
        self._swept_at = time.monotonic()
        self._workers: List[threading.Thread] = []
        self._active = 0                                          # workers not yet past their last look at _todo
        self._closed = False

    # -- the caller's side -----------------------------------------------------------------------------------

    def lookup(self, path: str) -> Optional[Described]:
        """The description of ``path`` if one is known and still valid, else
        None while a background describe runs (started here if needed). With
        ``in_process`` it loads the script here and now instead. Raises OSError
        when the script cannot be read."""
        path = os.path.abspath(path)
        sha = self._sha(path)
        if sha is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        key = cache_key(path, sha)
        known = self._memo.get(path)
        if known is not None and known[0] == key and self._valid(known[1].deps) and not self._expired(path):
            return known[1]
        entry = self.cache_get(key)
        if entry is not None and self._valid(entry.get("deps") or []):
            try:
                described = Described.from_entry(entry)
            except (KeyError, TypeError, ValueError):  # an entry from another version of mlpipeline
                described = None
            if described is not None:
                self._memo[path] = (key, described)
                return described
        if not self.load:
            return None
        if self.in_process:
            try:  # where a child would load it (the project root), under the same time limit
                with working_dir(self.cwd), Alarm(self.timeout):
                    entry = describe_entry(path)
            except VersionTimeout:
                described = Described(error=ScriptError(
                    f"{display(path)}: loading it took longer than {self.timeout:g} s (a blocking import?); "
                    f"it is skipped"))
                self._memo[path] = (key, described)  # not cached: the next session tries again
                return described
            key = cache_key(path, entry.pop("sha256") or sha)
            described = Described.from_entry(entry)
            if not _transient(described):
                self.cache_put(key, entry)
            self._remember(path, key, described)
            return described
        self._start(path, sha)
        return None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a background describe to finish (``poll`` takes it);
        whether one did. The caller's loop wakes when there is something to plan, not on a timer."""
        with self._lock:
            if self._finished:
                return True
            if not self._pending:
                return False
        return self._done.wait(timeout)

    def poll(self) -> List[str]:
        """Paths whose background describe finished since the last call; their
        results are then served by ``lookup``. Stores them in the cache."""
        with self._lock:
            self._done.clear()
            finished, self._finished = self._finished, []
            for done in finished:
                self._pending.discard(done.path)
        for done in finished:
            self._remember(done.path, done.key, done.described)
        for done in finished:
            if done.persist and not _transient(done.described):
                self.cache_put(done.key, done.described.to_entry())
        return [done.path for done in finished]

    def _remember(self, path: str, key: str, described: Described) -> None:
        self._memo[path] = (key, described)
        if _transient(described):
            self._transient_at[path] = time.monotonic()
        else:
            self._transient_at.pop(path, None)

    def _expired(self, path: str) -> bool:
        """A failure that depends on the machine (a module or data file not
        there yet) is tried again after ``timings().transient`` seconds, or at once
        after ``forget_transient``."""
        at = self._transient_at.get(path)
        return at is not None and time.monotonic() - at > timings().transient

    def forget_transient(self) -> None:
        """Files changed (a watcher event): load the scripts that failed on a
        missing module or file again."""
        for path in list(self._transient_at):
            self._memo.pop(path, None)
        self._transient_at.clear()

    def pending(self) -> List[str]:
        """Paths being described, waiting for a free child, or done but not yet polled."""
        with self._lock:
            return sorted(self._pending)

    def close(self) -> None:
        """Kill every describe child still running and end the threads. Idempotent;
        afterwards ``lookup`` serves only what is known."""
        with self._lock:
            self._closed = True
            self._todo.clear()
            running = list(self._running.values())
            workers = list(self._workers)
        for child in running:
            child.signal()
        for worker in workers:
            worker.join()
        self._sweep(now=True)

    def _sweep(self, now: bool = False) -> None:
        """End what finished describe children started outside their group (a daemon the import
        started), by their marks: one look at every process for them all, once no describe runs
        or waits (or a second after the last look), and at ``close``."""
        with self._lock:
            idle = not self._running and not self._todo
            if not self._unswept or not (now or idle or time.monotonic() - self._swept_at > 1.0):
                return
            marks, self._unswept = self._unswept, []
            self._swept_at = time.monotonic()
        kill_marked_any(marks)

    def describe_now(self, path: str) -> Described:
        """Describe ``path`` in a child here and now, bypassing the cache (the
        dashboard's check of an uploaded script). Blocks up to ``timeout``."""
        path = os.path.abspath(path)
        done = self._describe(path, self._sha(path) or "")
        if done is None:
            return Described(error=ScriptError(f"{display(path)}: describing it was cut off (shutting down)"))
        return done.described

    def __enter__(self) -> Describer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _sha(self, path: str) -> Optional[str]:
        """A file's sha256, hashed again only when its mtime, size or inode
        changed; None when it is gone."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        known = self._hashes.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            sha = file_sha256(path)
        except OSError:
            return None
        self._hashes[path] = (stamp, sha)
        return sha

    def _valid(self, deps: List[List[str]]) -> bool:
        return all(self._sha(dep) == sha for dep, sha in deps)

    def _start(self, path: str, sha: str) -> None:
        with self._lock:
            if self._closed or path in self._pending:
                return
        if self.fork is not None:
            self.fork.prepare()
        with self._lock:
            if self._closed or path in self._pending:
                return
            self._pending.add(path)
            self._todo.append((path, sha))
            self._workers = [w for w in self._workers if w.is_alive()]
            if self._active < self.max_parallel:
                worker = threading.Thread(target=self._work, name="mlpipeline-describe", daemon=True)
                self._workers.append(worker)
                self._active += 1
                worker.start()

    # -- the background side ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._closed or not self._todo:
                    self._active -= 1
                    return
                path, sha = self._todo.popleft()
            try:
                done = self._describe(path, sha)
            except Exception as exc:  # noqa: BLE001 - e.g. no fork possible; report it as this script's error
                log.exception("%s: describing it failed", path)
                done = DescribeResult(path, cache_key(path, sha), Described(error=ScriptError(
                    f"{display(path)}: could not start a process to load it: {exc}")), persist=False)
            with self._lock:
                if done is not None and not self._closed:
                    self._finished.append(done)  # still pending until poll() hands it over
                    self._done.set()
                else:
                    self._pending.discard(path)

    def _describe(self, path: str, sha: str) -> Optional[DescribeResult]:
        """Run one describe child to its end; None when ``close()`` cut it off."""
        with tempfile.TemporaryDirectory(prefix="mlp-describe-") as folder:
            return self._run_child(path, sha, os.path.join(folder, "entry.json"))

    def _run_child(self, path: str, sha: str, result: str) -> Optional[DescribeResult]:
        if self._closed:
            return None
        mark = probe_mark()
        child = self.fork.start(["describe", path, result], mark, f"mlpipeline describe {display(path)}") \
            if self.fork is not None else None
        if child is None:
            child = spawn(CHILD_MAIN, [path, result, str(os.getpid()), PACKAGE_PARENT], cwd=self.cwd, mark=mark,
                          stdout=subprocess.PIPE)
        with self._lock:
            self._running[child.pid] = child
            self.spawns += 1
            closed = self._closed
        try:
            if closed:  # close() ran while it started and did not see it
                tail, timed_out = b"", False
            else:
                tail, timed_out = child.drain(time.monotonic() + self.timeout, stop=lambda: self._closed,
                                              done=lambda: os.path.exists(result))
        finally:
            child.end(sweep=False)  # its group now; what the import started outside it (setsid): _sweep
            with self._lock:
                self._running.pop(child.pid, None)
                if child.mark is not None:
                    self._unswept.append(child.mark)
            self._sweep()
        if self._closed:
            return None
        name = display(path)
        if os.path.exists(result):
            with open(result) as handle:
                entry = json.load(handle)
            return DescribeResult(path, cache_key(path, entry.pop("sha256") or sha), Described.from_entry(entry), True)
        if timed_out:
            error = ScriptError(f"{name}: loading it took longer than {self.timeout:g} s (a blocking import?); "
                                f"it is skipped")
        else:
            code = child.returncode if child.returncode is not None else -9
            how = (f"was killed by {signal_name(-code)}" if code < 0 else f"exited with code {code}")
            last = tail.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
            error = ScriptError(f"{name}: loading it {how} before reporting its versions; its last output: "
                                f"{last[0].strip()}", details=tail.decode("utf-8", "replace"))
        return DescribeResult(path, cache_key(path, sha), Described(error=error), persist=False)
