"""The batch's queue: what runs next, as the configs, the scripts and the batch so far say.

``BatchQueue`` is the runner's source of work. It re-reads the plan (``plan.Planner``), knows
what ran in this batch and what ``-u`` skips, and answers ``next`` with the next step — a
version to start (a configured one, or a point a search proposed: its searches are asked where
the queue reaches them), a script that does not load (to record as failed), or nothing now. It
keeps ``status``'s snapshot of the queue in the ledger.
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple, Union

from ..core.lifecycle import RunStatus
from ..core.errors import ScriptError
from ..core.lifecycle import Mode, QueueState, VersionSpec
from ..core.resources import Wait
from ..plan.planner import Plan, Planner, QueueItem, SearchSlot, unchanged_since
from ..store.ledger import Ledger
from .search import Searches

Key = Tuple[str, str]  # (script as runs record it, version)
Entry = Tuple[str, Optional[str], str, Optional[str]]  # a snapshot row: (script, version, state, reason)
ALREADY = "already succeeded with this code, data and these parameters (-u)"
_IN_BATCH = {True: f"{RunStatus.SUCCEEDED.value} in this batch", False: f"{RunStatus.FAILED.value} in this batch"}


class Broken(NamedTuple):
    """A listed script that does not load (once per content): recorded as a failed run."""

    rel: str
    sha256: str
    error: ScriptError


class Refused(NamedTuple):
    """A version that asks for more than any GPU or part of this machine has: recorded as failed, once."""

    item: QueueItem
    reason: str


Step = Union[QueueItem, Broken, Refused]
Fits = Callable[[VersionSpec], Optional[Wait]]


class BatchQueue:
    """The queue of one batch (see the module's docstring)."""

    def __init__(self, planner: Planner, ledger: Ledger, searches: Searches, mode: Mode, use_history: bool,
                 say: Callable[..., None]):
        self.planner, self.ledger, self.searches = planner, ledger, searches
        self.mode, self.use_history, self.say = mode, use_history, say
        # what ran in this batch: (script, version) -> (fingerprint, params sha256, succeeded)
        self.ran: Dict[Key, Tuple[str, str, bool]] = {}
        self.forced: Set[Key] = set()          # asked to run again (rerun request, a lost node)
        self.priority: List[Key] = []          # asked to run first (reorder request)
        self.broken_seen: Set[Tuple[str, str]] = set()  # (script, sha256) of scripts recorded as not loading
        self.history_skips: Set[Key] = set()   # versions -u skipped (said once each)
        self._succeeded: Dict[str, Dict[str, Tuple[Optional[str], Optional[str], Optional[str]]]] = {}
        self._written: Optional[Tuple[List[Entry], Optional[str]]] = None  # the snapshot as last written
        self._cursor: Tuple[Optional[Plan], int] = (None, 0)  # where next() found the last queued version
        self.waiting: Dict[Key, Tuple[str, float]] = {}  # versions waiting for resources: (why, since when)
        self.not_before: Dict[Key, float] = {}  # versions to run again after a back-off: from when
        self.silences: Dict[Key, str] = {}      # running versions silent past half the stall timeout: how long
        self.durations: List[float] = []       # seconds each version that ended in this batch ran

    # -- what the batch did -----------------------------------------------------------------------

    def started(self, item: QueueItem) -> None:
        self.ran[item.key] = (item.spec.fingerprint, item.spec.params_sha256, False)
        self.forced.discard(item.key)
        self.waiting.pop(item.key, None)
        self.not_before.pop(item.key, None)

    def took(self, seconds: float) -> None:
        """A version of this batch ran ``seconds``: what the next small one is expected to take."""
        self.durations = (self.durations + [seconds])[-50:]

    def may_jump(self, waited: float) -> bool:
        """May a version that fits start ahead of one that has waited ``waited`` seconds for resources? Until
        that one has waited longer than a version of this batch takes (the median so far), yes."""
        if not self.durations:
            return True
        ordered = sorted(self.durations)
        return waited < ordered[len(ordered) // 2]

    def finished(self, item: QueueItem, succeeded: bool) -> None:
        self._succeeded.pop(item.rel, None)  # asked again: its -u history changed
        fingerprint, params, _ = self.ran[item.key]
        self.ran[item.key] = (fingerprint, params, succeeded)

    def again(self, key: Key, not_before: Optional[float] = None) -> None:
        """Run ``key`` again in this batch (a rerun request, a retry: not before ``not_before``)."""
        if not_before is not None:
            self.not_before[key] = not_before
        self.ran.pop(key, None)
        self.history_skips.discard(key)
        self.forced.add(key)
        self.moved()

    def reorder(self, order: List[Key]) -> None:
        self.priority = list(order)
        self.moved()

    def moved(self) -> None:
        """The queue changed under the cursor (a request): look from its head again."""
        self._cursor = (None, 0)

    # -- reading the queue ------------------------------------------------------------------------------

    def history(self, plan: Plan) -> Set[Key]:
        """Keys of the plan's versions that ``-u`` skips: their last execution-mode run succeeded
        with what trains unchanged (one query a script)."""
        if not (self.use_history and self.mode == Mode.RUN):
            return set()
        done = set()
        for rel in {item.rel for item in plan.items}:
            last = self._succeeded.get(rel)
            if last is None:  # asked once a script, again only after one of its runs finished
                last = self._succeeded[rel] = self.ledger.succeeded_last(rel)
            for item in plan.items:
                if item.rel == rel and item.key not in self.forced and unchanged_since(item, last.get(item.spec.version)):
                    done.add(item.key)
        return done

    def ordered(self, plan: Plan) -> List[QueueItem]:
        """The plan's startable versions, those a reorder request named first."""
        items = plan.startable
        if not self.priority:
            return items
        rank = {key: i for i, key in enumerate(self.priority)}
        return sorted(items, key=lambda item: rank.get(item.key, len(rank)))

    def state(self, item: QueueItem, history: Set[Key], running: Set[Key]) -> Tuple[QueueState, Optional[str]]:
        """(state, reason) of a version in the queue.

        A version runs once per batch; it runs again in the same batch (under --watch, say) only
        when what trains or its parameters changed since, and it failed or -u asks for changed
        versions to run again."""
        key = item.key
        if key in running:
            return QueueState.RUNNING, self.silences.get(key)
        previous = self.ran.get(key)
        if previous is not None:
            unchanged = previous[:2] == (item.spec.fingerprint, item.spec.params_sha256)
            if unchanged or (previous[2] and not self.use_history):
                return QueueState.FINISHED, _IN_BATCH[previous[2]]  # one string for all: a snapshot keeps them
        if key in history:
            return QueueState.SKIPPED, ALREADY
        waiting = self.waiting.get(key)
        if key in self.not_before:
            return QueueState.QUEUED, "runs again after a back-off (a retry)"
        return QueueState.QUEUED, (waiting[0] if waiting else None)

    def next(self, plan: Plan, running: Set[Key], fits: Optional[Fits] = None, now: float = 0.0) -> Optional[Step]:
        """What to start now: a script to record as broken first, then the next queued version —
        or a point of a search the queue reaches before it — or None.

        ``fits`` says whether a version's resources are free now: one that waits keeps its place and says
        why, and a later one that fits starts ahead of it (backfill) until it has waited longer than a
        version of this batch takes; then nothing jumps it. One that never could fit is Refused."""
        for rel, sha, error in plan.broken_now:
            if (rel, sha) not in self.broken_seen:
                self.broken_seen.add((rel, sha))
                return Broken(rel, sha, error)
        history = self.history(plan)
        items = self.ordered(plan)
        # Within one plan, a version before the cursor never becomes queued again (a request resets it),
        # so each start does not rescan a 1 000-version queue from its head.
        first = self._cursor[1] if self._cursor[0] is plan else 0
        found: Optional[Tuple[int, QueueItem]] = None
        head: Optional[Tuple[int, float]] = None  # the first version waiting for resources: (index, since)
        cursor_set = False
        waited, self.waiting = self.waiting, {}  # those this scan finds waiting still (a config edit drops some)
        for index in range(first, len(items)):
            item = items[index]
            state, reason = self.state(item, history, running)
            if state == QueueState.QUEUED:
                if not cursor_set:  # the first queued version: where the next scan of this plan starts
                    self._cursor, cursor_set = (plan, index), True
                if self.not_before.get(item.key, now) > now:  # a retry's back-off: the queue goes on meanwhile
                    continue
                verdict = fits(item.spec) if fits is not None else None
                if verdict is None:
                    if head is None or self.may_jump(now - head[1]):
                        found = (index, item)
                    break
                if verdict.never:
                    return Refused(item, verdict.reason)
                since = waited.get(item.key, ("", now))[1]
                self.waiting[item.key] = (verdict.reason, since)
                if head is None:
                    head = (index, since)
                continue
            if state == QueueState.SKIPPED and item.key not in self.history_skips:
                self.history_skips.add(item.key)
                self.say(f"{item.label}: skipped, {reason}")
        point = self._next_point(plan.searches, head[0] if head else (found[0] if found else None), fits)
        if point is not None:
            return point
        return found[1] if found else None

    def _next_point(self, slots: List[SearchSlot], before: Optional[int], fits: Optional[Fits]) -> Optional[QueueItem]:
        """A search the queue reaches before the next queued version: a point of it to start, or
        None (none wants a slot now, or they are still choosing; their answer plans again)."""
        for slot in slots:
            if slot.held or (before is not None and slot.position > before):
                break
            step = self.searches.step(slot)
            if step == "wait":  # it is choosing: what comes after it may use the free slots meanwhile
                continue
            if step is not None:
                return step
        return None

    def left(self, plan: Plan) -> bool:
        """Is anything still waiting to run (after a stop)?"""
        history = self.history(plan)
        return bool(plan.pending) or self.searches.left() or \
            any(self.state(item, history, set())[0] == QueueState.QUEUED for item in plan.items)

    # -- status's view of it ------------------------------------------------------------------------

    def snapshot(self, runner_id: Optional[int], plan: Plan, running: Set[Key]) -> None:
        """Keep ``status``'s view of the queue current: the rows that changed (a start changes
        one or two of a 1 000-version queue), or all of them when the queue itself changed."""
        if runner_id is None:
            return
        history = self.history(plan)

        def row(item: QueueItem) -> Entry:
            state, reason = self.state(item, history, running)
            return (item.rel, item.spec.version, state.value, reason)

        entries: List[Entry] = [row(item) for item in self.ordered(plan)]
        entries += [(slot.rel, slot.decl["name"], *self.searches.row(slot)) for slot in plan.searches]
        entries += [(rel, None, QueueState.DESCRIBING.value, "loading the script to learn its versions")
                    for rel in plan.pending]
        entries += [(script, version, QueueState.SKIPPED.value, reason) for script, version, reason in plan.skipped]
        # the points searches started, last: a new one adds a row instead of rewriting the snapshot
        entries += [row(item) for item in self.searches.items]
        written = self._written
        if written is not None and written[1] == plan.config_error and len(written[0]) <= len(entries) \
                and all(a[:2] == b[:2] for a, b in zip(written[0], entries)):
            changed = [(i, e[2], e[3]) for i, (w, e) in enumerate(zip(written[0], entries)) if w[2:] != e[2:]]
            added = [(i, *entries[i]) for i in range(len(written[0]), len(entries))]
            if changed or added:
                self.ledger.update_queue(runner_id, changed, added)
        else:
            self.ledger.write_queue(runner_id, entries, plan.config_error)
        self._written = (entries, plan.config_error)

