"""Every wait, grace and period the runner and its children keep, in one object: what a
week-long batch needs by default, and what a test (or an impatient user) shrinks with
``MLPIPELINE_TIMINGS="warm_grace=1,threads_grace=0.5"`` — read from the environment each time, so
children inherit it."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Dict, Tuple

ENV = "MLPIPELINE_TIMINGS"


@dataclass(frozen=True)
class Timings:
    heartbeat: float = 2.0        # a runner stamps its runs and itself alive
    requests: float = 0.25        # it looks at the requests table (cancel, pause, ...)
    poll_wait: float = 0.1        # one step waits this long for a running version's events
    config_settle: float = 0.5    # a queue config saved this recently is read again before a batch ends
    settle_read: float = 0.05     # between the two reads that show a config has settled
    warm_grace: float = 10.0      # a warm cancel (SIGTERM to the version's group) waits this long, then kills
    result_grace: float = 20.0    # a child may take this long to exit after sending its result
    reap_grace: float = 2.0       # what a finished child left may hold its pipes this long
    threads_grace: float = 10.0   # a finished version's leftover non-daemon threads get this long
    sweep_every: float = 0.5      # between sweeps for what finished versions left outside their groups
    close_grace: float = 5.0      # a search's child gets this long at a batch's end to act on the last results
    propose_limit: float = 600.0  # propose() or stop() answers within this (the script's load included)
    transient: float = 30.0       # a script that failed on a missing module is loaded again after this
    fork_start: float = 30.0      # the fork server imports mlpipeline's child side within this
    fork_reply: float = 10.0      # and answers a fork within this
    cancel_grace: float = 5.0     # a cancelled Ray task ends its child within this, or is force-killed
    notify_check: float = 20.0    # mlpipeline serve looks for runners that died this often ([NOTIFY] runner_died)
    notify_drain: float = 2.0     # an ending runner waits at most this long for notifications still being sent
    mlflow_drain: float = 60.0    # and this long for what is still to be logged to MLflow (a model dir uploading)


_cache: Dict[Tuple[str, str], Timings] = {}


def timings() -> Timings:
    """The timings in force: the defaults, with what ``MLPIPELINE_TIMINGS`` sets (``name=seconds``,
    comma-separated; ``MLPIPELINE_PROPOSE_LIMIT`` still sets ``propose_limit``). A bad entry is
    ignored: a typo in a tuning knob must not stop a batch."""
    text, limit = os.environ.get(ENV, ""), os.environ.get("MLPIPELINE_PROPOSE_LIMIT", "")
    known = _cache.get((text, limit))
    if known is not None:
        return known
    names = {f.name for f in fields(Timings)}
    changes: Dict[str, float] = {}
    for entry in [*text.split(","), f"propose_limit={limit}" if limit else ""]:
        name, _, value = entry.partition("=")
        try:
            if name.strip() in names:
                changes[name.strip()] = float(value)
        except ValueError:
            pass
    result = _cache[(text, limit)] = replace(Timings(), **changes)
    return result
