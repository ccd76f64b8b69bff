"""The words for where a run, a queue entry and a batch stand — defined here once, compared by
enum everywhere else (a test refuses these values spelled as strings outside this module).
Light on purpose: ``mlpipeline --help`` lists the statuses."""
from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    """Where a run stands. Written through to the ledger; changed in one place
    (``ledger.Ledger.set_status``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    PRUNED = "pruned"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Mode(str, enum.Enum):
    TEST = "test"
    RUN = "run"


class QueueState(str, enum.Enum):
    """Where an entry of a runner's queue snapshot stands (``status``, the queue page)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"        # ran in this batch (or a search that proposes no more)
    SKIPPED = "skipped"          # with the reason: -u, not whitelisted, a missing file, ...
    DESCRIBING = "describing"    # a script still being loaded to learn its versions
