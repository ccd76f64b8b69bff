"""What the runner does about runs that end badly or go quiet: retries (which attempt a run is, whether and
when its version runs again, a chain a dead runner left picked up again) and stalls (how long a running
version has been silent, and the words ``status`` and its error use)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Set, Tuple

from ..core.lifecycle import Outcome
from ..core.retry import DEFAULT_ON, RetryPolicy, kind_of
from ..core.vocabulary import RunStatus

Key = Tuple[str, str]


class Retries:
    """The batch's retry bookkeeping. ``options`` are the runner's (``retries``, ``retry_on``,
    ``retry_delay``, ``default_retries``); ``config`` the queue config as last read, whose ``[MLP]`` keys
    apply where the command line is silent."""

    def __init__(self, options: Any, ledger: Any):
        self.options, self.ledger = options, ledger
        self.next: Dict[Key, Tuple[int, int]] = {}  # a version to run again: (its next attempt, the run it retries)
        self.dead_runners: Set[int] = set()  # runners found dead at the start: their retries were never started

    def policy(self, config: Any) -> RetryPolicy:
        options = self.options
        retries = options.retries if options.retries is not None else getattr(config, "retries", None)
        on = options.retry_on or getattr(config, "retry_on", None) or DEFAULT_ON
        return RetryPolicy(options.default_retries if retries is None else retries, on, options.retry_delay)

    def link(self, key: Key, config: Any) -> Dict[str, int]:
        """The ``attempt`` (and ``retry_of``) columns of a run of ``key`` about to start. A chain a dead runner
        left goes on counting: after a run it left ``interrupted``, or one whose retry it did not live to
        start. Any other version starts again at 1 (a batch run again on purpose gets its retries again)."""
        if key in self.next:
            attempt, of = self.next.pop(key)
            return {"attempt": attempt, "retry_of": of}
        last = self.ledger.last_attempt(*key)
        if last is None or last["status"] in (RunStatus.SUCCEEDED.value, RunStatus.RUNNING.value):
            return {"attempt": 1}
        attempt = last["attempt"] or 1
        ended = Outcome(RunStatus(last["status"]), signal=last["signal"], reason=last["reason"])
        policy = self.policy(config)
        if last["runner_id"] in self.dead_runners and (
                policy.retries > 0 if last["status"] == RunStatus.INTERRUPTED.value
                else policy.again(ended, attempt) is not None):
            return {"attempt": attempt + 1, "retry_of": last["id"]}
        return {"attempt": 1}

    def after(self, key: Key, run_id: int, attempt: int, outcome: Outcome, config: Any) -> Optional[Tuple[float, str]]:
        """When ``run_id`` (attempt ``attempt`` of ``key``) ended with ``outcome``: (seconds to wait, what to
        say) when its version runs again, else None."""
        policy = self.policy(config)
        delay = policy.again(outcome, attempt)
        if delay is None:
            return None
        self.next[key] = (attempt + 1, run_id)
        wait = f" in {delay:g} s" if delay else ""
        kind = kind_of(outcome)
        what = "its node was lost" if outcome.node_lost else f"it ended {outcome.status.value} ({kind})"
        return delay, (f"{what}; running it again as a new run, attempt {attempt + 1} of {policy.retries + 1}"
                       f"{wait} (--retries {policy.retries}, --retry-on {policy.shown(policy.on)})")

    def last_word(self, attempt: int, outcome: Outcome, config: Any) -> Optional[str]:
        """What the summary says of a run that ended a retry chain (None: it was the only attempt)."""
        if attempt <= 1:
            return None
        policy = self.policy(config)
        return f"{outcome.status.value} on attempt {attempt} of {max(attempt, policy.retries + 1)}"


def silence_note(silent: float, limit: float) -> Optional[str]:
    """What ``status`` shows of a running version silent for ``silent`` s of a ``limit`` s stall timeout."""
    if silent < limit / 2:
        return None
    return f"silent for {silent:.0f} s (--stall-timeout {limit:g})"


def stalled_error(silent: float, limit: float, last_line: str, last_metric: str) -> str:
    line = f"; last line: {last_line[:200]!r}" if last_line else "; it printed nothing"
    metric = f"; last metric: {last_metric}" if last_metric else "; it logged no metric"
    return f"stalled: no output line and no metric for {silent:.0f} s (--stall-timeout {limit:g}){line}{metric}"
