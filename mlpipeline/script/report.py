"""Where a model script's log lines and metrics go while it runs.

The runner installs a reporter before it calls a script's hooks: in-process it
hands events straight to the runner, in a child process it writes them to the
pipe the parent reads. Outside a runner (a script imported in a notebook) the
default reporter just prints, so the README-era helpers never fail.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional

from ..core.lifecycle import STEP_RANGE, MetricRow, metric_row, pack_rows


MAX_LOG_EVENT = 1 << 20  # characters of a log message sent to the runner
# a metrics event around its packed points (base64 needs no JSON escaping): the line json.dumps would write
METRICS_LINE = (b'{"type": "metrics", "packed": "', b'"}\n')


class Reporter:
    """Receives events from a running version. Subclasses route them."""

    def log(self, message: str, level: int = logging.INFO) -> None:
        echo(message, level)

    def metric(self, name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
        """Record one point; BadMetric (a ValueError) when it cannot be recorded, raised in the caller."""
        self.add(metric_row(name, value, step, split))

    def add(self, row: MetricRow) -> None:
        """A checked point: subclasses route it."""
        name, value, step, split = row
        step_text = "" if step is None else f" (step {step})"
        echo(f"{split}/{name}: {value if value is None else format(value, '.4f')}{step_text}")

    def output(self, record: Dict[str, Any]) -> None:
        """The version stored a value with ``save_output``; outside a runner nobody indexes it."""

    def data(self, fingerprint: str) -> None:
        """What the version's ``mlpipeline.data`` loaders read (``kind:sha256``), known before it trains."""

    def params(self, params: Dict[str, Any]) -> None:
        """Parameters the version adds to its record (``log_params``, a plain script's parsed arguments)."""


def echo(text: str, level: int = logging.INFO) -> None:
    """A line on the terminal (stderr for warnings): a closed stdout (`mlpipeline | head`) never fails a
    version over what mlpipeline prints for it."""
    stream = sys.stderr if level >= logging.WARNING else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):
        _silence(stream)


def _silence(stream: Any) -> None:
    """Point a stream whose reader went away at /dev/null, so later writes
    (ours and the script's own prints) go nowhere instead of failing."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):
        pass


class PythonPoints:
    """The waiting points of a version's child, in Python: ``point`` (what ``log_metric`` calls) appends the
    usual point — a float, a whole step or none, a name and split seen good before — as it is; any other goes
    through ``metric_row``, which converts it or raises BadMetric in the caller. ``catch_up()`` is called
    when ``most`` points wait. The C extension ``_points.Points`` does the same, faster; this one runs where
    it could not be built, or with ``MLPIPELINE_PURE_POINTS=1``.

    The rows are one list for the reporter's life: the main thread only appends, the flusher takes a prefix
    (``rows[:n]``, then ``del rows[:n]``, each one step under the GIL), so no point takes a lock."""

    def __init__(self, catch_up: Callable[[], None], most: int):
        rows: List[tuple] = []
        append = rows.append
        checked: set = set()
        low, high = STEP_RANGE
        dropped = False

        said = False

        def full() -> None:
            if dropped:
                rows.clear()
            else:
                catch_up()

        def point(name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
            if type(value) is float and (step is None or type(step) is int and low <= step <= high) \
                    and (name, split) in checked:
                append((name, value, step, split))
            elif dropped:
                nonlocal said
                if not said:
                    said = True
                    forked_note()
                return
            else:
                row = metric_row(name, value, step, split)
                if len(checked) < 10_000:
                    checked.add((row[0], row[3]))
                append(tuple(row))
            if len(rows) >= most:
                full()

        def drop() -> None:
            nonlocal dropped, most
            dropped, most = True, 1024
            rows.clear()

        self._rows = rows
        self.point = point
        self.drop = drop

    def _batch(self) -> List[tuple]:
        rows = self._rows
        count = len(rows)
        batch = rows[:count]
        del rows[:count]
        return batch

    def take(self) -> Optional[str]:
        """The waiting points packed (``pack_rows``), or None when none wait."""
        batch = self._batch()
        return pack_rows(batch) if batch else None

    def send(self, fd: int, prefix: bytes, suffix: bytes) -> int:
        """Write the waiting points, packed, between ``prefix`` and ``suffix`` to ``fd``; how many."""
        batch = self._batch()
        if batch:
            data = memoryview(prefix + pack_rows(batch).encode("ascii") + suffix)
            while data:
                data = data[os.write(fd, data):]
        return len(batch)

    def __len__(self) -> int:
        return len(self._rows)


def _points_in_c() -> Any:
    """The C point taker's module, or None where it was not built or ``MLPIPELINE_PURE_POINTS`` is set."""
    if os.environ.get("MLPIPELINE_PURE_POINTS", "") not in ("", "0"):
        return None
    try:
        from . import _points  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _points


