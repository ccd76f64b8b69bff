"""What a batch ended: each run's summary line (``Finished``) and the counts of a runner that may end a
million runs under ``--watch`` (``Ended``, bounded)."""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Deque, Optional, Tuple

from ..core.lifecycle import Outcome, RunStatus

__all__ = ["Ended", "Finished"]


@dataclass(frozen=True, slots=True)
class Finished:
    """What the batch's summary needs of a run that ended: kept small, since a ``--watch``
    runner ends runs for weeks (its result and spec go to the ledger, not here)."""

    run_id: int
    key: Optional[Tuple[str, str]]   # (script, version); None for a script that did not load
    status: RunStatus
    node_lost: bool = False
    retried: bool = False            # its version runs again (a retry): the later attempt speaks for it
    traceback: str = ""              # a failure's, for test mode's last word

    @classmethod
    def of(cls, run_id: int, key: Optional[Tuple[str, str]], outcome: Outcome, retried: bool = False) -> Finished:
        failed = outcome.status != RunStatus.SUCCEEDED
        return cls(run_id, key, outcome.status, outcome.node_lost, retried, outcome.traceback if failed else "")


class Ended:
    """The runs a batch ended: how many of each status, and the last ``KEEP`` of them in full
    (a ``--watch`` runner may end a million; memory stays bounded)."""

    KEEP = 10_000

    def __init__(self) -> None:
        self.recent: Deque[Finished] = deque(maxlen=self.KEEP)
        self.counts: Counter = Counter()
        self.failed_earlier = 0  # failures no longer among the recent ones

    def add(self, finished: Finished) -> None:
        if len(self.recent) == self.KEEP:
            oldest = self.recent[0]
            if oldest.status not in (RunStatus.SUCCEEDED, RunStatus.PRUNED) and not oldest.node_lost \
                    and not oldest.retried:
                self.failed_earlier += 1
        self.recent.append(finished)
        self.counts[finished.status.value] += 1

    def __len__(self) -> int:
        return sum(self.counts.values())
