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
    STALLED = "stalled"      # silent (no output line, no metric) for --stall-timeout: ended by the runner

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class RetryKind(str, enum.Enum):
    """How a run ended, as a retry policy names it (``--retry-on``)."""

    ERROR = "error"          # an exception or a non-zero exit
    SIGNAL = "signal"        # killed by a signal nobody here sent
    OOM = "oom"
    NODE_LOST = "node_lost"
    STALLED = "stalled"
    TIMEOUT = "timeout"


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


class NotifyEvent(str, enum.Enum):
    """What a notification is sent on (``[NOTIFY] on = ...`` in mlp.config)."""

    FAILED = "failed"            # a run failed (or timed out)
    OOM = "oom"                  # a run ran out of memory (its reason)
    STALLED = "stalled"          # a run went silent and was ended
    RETRIED = "retried"          # a run that failed is run again
    SUCCEEDED = "succeeded"      # a run succeeded
    BATCH_DONE = "batch_done"    # a batch ended, with its counts
    QUEUE_EMPTY = "queue_empty"  # a --watch runner has nothing left to run
    RUNNER_DIED = "runner_died"  # a runner ended without closing its row (killed, the machine went down)
    SEARCH_DONE = "search_done"  # a search proposes no more points