class PipeReporter(Reporter):
    """Sends events as JSON lines over a pipe to the runner parent, and echoes
    log lines to stdout so they also appear in the captured output.

    Metrics are sent in batches by a thread of their own (every ``FLUSH_EVERY``
    seconds, and before any other event), packed as ``pack_rows`` packs them
    (plain tuples of str, float, int, None: the runner checks every row again as
    it unpacks), so a tight ``log_metric`` loop costs a check and an append and
    never waits for the runner to read the pipe — until ``MAX_BUFFERED`` points
    wait for a runner far behind. ``point`` (what ``log_metric`` calls) is the C
    point taker where it was built, else ``PythonPoints.point``; the C one also
    wakes the flusher when ``FLUSH_BYTES`` wait, so its buffers stay small and warm."""

    FLUSH_EVERY = 0.1
    MAX_BUFFERED = 1_000_000  # points waiting for a slow runner before the loop waits too (130 MB as tuples)
    FLUSH_BYTES = 1 << 20     # packed points (about 40 000) that go out at once

    def __init__(self, fd: int):
        import threading
        import weakref

        self._fd = fd
        self._file = os.fdopen(fd, "w", encoding="utf-8")  # flushed after each event: points go to the fd itself
        self._write_lock = threading.Lock()    # the pipe: metrics before the event that follows them
        self._wake = threading.Event()
        in_c = _points_in_c()
        if in_c is not None:
            self._points = in_c.Points(metric_row, self._catch_up, self.MAX_BUFFERED, *STEP_RANGE,
                                       wake=self._wake.set, wake_bytes=self.FLUSH_BYTES)
            self.point: Callable[..., None] = self._points
        else:
            self._points = PythonPoints(self._catch_up, self.MAX_BUFFERED)
            self.point = self._points.point
        self._closed = False
        self._broken = False
        self._flusher = threading.Thread(target=self._flush_now_and_then, daemon=True,
                                         name="mlpipeline-metrics")
        self._flusher.start()
        # A worker the version forks must not share the event pipe (or inherit a held lock): it prints, and
        # its points (a script holding this reporter's ``point``) go nowhere.
        mine = weakref.ref(self)

        def forked() -> None:  # (the module's _after_fork has made _Forked the child's reporter already)
            reporter = mine()
            if reporter is not None:
                reporter._points.drop()

        os.register_at_fork(after_in_child=forked)

    def metric(self, name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
        self.point(name, value, step, split)

    def add(self, row: MetricRow) -> None:
        self.point(*row)

    def _catch_up(self) -> None:
        """A runner far behind: the loop waits here while the buffer goes out."""
        if not self._broken:
            with self._write_lock:
                self._flush_rows()

    def _write(self, line: str) -> None:
        self._file.write(line)
        self._file.flush()

    def _flush_rows(self) -> None:
        """Send what is buffered (the caller holds ``_write_lock``)."""
        self._points.send(self._fd, *METRICS_LINE)

    def _flush_now_and_then(self) -> None:
        while not self._closed:
            self._wake.wait(self.FLUSH_EVERY)
            self._wake.clear()
            if len(self._points):
                with self._write_lock:
                    try:
                        self._flush_rows()
                    except (OSError, ValueError):
                        self._broken = True
                        return  # the parent is gone; the main thread will find out

    def send(self, event: str, **fields: Any) -> None:
        with self._write_lock:
            self._flush_rows()
            self._write(json.dumps({"type": event, **fields}, default=repr) + "\n")

    def close(self) -> None:
        """Send what is buffered and stop the flusher."""
        self._closed = True
        self._wake.set()
        self._flusher.join(timeout=60)
        with self._write_lock:
            self._flush_rows()

    def log(self, message: str, level: int = logging.INFO) -> None:
        super().log(message, level)
        text = str(message)
        if len(text) > MAX_LOG_EVENT:  # the whole line is in the run's output already
            text = f"{text[:MAX_LOG_EVENT]}... ({len(text) - MAX_LOG_EVENT} more characters in the run's output)"
        self.send("log", message=text, level=int(level))

    def output(self, record: Dict[str, Any]) -> None:
        self.send("output", record=record)

    def data(self, fingerprint: str) -> None:
        self.send("data", fingerprint=fingerprint)

    def params(self, params: Dict[str, Any]) -> None:
        self.send("params", params=params)


FORKED_NOTE = ("mlpipeline: log_metric in a process the version started is not recorded; log from the version's "
               "own process (send values back to it, e.g. through a multiprocessing Queue)")


def forked_note() -> None:
    try:
        print(f"{FORKED_NOTE} (pid {os.getpid()})", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class _Forked(Reporter):
    """The reporter of a process a version forked (a multiprocessing worker): it has no pipe to the runner.
    Its log lines print; its first point says, once, that points are not recorded from there."""

    said = False

    def add(self, row: MetricRow) -> None:
        if not self.said:
            self.said = True
            forked_note()


def _after_fork() -> None:
    """A process forked while a version runs (a multiprocessing worker, in a version's child or in the runner
    in test mode) must not send into the version's pipe or the runner's ledger: it gets ``_Forked``."""
    if type(_current) is not Reporter:
        install(_Forked())
        _default_signals()


def _default_signals() -> None:
    """In a worker a version forked: the signal handlers the runner set (in test mode the version runs in the
    runner's own process) become Python's defaults, as in a worker a plain ``python`` would fork; a handler the
    script set stays. (A pool ended with SIGTERM printed the runner's KeyboardInterrupt in each worker.)"""
    import signal

    for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_DFL),
                            (signal.SIGINT, signal.default_int_handler)):
        try:
            handler = signal.getsignal(signum)
            if callable(handler) and str(getattr(handler, "__module__", "")).startswith("mlpipeline"):
                signal.signal(signum, default)
        except (ValueError, OSError):  # not the main thread: leave them
            pass


os.register_at_fork(after_in_child=_after_fork)

_current: Reporter = Reporter()
_point: Optional[Callable[..., None]] = None  # where log_metric's points go: None where nobody takes them


def current() -> Reporter:
    return _current


def install(reporter: Reporter) -> Reporter:
    """Make ``reporter`` current; returns the previous one so callers can restore it."""
    global _current, _point
    previous, _current = _current, reporter
    _point = None if type(reporter) is Reporter else getattr(reporter, "point", reporter.metric)
    return previous


def own_point() -> Optional[Callable[..., None]]:
    """The point taker of a reporter that has this process to itself for the rest of its life (a version's
    child, whose ``PipeReporter`` is installed once, before the script runs), else None: what may be bound
    once where ``log_metric`` is imported."""
    return _point if isinstance(_current, PipeReporter) else None
