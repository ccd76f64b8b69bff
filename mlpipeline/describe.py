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

import hashlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from .errors import ScriptError
from .procs import Alarm, VersionTimeout, kill_marked, probe_mark, working_dir
from .scripts import Reads, ScriptInfo, display, file_sha256, load_script

log = logging.getLogger(__name__)

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The child: found even where mlpipeline is not installed (appended, so it never shadows a user module).
# The first sys.path entry (the project root, the child's current folder) goes: a json.py or mlpipeline.py there
# must not shadow the standard library or mlpipeline.
CHILD_MAIN = ("import sys; del sys.path[0]; sys.path.append(sys.argv.pop()); "
              "from mlpipeline.describe import describe_main; sys.exit(describe_main(sys.argv[1:]))")
_TAIL_BYTES = 8192


@dataclass
class Described:
    """A script's description: ``info`` when it loads, else ``error``."""

    info: Optional[ScriptInfo] = None
    error: Optional[ScriptError] = None
    deps: List[List[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.info is not None

    def to_entry(self) -> Dict[str, Any]:
        """The JSON-able cache entry."""
        error = [str(self.error), self.error.details, self.error.transient] if self.error is not None else None
        return {"info": self.info.to_json() if self.info else None, "error": error, "deps": self.deps}

    @classmethod
    def from_entry(cls, entry: Dict[str, Any]) -> Described:
        info = ScriptInfo.from_json(entry["info"]) if entry.get("info") else None
        error = ScriptError(*entry["error"][:3]) if entry.get("error") else None
        if info is None and error is None:
            raise ValueError("a description entry holds neither info nor error")
        return cls(info, error, [list(d) for d in entry.get("deps") or []])


TRANSIENT_FOR = 30.0  # seconds a failure on a missing module or file is remembered (this session only)


def _transient(described: Described) -> bool:
    return described.error is not None and getattr(described.error, "transient", False)


def cache_key(path: str, sha256: str) -> str:
    """Where a description is cached: the script's content and its path (the
    same text elsewhere imports other modules, and its errors name it)."""
    return hashlib.sha256(f"{os.path.abspath(path)}\0{sha256}".encode()).hexdigest()


def describe_entry(path: str) -> Dict[str, Any]:
    """Load ``path`` in this process and return its cache entry (never raises
    for a broken script: the error is the entry). ``sha256`` says which content
    was loaded."""
    path = os.path.abspath(path)
    try:
        sha = file_sha256(path)
    except OSError:
        sha = ""
    reads = Reads(path)
    try:
        _, _, info = load_script(path, reads)
        return {"sha256": info.sha256, **Described(info, None, info.deps).to_entry()}
    except ScriptError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - user code in a check (a property, a __repr__) failed
        error = ScriptError(f"{display(path)}: {type(exc).__name__} while checking MODEL: {exc}; fix the script",
                            details=_traceback(exc))
    return {"sha256": sha, **Described(None, error, reads.deps).to_entry()}


def _traceback(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _exit_with_parent(parent: int) -> None:
    """Leave when the runner that started us is gone (it was SIGKILLed)."""
    while True:
        if os.getppid() != parent:
            try:
                os.killpg(0, signal.SIGKILL)
            finally:
                os._exit(137)
        time.sleep(0.5)


def describe_main(argv: List[str]) -> int:
    """Child entry: ``SCRIPT RESULT_FILE PARENT_PID``. Writes the cache entry as
    JSON to RESULT_FILE (stdout is the script's own) and exits 0 once written."""
    path, result, parent = argv[0], argv[1], int(argv[2])
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    entry = describe_entry(path)
    partial = result + ".part"
    with open(partial, "w") as handle:
        json.dump(entry, handle)
    os.replace(partial, result)
    return 0


@dataclass
class _Finished:
    path: str
    key: str
    described: Described
    persist: bool  # False for a hang or a crash: retried by the next runner


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Describer:
    """Describes scripts in short-lived child processes, off the caller's loop,
    under a time limit, cached by content and by the files each one read.

    ``cache_get``/``cache_put`` (e.g. the ledger's script cache) are called only
    from the caller's thread, in ``lookup`` and ``poll``. ``spawns`` counts the
    children started.
    """

    def __init__(self, cwd: str, cache_get: Callable[[str], Optional[dict]], cache_put: Callable[[str, dict], None],
                 timeout: float = 120.0, in_process: bool = False, max_parallel: int = 2, load: bool = True):
        self.cwd = cwd
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
        self._finished: List[_Finished] = []
        self._running: Dict[int, subprocess.Popen] = {}           # pid -> describe child
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

    def poll(self) -> List[str]:
        """Paths whose background describe finished since the last call; their
        results are then served by ``lookup``. Stores them in the cache."""
        with self._lock:
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
        there yet) is tried again after ``TRANSIENT_FOR`` seconds, or at once
        after ``forget_transient``."""
        at = self._transient_at.get(path)
        return at is not None and time.monotonic() - at > TRANSIENT_FOR

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
            running = list(self._running)
            workers = list(self._workers)
        for pid in running:
            _killpg(pid)
        for worker in workers:
            worker.join()

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
                done = _Finished(path, cache_key(path, sha), Described(error=ScriptError(
                    f"{display(path)}: could not start a process to load it: {exc}")), persist=False)
            with self._lock:
                if done is not None and not self._closed:
                    self._finished.append(done)  # still pending until poll() hands it over
                else:
                    self._pending.discard(path)

    def _describe(self, path: str, sha: str) -> Optional[_Finished]:
        """Run one describe child to its end; None when ``close()`` cut it off."""
        with tempfile.TemporaryDirectory(prefix="mlp-describe-") as folder:
            return self._run_child(path, sha, os.path.join(folder, "entry.json"))

    def _run_child(self, path: str, sha: str, result: str) -> Optional[_Finished]:
        if self._closed:
            return None
        mark = probe_mark()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_MAIN, path, result, str(os.getpid()), _PACKAGE_PARENT],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", mark[0]: mark[1]})
        with self._lock:
            self._running[proc.pid] = proc
            self.spawns += 1
            closed = self._closed
        try:
            if closed:  # close() ran while it started and did not see it
                tail, timed_out = b"", False
            else:
                tail, timed_out = self._drain(proc, result, time.monotonic() + self.timeout)
            _killpg(proc.pid)  # whatever the import started dies with the load,
            proc.wait()
            kill_marked(*mark)  # in its group or not (setsid)
        finally:
            with self._lock:
                self._running.pop(proc.pid, None)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._closed:
            return None
        name = display(path)
        if os.path.exists(result):
            with open(result) as handle:
                entry = json.load(handle)
            return _Finished(path, cache_key(path, entry.pop("sha256") or sha), Described.from_entry(entry), True)
        if timed_out:
            error = ScriptError(f"{name}: loading it took longer than {self.timeout:g} s (a blocking import?); "
                                f"it is skipped")
        else:
            code = proc.returncode
            how = (f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}")
            last = tail.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
            error = ScriptError(f"{name}: loading it {how} before reporting its versions; its last output: "
                                f"{last[0].strip()}", details=tail.decode("utf-8", "replace"))
        return _Finished(path, cache_key(path, sha), Described(error=error), persist=False)

    def _drain(self, proc: subprocess.Popen, result: str, deadline: float) -> Tuple[bytes, bool]:
        """Read the child's output (keeping its tail) until it closes, the time
        limit passes (True) or ``close()`` is called."""
        assert proc.stdout is not None
        tail = b""
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return tail, proc.poll() is None
                if self._closed:
                    return tail, False
                if selector.select(timeout=min(left, 0.2)):
                    data = os.read(proc.stdout.fileno(), 65536)
                    if not data:
                        return tail, False
                    tail = (tail + data)[-_TAIL_BYTES:]
                elif proc.poll() is not None and os.path.exists(result):
                    return tail, False  # done; something it started still holds the pipe


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
