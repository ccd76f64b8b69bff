"""One running version's events as its executor hands them on: placed, log lines, data fingerprint, params,
stored outputs and points — each routed to the runner's recorder and observers."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from ..core.lifecycle import MetricRow
from .observers import Run

if TYPE_CHECKING:
    from .runner import Runner


class RunEvents:
    """One running version's events, as its executor hands them on (a ``lifecycle.Sink``)."""

    def __init__(self, runner: Runner, run_id: int, label: str):
        self.runner, self.run_id, self.label = runner, run_id, label
        self.run: Optional[Run] = None

    def started(self, where: Mapping[str, Any]) -> None:
        self.runner.recorder.placed(self.run_id, where)
        run = self.run
        if run is not None and where.get("pid") is not None and not run.notes.get("placed"):
            # it runs now: --timeout and the stall watch count from here, not from its wait in a cluster's queue
            run.notes["placed"] = True
            run.started = self.runner.clock()
            run.notes["heard"] = time.monotonic()
        if where.get("gpu") is not None:
            self.runner.say(f"{self.label}: on GPU {where['gpu']}", echo=False)

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.runner.say(message, level, echo=False)

    def data(self, fingerprint: str) -> None:
        self.runner.recorder.data(self.run_id, fingerprint)

    def params(self, params: Mapping[str, Any]) -> None:
        self.runner.recorder.params(self.run_id, params)

    def output(self, row: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.runner.recorder.output(self.run_id, self.run.item.spec, row)
            self.runner.say(f"{self.label}: output {row['name']!r} stored ({row['summary']}; {row['path']})",
                            echo=False)

    def metrics(self, rows: Sequence[MetricRow]) -> None:
        self.runner.points(self.run_id, self.run, rows)
