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
from typing import Any, Optional


class Reporter:
    """Receives events from a running version. Subclasses route them."""

    def log(self, message: str, level: int = logging.INFO) -> None:
        stream = sys.stderr if level >= logging.WARNING else sys.stdout
        print(message, file=stream, flush=True)

    def metric(self, name: str, value: float, step: Optional[int] = None,
               split: str = "train") -> None:
        step_text = "" if step is None else f" (step {step})"
        print(f"{split}/{name}: {value:.4f}{step_text}", flush=True)


class PipeReporter(Reporter):
    """Sends events as JSON lines over a pipe to the runner parent, and echoes
    log lines to stdout so they also appear in the captured output."""

    def __init__(self, fd: int):
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"type": event, **fields}, default=repr) + "\n")
        self._file.flush()

    def log(self, message: str, level: int = logging.INFO) -> None:
        super().log(message, level)
        self.send("log", message=str(message), level=level)

    def metric(self, name: str, value: float, step: Optional[int] = None,
               split: str = "train") -> None:
        self.send("metric", name=str(name), value=float(value), step=step, split=split)


_current: Reporter = Reporter()


def current() -> Reporter:
    return _current


def install(reporter: Reporter) -> Reporter:
    """Make ``reporter`` current; returns the previous one so callers can restore it."""
    global _current
    previous, _current = _current, reporter
    return previous
