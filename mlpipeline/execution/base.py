"""The one interface every executor implements, and its small shared helpers."""
from __future__ import annotations

import signal
from typing import List, Protocol, Tuple

from ..lifecycle import Job, Outcome, RunStatus, Sink

Finished = Tuple[int, Outcome]  # (ticket, how it ended)


class Executor(Protocol):
    """Runs jobs somewhere and owns the waiting for them."""

    def capacity(self) -> int:
        """How many more jobs ``submit`` takes now."""

    def submit(self, job: Job, sink: Sink) -> int:
        """Start (or queue) ``job``; its events go to ``sink``. Returns a ticket."""

    def poll(self, timeout: float) -> List[Finished]:
        """Wait up to ``timeout`` seconds for events; deliver them to the sinks;
        return the jobs that finished since the last call."""

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        """End a job: ``cold`` kills it now, warm asks it to stop (then kills it
        after a grace period). It finishes with ``status`` and ``reason``."""

    def running(self) -> int:
        """How many jobs are submitted and not yet reported finished."""

    def close(self) -> None:
        """Kill whatever still runs; wait for nothing."""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
