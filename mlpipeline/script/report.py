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
import time
from typing import Any, Dict, List, Optional

from ..core.lifecycle import MetricRow, metric_row


MAX_LOG_EVENT = 1 << 20  # characters of a log message sent to the runner


class Reporter:
    """Receives events from a running version. Subclasses route them."""

    def log(self, message: str, level: int = logging.INFO) -> None:
        stream = sys.stderr if level >= logging.WARNING else sys.stdout
        try:
            print(message, file=stream, flush=True)
        except (OSError, ValueError):  # a closed stdout (`mlpipeline | head`): never fail a version over it
            _silence(stream)

    def metric(self, name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
        """Record one point; BadMetric (a ValueError) when it cannot be recorded, raised in the caller."""
        self.add(metric_row(name, value, step, split))

    def add(self, row: MetricRow) -> None:
        """A checked point: subclasses route it."""
        name, value, step, split = row
        step_text = "" if step is None else f" (step {step})"
        print(f"{split}/{name}: {value if value is None else format(value, '.4f')}{step_text}", flush=True)

    def output(self, record: Dict[str, Any]) -> None:
        """The version stored a value with ``save_output``; outside a runner nobody indexes it."""

    def data(self, fingerprint: str) -> None:
        """What the version's ``mlpipeline.data`` loaders read (``kind:sha256``), known before it trains."""

    def params(self, params: Dict[str, Any]) -> None:
        """Parameters the version adds to its record (``log_params``, a plain script's parsed arguments)."""


def _silence(stream: Any) -> None:
    """Point a stream whose reader went away at /dev/null, so later writes
    (ours and the script's own prints) go nowhere instead of failing."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):
        pass


class PipeReporter(Reporter):
    """Sends events as JSON lines over a pipe to the runner parent, and echoes
    log lines to stdout so they also appear in the captured output.

    Metrics are sent in batches by a thread of their own (every ``FLUSH_ROWS``
    points or ``FLUSH_EVERY`` seconds, and before any other event), so a tight
    ``log_metric`` loop costs a list append and never waits for the runner to
    read the pipe."""

    FLUSH_ROWS = 2000
    FLUSH_EVERY = 0.1
    MAX_BUFFERED = 1_000_000  # points waiting for a slow runner before the loop waits too

    def __init__(self, fd: int):
        import threading

        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()          # the buffer (held for an append or a swap only)
        self._write_lock = threading.Lock()    # the pipe: metrics before the event that follows them
        self._rows: List[MetricRow] = []
        self._sent_at = time.monotonic()
        self._wake = threading.Event()
        self._closed = False
        self._broken = False
        self._flusher = threading.Thread(target=self._flush_now_and_then, daemon=True,
                                         name="mlpipeline-metrics")
        self._flusher.start()
        # A worker the version forks must not share the event pipe (or inherit a held lock): it prints.
        os.register_at_fork(after_in_child=lambda: install(Reporter()))

    def _write(self, line: str) -> None:
        self._file.write(line)
        self._file.flush()

    def _flush_rows(self) -> None:
        """Send what is buffered (the caller holds ``_write_lock``)."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._sent_at = time.monotonic()
        if rows:
            self._write(json.dumps({"type": "metrics", "rows": rows}) + "\n")

    def _flush_now_and_then(self) -> None:
        while not self._closed:
            self._wake.wait(self.FLUSH_EVERY)
            self._wake.clear()
            if self._rows:
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

    def add(self, row: MetricRow) -> None:
        with self._lock:
            self._rows.append(row)
            count = len(self._rows)
        if count >= self.FLUSH_ROWS:
            self._wake.set()
            if count >= self.MAX_BUFFERED and not self._broken:  # a runner far behind: wait for it here
                with self._write_lock:
                    self._flush_rows()


_current: Reporter = Reporter()


def current() -> Reporter:
    return _current


def install(reporter: Reporter) -> Reporter:
    """Make ``reporter`` current; returns the previous one so callers can restore it."""
    global _current
    previous, _current = _current, reporter
    return previous
