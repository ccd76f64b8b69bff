"""When a version whose run ended badly runs again: the kinds of ending a retry policy names, which kind an
outcome is, and the back-off between attempts — plain decisions, tested with plain outcomes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Iterable, Optional

from .lifecycle import Outcome
from .vocabulary import RetryKind, RunStatus

KINDS = tuple(kind.value for kind in RetryKind)
DEFAULT_ON = frozenset(k.value for k in (RetryKind.NODE_LOST, RetryKind.SIGNAL, RetryKind.OOM, RetryKind.STALLED))
MAX_DELAY = 600.0  # seconds: the back-off doubles up to this


def parse_kinds(text: str, where: str) -> FrozenSet[str]:
    """``error, oom`` as a set of kinds; ValueError names ``where`` and the kinds there are."""
    kinds = frozenset(k.strip().lower() for k in text.replace(",", " ").split() if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"{where} {text!r}: {'no kind given' if not kinds else repr(unknown[0]) + ' is not a kind'}"
                         f"; give some of {', '.join(KINDS)}")
    return kinds


def kind_of(outcome: Outcome) -> Optional[str]:
    """The kind of ending a retry policy can match, or None for one never retried (it succeeded, a person or
    a search ended it, the runner stopped, the script does not load)."""
    if outcome.node_lost:
        return RetryKind.NODE_LOST.value
    if outcome.reason == RetryKind.OOM.value:
        return RetryKind.OOM.value
    if outcome.status == RunStatus.STALLED:
        return RetryKind.STALLED.value
    if outcome.status == RunStatus.TIMEOUT:
        return RetryKind.TIMEOUT.value
    if outcome.status != RunStatus.FAILED or outcome.script_error:
        return None
    if outcome.reason == "nan":  # the runner's own NaN guard ended it: the version diverged, it was not killed
        return RetryKind.ERROR.value
    return (RetryKind.SIGNAL if outcome.signal is not None else RetryKind.ERROR).value


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 0
    on: FrozenSet[str] = DEFAULT_ON
    delay: float = 30.0

    def again(self, outcome: Outcome, attempt: int) -> Optional[float]:
        """Seconds to wait before running the version again after ``attempt`` ended with ``outcome``, or None
        when it does not run again. A lost node runs again at once (it was not the version's fault)."""
        kind = kind_of(outcome)
        if kind is None or kind not in self.on or attempt > self.retries:
            return None
        return 0.0 if kind == RetryKind.NODE_LOST.value else min(MAX_DELAY, self.delay * 2 ** (attempt - 1))

    def shown(self, kinds: Iterable[str]) -> str:
        return ",".join(k for k in KINDS if k in set(kinds))
