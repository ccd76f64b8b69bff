"""Searches (``Versions.add_search``) as the runner drives them.

The runner never imports a model script, so a search's ``propose`` and a user's ``stop``
function run in a search child (``script.search_child``, one long-lived process per script,
started when the queue reaches one of its searches). The history is read from the ledger and
sent as it grows; the child keeps nothing else, so a crash of either side costs nothing: the
next runner reads the history again and the search goes on.

``Searches`` sees only what it needs — the ledger's read questions, the options, a way to say
things — and never acts on a run itself: a stopper's verdict (ASHA's, or ``stop()``'s) is a
``Decision``, and a search that cannot go on is a ``SearchFailure``, both handed to the runner,
which applies them.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from ...core.timings import timings
from ...core.lifecycle import SYSTEM_SPLIT, Decision, MetricKey, MetricRow, Mode, QueueState, RunStatus
from ...plan.planner import QueueItem
from ...proc.system import MARK_PROJECT, project_mark
from ...script.space import is_point_name, point_of
from ...store.reads import Reads
from .pipe import Fork, SearchProcess
from .state import SearchState

ASK_WAIT = 0.05      # seconds the runner waits for a proposal before it goes on and takes it when it comes
REFUSALS = 50        # proposals in a row of points already tried before a search is ended


class SearchFailure(NamedTuple):
    """A search that proposes no more because its ``propose`` failed (or its script no longer
    loads): the runner records it as a failed run named after the search."""

    rel: str
    name: str
    sha256: str
    error: str
    traceback: str


class Ask(NamedTuple):
    state: SearchState
    op: str                 # propose or stop
    version: Optional[str]  # the point a stop() question is about
    at: float               # when it was asked


class Searches:
    """The batch's searches: asks for points, applies stoppers, keeps history.

    The runner calls ``step(slot)`` where its queue reaches a search, ``poll()`` every loop,
    ``metrics`` with each running point's new rows and ``finished`` when one ends; it takes the
    decisions and failures that arrived with ``take``."""

    def __init__(self, reads: Reads, root: str, test_mode: bool, use_history: bool,
                 say: Callable[[str, int], None], clock: Callable[[], float] = time.monotonic,
                 fork: Optional[Fork] = None):
        self.reads, self.root, self.test_mode, self.use_history = reads, root, test_mode, use_history
        self.fork = fork  # forks the search children (from the warm parent for their script's imports)
        self.say, self.clock = say, clock
        self.states: Dict[Tuple[str, str], SearchState] = {}
        self.processes: Dict[str, Tuple[str, SearchProcess]] = {}  # script path -> (sha256, its child)
        self.items: List[QueueItem] = []                           # points started in this batch, in order
        self.of: Dict[Tuple[str, str], Tuple[SearchState, QueueItem]] = {}  # a point's key -> its search, item
        self._asks: Dict[int, Ask] = {}                            # the questions not answered yet
        self._next_id = 1
        self._changed = False  # an answer arrived since the runner last asked (it may have come mid-step)
        self._said: Set[Tuple[str, ...]] = set()  # warnings given once
        self._decisions: List[Decision] = []
        self._failures: List[SearchFailure] = []

    def take(self) -> Tuple[List[Decision], List[SearchFailure]]:
        """The decisions (stop() said to prune) and failed searches since the last call."""
        taken = self._decisions, self._failures
        self._decisions, self._failures = [], []
        return taken

    # -- the queue reaches a search ---------------------------------------------------------

    def step(self, slot: Any) -> Any:
        """A QueueItem to start now, "wait" (a proposal is on its way) or None (the search needs
        no slot now)."""
        state = self._state(slot)
        if not state.wants():
            return None
        if state.resume:
            name, params, sha = state.resume.pop(0)
            return self._item(state, name, params, sha, "")
        while state.ready is None and state.asked is None and state.ended is None and not state.held:
            self._ask(state)  # (a refusal asks again)
            self.poll(ASK_WAIT)
        if state.ready is not None:
            ready, state.ready = state.ready, None
            return self._item(state, ready["name"], ready["params"], ready["params_sha256"], ready["point_id"])
        return "wait" if state.asked is not None else None

    def _budget(self, slot: Any) -> int:
        return 1 if self.test_mode else int(slot.decl["budget"])  # test mode tries one point

    def _state(self, slot: Any) -> SearchState:
        state = self.states.get(slot.key)
        if state is None:
            state = self.states[slot.key] = SearchState(slot.rel, slot.path, slot.info, slot.decl, self._budget(slot))
            if self.use_history and not self.test_mode:
                self._load(state)
        else:  # the script was edited: a new budget or parallel takes effect, the history stays
            state.info, state.decl = slot.info, slot.decl
            state.budget, state.parallel = self._budget(slot), int(slot.decl["parallel"])
        return state

    def _load(self, state: SearchState) -> None:
        fingerprint = getattr(state.info, "fingerprint", "") or state.info.sha256
        runs = [r for r in self.reads.search_runs(state.rel, state.name, fingerprint)
                if is_point_name(state.name, r["version"])]
        metrics = self._metrics([r["id"] for r in runs])
        curves: Dict[int, List[MetricRow]] = {}
        if state.asha is not None and runs:
            for run_id, split, name, step, value in self.reads.curves([r["id"] for r in runs]):
                curves.setdefault(run_id, []).append(MetricRow(name, value, step, split))
        state.load(runs, metrics, curves)

    def _metrics(self, ids: List[int]) -> Dict[int, Dict[str, Any]]:
        return {run_id: {str(MetricKey(*key)): value for key, value in found.items()}
                for run_id, found in self.reads.run_metrics(ids).items()}

    def _item(self, state: SearchState, name: str, params: Dict[str, Any], sha: str, point_id: str) -> QueueItem:
        item = QueueItem(state.spec(name, params, sha), state.info)
        state.tried.add(name)
        state.running[name] = point_id or point_of(name)  # (a point resumed from the ledger)
        if item.key not in self.of:  # a point run again (its node was lost) keeps its one row
            self.items.append(item)
        self.of[item.key] = (state, item)
        return item

    # -- talking to the search child ----------------------------------------------------------

    def _process(self, state: SearchState) -> SearchProcess:
        known = self.processes.get(state.path)
        if known is not None and known[0] == state.info.sha256 and known[1].alive():
            return known[1]
        if known is not None:
            known[1].close()
        env: Dict[str, str] = {"MLPIPELINE_MODE": (Mode.TEST if self.test_mode else Mode.RUN).value}
        if not self.test_mode:  # a later runner's sweep ends it if this one could not
            env[MARK_PROJECT] = project_mark(self.root)
        process = SearchProcess(state.path, self.root, env, self.fork, tuple(state.info.imports))
        self.processes[state.path] = (state.info.sha256, process)
        for other in self.states.values():  # the new child knows no history yet
            if other.path == state.path:
                other.sent = 0
        return process

    def _send(self, state: SearchState, message: Dict[str, Any], op: str, version: Optional[str] = None) -> int:
        process = self._process(state)
        for history in state.history_messages():
            process.send(history)
        ask = self._next_id
        self._next_id += 1
        process.send({**message, "op": op, "search": state.name, "id": ask})
        self._asks[ask] = Ask(state, op, version, self.clock())
        if op == "propose":
            state.asked = ask
        return ask

    def _ask(self, state: SearchState) -> None:
        self._send(state, {"running": sorted(state.running), "running_points": sorted(state.running.values()),
                           "refused": state.refused}, "propose")

    def changed(self) -> bool:
        """Did an answer arrive since the last call? (Then the queue may have changed.)"""
        self.poll()
        changed, self._changed = self._changed, False
        return changed

    def poll(self, wait: float = 0.0) -> bool:
        """Take the answers that arrived; True when the queue may have changed."""
        changed = self._overdue()
        for path, (_, process) in list(self.processes.items()):
            replies = process.replies(wait if any(s.path == path and s.asked for s in self.states.values()) else 0.0)
            for reply in replies:
                changed |= self._answer(reply)
            if not replies and not process.alive() and process.replies() == []:
                changed |= self._lost(path, process)
        self._changed |= changed
        return changed

    def _overdue(self) -> bool:
        """A propose() or stop() that does not answer ends its search (and its process): a batch never
        hangs on one, and a hung stop() does not hold the next proposal up behind it."""
        now = self.clock()
        late = [(ask, entry) for ask, entry in self._asks.items() if now - entry.at > timings().propose_limit]
        for ask, (state, op, version, _) in late:
            if self._asks.pop(ask, None) is None:
                continue
            if op == "stop" and version is not None:
                state.stop_asked.pop(version, None)
            known = self.processes.pop(state.path, None)
            if known is not None:
                known[1].close()
            self._fail(state, f"{op}() did not answer within {timings().propose_limit:g} s (the search's process loads the "
                              f"script, then calls it); its process was ended", "")
            for other, entry in list(self._asks.items()):  # what else waited on that process is gone with it
                if entry.state.path == state.path:
                    del self._asks[other]
                    if entry.op == "propose":
                        entry.state.asked = None
                    elif entry.version is not None:
                        entry.state.stop_asked.pop(entry.version, None)
        return bool(late)

    def _lost(self, path: str, process: SearchProcess) -> bool:
        """The search child exited: the searches waiting on it end with an error."""
        waiting = [(ask, entry) for ask, entry in self._asks.items() if entry.state.path == path]
        if not waiting:
            return False
        code = process.proc.returncode
        for ask, (state, op, version, _) in waiting:
            del self._asks[ask]
            if op == "propose":
                self._fail(state, f"the search's process exited (code {code}) before {op}() answered; "
                                  f"a script that loads must not exit", "")
            elif version is not None:
                state.stop_asked.pop(version, None)
                state.stop_broken.add(version)
                self._once((state.rel, state.name, "lost"), f"{state.rel} {state.name}: the search's process exited "
                                                            f"(code {code}) while stop() ran; started again for the "
                                                            f"next question, and {version} goes on without stop()")
        return True

    def _answer(self, reply: Dict[str, Any]) -> bool:
        ask = reply.get("id")
        entry = self._asks.pop(ask, None) if isinstance(ask, int) else None
        if entry is None:  # the script did not load (no id), or an answer no one waits for
            if "error" in reply:
                for state in [s for s in self.states.values() if s.asked is not None]:
                    self._asks.pop(state.asked or 0, None)
                    self._fail(state, reply["error"], reply.get("traceback") or "")
                return True
            return False
        state, op, version, _ = entry
        if op == "stop":
            assert version is not None
            state.stop_asked.pop(version, None)
            if "error" in reply:  # said once; the version goes on, and is not asked about again
                state.stop_broken.add(version)
                self.say(f"{state.rel} {version}: {reply['error']}; the version goes on, without stop()",
                         logging.ERROR)
            elif reply.get("stop"):
                self._decisions.append(Decision(RunStatus.PRUNED, (state.rel, version), f"pruned by the search's "
                                                f"stop() at step {state.stop_step.get(version)}"))
            return False
        state.asked = None
        if "error" in reply:
            self._fail(state, reply["error"], reply.get("traceback") or "")
        elif reply.get("point") is None:
            state.ended = "propose() returned None"
            self.say(f"{state.rel} {state.name}: the search ended: propose() returned None after "
                     f"{state.spent()} points", logging.INFO)
        elif reply["name"] in state.running:
            # A propose() that reads only finished results (deterministic) repeats a point still running:
            # asking again now would get the same answer, so the search waits for the next result instead.
            state.held = True
        elif reply["name"] in state.tried:
            state.refused.append(reply["point"])
            if len(state.refused) >= REFUSALS:
                state.ended = f"propose() returned only points already tried, {REFUSALS} times in a row"
                self.say(f"{state.rel} {state.name}: the search ended: {state.ended}", logging.WARNING)
        else:
            state.ready, state.refused = reply, []
        return True

    def _once(self, key: Tuple[str, ...], message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(message, logging.WARNING)

    def _fail(self, state: SearchState, error: str, traceback: str) -> None:
        state.asked = None
        state.ended = error
        self._failures.append(SearchFailure(state.rel, state.name, state.info.sha256,
                                            f"{state.rel} {state.name}: {error}", traceback))

    # -- running points -------------------------------------------------------------------------

    def metrics(self, key: Tuple[str, str], rows: Sequence[MetricRow]) -> Optional[Decision]:
        """A running point's new rows: ASHA's decision (returned), or a stop() question sent."""
        known = self.of.get(key)
        if known is None or key[1] not in known[0].running:
            return None
        state, item = known
        version = key[1]
        rows = [r for r in rows if r.split != SYSTEM_SPLIT]  # what the runner samples (CPU, RSS, GPU) decides nothing
        if state.asha is not None:
            reason = state.asha.observe(version, rows)
            return Decision(RunStatus.PRUNED, key, reason) if reason is not None else None
        if not state.stop_function or version in state.stop_broken:
            return None
        pending = state.stop_rows.setdefault(version, [])
        steps = [r.step for r in rows if r.step is not None]
        pending += [[str(MetricKey(r.split, r.name)), r.step, r.value] for r in rows if r.step is not None]
        if not steps or version in state.stop_asked or max(steps) <= state.stop_step.get(version, -1):
            return None
        state.stop_step[version] = step = max(steps)
        state.stop_asked[version] = self._send(
            state, {"version": version, "point_id": state.running[version], "step": step, "rows": pending,
                    "params": state.point(dict(item.spec.params))}, "stop", version)
        state.stop_rows[version] = []
        return None

    def finished(self, key: Tuple[str, str], run_id: int, status: RunStatus, again: bool) -> None:
        """A point ended (``again``: its node was lost and it runs again)."""
        known = self.of.get(key)
        if known is None:
            return
        state, item = known
        version = key[1]
        point_id = state.running.pop(version, point_of(version))
        state.held = False  # a new result: propose() may answer differently now
        for table in (state.stop_rows, state.stop_step, state.stop_asked):
            table.pop(version, None)
        if state.asha is not None and version not in state.asha.matched and status == RunStatus.SUCCEEDED:
            self._once((state.rel, state.name, "asha"),
                       f"{state.rel} {state.name}: asha({state.asha.metric!r}) pruned nothing: {version} logged no "
                       f"{state.asha.metric!r} with a step; log it with self.log_metric(name, value, step=...) or fix "
                       f"the name")
        if again:
            state.resume.append((version, dict(item.spec.params), item.spec.params_sha256))
        elif status != RunStatus.INTERRUPTED:
            state.history.append(state.item(version, point_id, dict(item.spec.params), status.value,
                                            self._metrics([run_id]).get(run_id, {})))
            child = self.processes.get(state.path)
            if child is not None and child[1].alive():  # now: an adapter mirrors results as they come
                for message in state.history_messages():
                    child[1].send(message)

    # -- what the queue shows ----------------------------------------------------------------------

    def row(self, slot: Any) -> Tuple[str, str]:
        state = self.states.get(slot.key)
        if state is None:
            return (QueueState.QUEUED.value,
                    f"search: up to {self._budget(slot)} points, {slot.decl['parallel']} at a time")
        if state.done():
            return (QueueState.FINISHED.value,
                    f"search: {state.spent()} points tried; {state.ended or 'its budget is spent'}")
        return ((QueueState.RUNNING if state.running else QueueState.QUEUED).value,
                f"search: {state.spent()} of {state.budget} points tried, {len(state.running)} running")

    def ended(self) -> List[str]:
        """Each search that proposes no more: ``script name: why``."""
        return [f"{state.rel} {state.name}: {state.ended or f'its budget of {state.budget} points is spent'}"
                for state in self.states.values() if state.done()]

    def done_in_batch(self) -> List[Tuple[Tuple[str, str], str]]:
        """Each search that ran a point in this batch and proposes no more: ((script, name), why)."""
        states = {state.key: state for state, _ in self.of.values()}
        return [(key, state.ended or f"its budget of {state.budget} points is spent")
                for key, state in states.items() if state.done()]

    def waiting(self) -> bool:
        return any(state.asked is not None for state in self.states.values())

    def left(self) -> bool:
        return any(state.wants() for state in self.states.values())

    def close(self, grace: Optional[float] = None) -> None:
        for _, process in self.processes.values():
            process.close(timings().close_grace if grace is None else grace)
        self.processes.clear()
