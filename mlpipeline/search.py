"""Searches (``Versions.add_search``) as the runner drives them.

The runner never imports a model script, so a search's ``propose`` and a
user's ``stop`` function run in a search child: one long-lived process per
script, started when the queue reaches one of its searches. It loads the
script, then answers requests, one JSON line each way over two pipes:

- ``{"op": "history", "search", "items"}``: finished versions to add to the
  search's history (no answer);
- ``{"op": "propose", "search", "id", "running", "refused"}`` →
  ``{"id", "point", "name", "params", "params_sha256"}`` (``point`` None: the
  search has no more to try) or ``{"id", "error", "traceback"}``;
- ``{"op": "stop", "search", "id", "version", "step", "rows"}`` → ``{"id", "stop"}``.

The history is read from the ledger by the runner and sent as it grows; the
child keeps nothing else, so a crash of either side costs nothing: the next
runner reads the history again and the search goes on. ``SearchState`` is the
runner's side of one search: what is running, what was tried, the budget, and
the ASHA rungs, which the runner applies itself to the metrics it records.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from .ledger import search_runs
from .lifecycle import MetricRow, VersionSpec
from .procs import kill_marked, probe_mark

SEARCH_MAIN = "import sys; del sys.path[0]; from mlpipeline.search import serve; serve(sys.argv[1:])"
ASK_WAIT = 0.05      # seconds the runner waits for a proposal before it goes on and takes it when it comes
REFUSALS = 50        # proposals in a row of points already tried before a search is ended
HISTORY_CHUNK = 500  # history items per line sent to the child
CLOSE_GRACE = 5.0    # seconds a search child gets at the end of a batch to act on the last results
# seconds propose() may take (the script's load included) before the search is failed
ANSWER_LIMIT = float(os.environ.get("MLPIPELINE_PROPOSE_LIMIT") or 600)


# --- the child ---------------------------------------------------------------------------------------------

class History(list):
    """What ``propose`` and ``stop`` receive: the search's finished versions, oldest
    first, each a dict with ``version`` (its name), ``params`` (what the point set),
    ``status`` (``succeeded``, ``failed``, ``pruned``, ``timeout``, ``interrupted``,
    ``cancelled``) and ``metrics`` (``{"split/name": last value}``). ``running``
    names the versions of the search still running."""

    running: List[str] = []
    refused: List[Dict[str, Any]] = []


def _copy(history: History) -> History:
    copied = History(history)
    copied.running, copied.refused = list(history.running), list(history.refused)
    return copied


def serve(argv: List[str]) -> None:
    """Child entry: ``SCRIPT REQUEST_FD REPLY_FD PARENT_PID``."""
    from .child import _die_with_parent, user_traceback
    from .errors import ScriptError
    from .scripts import get_model, load_module
    from .sweeps import check_point, search_point_hash
    from ._versions import params_digest, version_params

    path, requests, replies, parent = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    _die_with_parent(parent)
    out = os.fdopen(replies, "w", buffering=1)

    def reply(**fields: Any) -> None:
        out.write(json.dumps(fields) + "\n")

    try:
        module = load_module(path)
        versions = get_model(module, path).versions
    except ScriptError as exc:
        reply(error=str(exc), traceback=exc.details or "")
        return
    except BaseException as exc:  # noqa: BLE001 - the script's own code failed while loading
        reply(error=f"{type(exc).__name__}: {exc}", traceback=user_traceback(exc))
        return
    searches = versions.searches
    histories: Dict[str, History] = {name: History() for name in searches}
    curves: Dict[str, Dict[str, List[List[Any]]]] = {}
    for line in os.fdopen(requests, "r"):
        request = json.loads(line)
        op, name = request.get("op"), request.get("search")
        search, history = searches.get(name), histories.get(name)
        if search is None or history is None:
            reply(id=request.get("id"), error=f"the script has no search named {name!r} any more")
            continue
        if op == "history":
            history.extend(request["items"])
            history.running = request.get("running", history.running)
            for item in request["items"]:
                curves.pop(item.get("version"), None)
            sync = getattr(search.propose, "sync", None)
            if request.get("last") and callable(sync):  # an adapter that mirrors results (optuna_search)
                try:
                    sync(history)
                except Exception as exc:  # noqa: BLE001 - user code: say it, keep serving
                    print(f"mlpipeline: search {name}: sync() raised {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        try:
            if op == "propose":
                history.running, history.refused = request.get("running", []), request.get("refused", [])
                point = search.propose(_copy(history))  # a propose that edits its history changes nothing
                if point is None:
                    reply(id=request["id"], point=None)
                    continue
                point = check_point(point, search)
                version_name = f"{name}-{search_point_hash(point)}"
                version = versions.search_version(version_name, point)
                params = version_params(version)
                reply(id=request["id"], point=point, name=version_name, params=params,
                      params_sha256=params_digest(params))
            elif op == "stop":
                version_name = request["version"]
                curve = curves.setdefault(version_name, {})
                for metric, step, value in request.get("rows", ()):
                    curve.setdefault(metric, []).append([step, value])
                verdict = search.stopper({"version": version_name, "params": request.get("params", {}), "curves": curve},
                                         request["step"], _copy(history))
                if type(verdict).__name__ not in ("bool", "bool_"):  # numpy's bool too
                    reply(id=request["id"], error=f"stop() returned {verdict!r:.60}, not True or False")
                else:
                    reply(id=request["id"], stop=bool(verdict))
        except BaseException as exc:  # noqa: BLE001 - user code: report it, keep serving
            what = "propose" if op == "propose" else "stop"
            reply(id=request.get("id"), error=f"{what}() raised {type(exc).__name__}: {exc}",
                  traceback=user_traceback(exc))


# --- the runner's side -------------------------------------------------------------------------------------

class SearchProcess:
    """A search child and its two pipes; never blocks the runner on a write."""

    def __init__(self, script: str, cwd: str, env: Dict[str, str]):
        request_read, self._request = os.pipe()
        self._reply, reply_write = os.pipe()
        for fd in (self._request, self._reply):
            try:
                fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: the first history arrives in one write
            except OSError:
                pass
        try:
            stdout: Any = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            stdout = subprocess.DEVNULL
        self.mark = probe_mark()  # what the script starts at import ends with the search's process
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SEARCH_MAIN, script, str(request_read), str(reply_write), str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stdout, pass_fds=(request_read, reply_write),
                start_new_session=True, cwd=cwd,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1", self.mark[0]: self.mark[1]})
        finally:
            os.close(request_read)
            os.close(reply_write)
        os.set_blocking(self._request, False)
        os.set_blocking(self._reply, False)
        self._out = bytearray()
        self._in = bytearray()
        self.closed = False

    def send(self, message: Dict[str, Any]) -> None:
        self._out += json.dumps(message).encode() + b"\n"
        self.flush()

    def flush(self) -> None:
        while self._out and not self.closed:
            try:
                written = os.write(self._request, self._out)
            except BlockingIOError:
                return
            except OSError:  # the child is gone: its replies (or their absence) say so
                self._out.clear()
                return
            del self._out[:written]

    def replies(self, wait: float = 0.0) -> List[Dict[str, Any]]:
        """The replies that have arrived, waiting up to ``wait`` seconds for the first."""
        self.flush()
        if wait > 0 and b"\n" not in self._in:
            with selectors.DefaultSelector() as selector:
                selector.register(self._reply, selectors.EVENT_READ)
                selector.select(wait)
        while True:
            try:
                data = os.read(self._reply, 1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                break
            self._in += data
        cut = self._in.rfind(b"\n")
        if cut < 0:
            return []
        lines = bytes(self._in[:cut]).split(b"\n")
        del self._in[:cut + 1]
        found = []
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                found.append(message)
        return found

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, grace: float = 0.0) -> None:
        """End the child; with ``grace``, it first gets that long to act on what it was sent
        (an adapter telling its study the last results) and leave on its own."""
        if self.closed:
            return
        if grace > 0 and self.alive():
            deadline = time.monotonic() + grace
            while self._out and time.monotonic() < deadline:
                self.flush()
                time.sleep(0.01)
            os.close(self._request)  # end of input: the child's loop ends and it exits
            self._request = -1
            try:
                self.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.closed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        kill_marked(*self.mark, wait=1.0)
        for fd in (self._request, self._reply):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


def metric_key(split: str, name: str) -> str:
    return f"{split}/{name}"


class AshaRungs:
    """The ASHA rungs of one search: the values its versions had when they first
    reached each rung's step."""

    def __init__(self, spec: Dict[str, Any]):
        self.metric = str(spec["metric"])
        self.grace, self.reduction = float(spec["grace"]), float(spec["reduction"])
        self.max_t = spec.get("max_t")
        self.sign = 1.0 if spec.get("mode", "min") == "min" else -1.0  # values kept as lower-is-better
        self.values: Dict[float, List[float]] = {}
        self.reached: Dict[str, int] = {}  # version -> rungs it has passed
        self.matched: Set[str] = set()     # versions that logged the metric with a step

    def rung(self, index: int) -> Optional[float]:
        step = self.grace * self.reduction ** index
        return None if self.max_t is not None and step > self.max_t else step

    def matches(self, row: MetricRow) -> bool:
        return self.metric in (row.name, metric_key(row.split, row.name))

    def observe(self, version: str, rows: Sequence[MetricRow]) -> Optional[str]:
        """Record the version's new rows; the reason to stop it, or None to let it go on."""
        for row in rows:
            if row.step is None or row.value is None or not self.matches(row) or not math.isfinite(row.value):
                continue
            self.matched.add(version)
            while True:
                index = self.reached.get(version, 0)
                step = self.rung(index)
                if step is None or row.step < step:
                    break
                self.reached[version] = index + 1
                value = self.sign * row.value
                seen = self.values.setdefault(step, [])
                seen.append(value)
                cutoff = _percentile(sorted(seen), 1.0 / self.reduction)
                if value > cutoff:
                    return (f"pruned by ASHA at step {row.step}: {self.metric}={row.value:.4g} is not among the best "
                            f"1/{self.reduction:g} of the {len(seen)} versions that reached step {step:g}")
        return None


def _percentile(values: List[float], fraction: float) -> float:
    """The value ``fraction`` of the way through sorted ``values`` (linear, as numpy's default)."""
    position = fraction * (len(values) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


class SearchState:
    """The runner's side of one search in one batch."""

    def __init__(self, rel: str, path: str, info: Any, decl: Dict[str, Any], budget: int):
        self.rel, self.path, self.info, self.decl = rel, path, info, decl
        self.name: str = decl["name"]
        self.budget, self.parallel = budget, int(decl["parallel"])
        self.history: List[Dict[str, Any]] = []
        self.sent = 0                          # history items the child has
        self.tried: Set[str] = set()           # versions started or finished (not to be proposed again)
        self.running: Set[str] = set()
        self.resume: List[Tuple[str, Dict[str, Any], str]] = []  # (name, params, sha256) interrupted: run again
        self.asked: Optional[int] = None       # the id of the proposal asked for
        self.ready: Optional[Dict[str, Any]] = None
        self.refused: List[Dict[str, Any]] = []
        self.held = False                      # propose() gave a running point: ask again once a result is in
        self.ended: Optional[str] = None       # why it proposes no more
        stopper = decl.get("stopper") or {}
        self.asha = AshaRungs(stopper) if stopper.get("kind") == "asha" else None
        self.stop_function = stopper.get("kind") == "function"
        self.stop_asked: Dict[str, int] = {}   # version -> the id of the stop() question out for it
        self.stop_rows: Dict[str, List[List[Any]]] = {}  # rows not yet sent with a stop() question
        self.stop_step: Dict[str, int] = {}    # the last step asked about
        self.stop_broken: Set[str] = set()     # versions whose stop() failed: not asked again

    @property
    def key(self) -> Tuple[str, str]:
        return (self.rel, self.name)

    def spent(self) -> int:
        return len(self.tried)

    def wants(self) -> bool:
        """Can another version of this search start now?"""
        return self.ended is None and len(self.running) < self.parallel and \
            (bool(self.resume) or (self.spent() < self.budget and not self.held))

    def done(self) -> bool:
        return not self.running and (self.ended is not None or (self.spent() >= self.budget and not self.resume))

    def load(self, runs: Sequence[Any], metrics: Dict[int, Dict[str, float]], curves: Dict[int, List[MetricRow]]) -> None:
        """Take up where earlier batches left this search (``-u``): their finished
        versions are its history; a point whose only runs were interrupted runs again."""
        finished: Dict[str, Any] = {}
        interrupted: Dict[str, Any] = {}
        for run in runs:  # oldest first
            name = run["version"]
            if run["status"] == "interrupted":
                interrupted.setdefault(name, run)
                continue
            finished[name] = run
            self.history.append(self.item(name, json.loads(run["params"] or "{}"), run["status"],
                                          metrics.get(run["id"], {})))
            if self.asha is not None:
                self.asha.observe(name, curves.get(run["id"], []))
        self.tried.update(finished)
        for name, run in interrupted.items():
            if name not in finished:
                self.resume.append((name, json.loads(run["params"] or "{}"), run["params_sha256"] or ""))
                self.tried.add(name)

    def point(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """What a point set: a version's parameters less those of the search's template."""
        template = self.decl.get("template") or {}
        return {k: v for k, v in params.items() if k != "name" and template.get(k, object()) != v}

    def item(self, name: str, params: Dict[str, Any], status: str, metrics: Dict[str, float]) -> Dict[str, Any]:
        return {"version": name, "params": self.point(params), "status": status, "metrics": metrics}

    def spec(self, name: str, params: Dict[str, Any], params_sha256: str) -> VersionSpec:
        from . import repro

        info = self.info
        return VersionSpec(script=self.path, rel=self.rel, version=name, params=params,
                           params_sha256=params_sha256, fingerprint=getattr(info, "fingerprint", "") or info.sha256,
                           script_sha256=info.sha256, seed=repro.seed_of(params))

    def history_messages(self) -> List[Dict[str, Any]]:
        """The history the child does not have yet, in lines of a bounded size."""
        new = self.history[self.sent:]
        self.sent = len(self.history)
        chunks = [new[i:i + HISTORY_CHUNK] for i in range(0, len(new), HISTORY_CHUNK)]
        return [{"op": "history", "search": self.name, "items": chunk, "running": sorted(self.running),
                 "last": i == len(chunks) - 1} for i, chunk in enumerate(chunks)]


class SearchDriver:
    """The runner's searches: asks for points, applies stoppers, keeps history.

    The runner calls ``step(slot)`` where its queue reaches a search, ``poll()``
    every loop, ``metrics`` with each running point's new rows and ``finished``
    when one ends."""

    def __init__(self, runner: Any):
        self.runner = runner
        self.states: Dict[Tuple[str, str], SearchState] = {}
        self.processes: Dict[str, Tuple[str, SearchProcess]] = {}  # script path -> (sha256, its child)
        self.items: List[Any] = []                                 # points started in this batch, in order
        self.of: Dict[Tuple[str, str], Tuple[SearchState, Any]] = {}  # a point's key -> its search and item
        # id -> (search, op, version, when asked): the questions not answered yet
        self._asks: Dict[int, Tuple[SearchState, str, Optional[str], float]] = {}
        self._next_id = 1
        self._changed = False  # an answer arrived since the runner last asked (it may have come mid-step)
        self._said: Set[Tuple[str, ...]] = set()  # warnings given once

    # -- the queue reaches a search ---------------------------------------------------------

    def step(self, slot: Any) -> Any:
        """A QueueItem to start now, "wait" (a proposal is on its way: nothing
        after the search starts before it) or None (the search needs no slot now)."""
        state = self._state(slot)
        if not state.wants():
            return None
        if state.resume:
            name, params, sha = state.resume.pop(0)
            return self._item(state, name, params, sha)
        while state.ready is None and state.asked is None and state.ended is None and not state.held:
            # a refusal asks again
            self._ask(state)
            self.poll(ASK_WAIT)
        if state.ready is not None:
            ready, state.ready = state.ready, None
            return self._item(state, ready["name"], ready["params"], ready["params_sha256"])
        return "wait" if state.asked is not None else None

    def _state(self, slot: Any) -> SearchState:
        state = self.states.get(slot.key)
        budget = 1 if self.runner.options.test_mode else int(slot.decl["budget"])
        if state is None:
            state = self.states[slot.key] = SearchState(slot.rel, slot.path, slot.info, slot.decl, budget)
            if self.runner.options.use_history and not self.runner.options.test_mode:
                self._load(state)
        else:  # the script was edited: a new budget or parallel takes effect, the history stays
            state.info, state.decl = slot.info, slot.decl
            state.budget, state.parallel = budget, int(slot.decl["parallel"])
        return state

    def _load(self, state: SearchState) -> None:
        from .sweeps import is_point_name

        fingerprint = getattr(state.info, "fingerprint", "") or state.info.sha256
        runs = [r for r in search_runs(self.runner.ledger.conn, state.rel, state.name, fingerprint)
                if is_point_name(state.name, r["version"])]
        metrics = self._metrics([r["id"] for r in runs])
        curves: Dict[int, List[MetricRow]] = {}
        if state.asha is not None and runs:
            for run_id, split, name, step, value in self._rows(
                    "SELECT run_id, split, name, step, value FROM metrics WHERE run_id IN ({}) AND step IS NOT NULL "
                    "ORDER BY run_id, step, rowid", [r["id"] for r in runs]):
                curves.setdefault(run_id, []).append(MetricRow(name, value, step, split))
        state.load(runs, metrics, curves)

    def _rows(self, query: str, ids: List[int]) -> List[Any]:
        found: List[Any] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            found += self.runner.ledger.conn.execute(query.format(",".join("?" * len(chunk))), chunk).fetchall()
        return found

    def _metrics(self, ids: List[int]) -> Dict[int, Dict[str, float]]:
        metrics: Dict[int, Dict[str, float]] = {}
        for run_id, split, name, last in self._rows(
                "SELECT run_id, split, name, CASE WHEN has_final THEN final ELSE last END FROM metric_summary "
                "WHERE run_id IN ({})", ids):
            metrics.setdefault(run_id, {})[metric_key(split, name)] = last
        return metrics

    def _item(self, state: SearchState, name: str, params: Dict[str, Any], sha: str) -> Any:
        from .queue import QueueItem

        item = QueueItem(state.spec(name, params, sha), state.info)
        state.tried.add(name)
        state.running.add(name)
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
        env: Dict[str, str] = {"MLPIPELINE_MODE": "test" if self.runner.options.test_mode else "run"}
        if not self.runner.options.test_mode:  # a later runner's sweep ends it if this one could not
            from .execution.local import project_mark
            from .procs import MARK_PROJECT

            env[MARK_PROJECT] = project_mark(self.runner.project.root)
        process = SearchProcess(state.path, self.runner.project.root, env)
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
        self._asks[ask] = (state, op, version, time.monotonic())
        if op == "propose":
            state.asked = ask
        return ask

    def _ask(self, state: SearchState) -> None:
        self._send(state, {"running": sorted(state.running), "refused": state.refused}, "propose")

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
        now = time.monotonic()
        late = [(ask, entry) for ask, entry in self._asks.items() if now - entry[3] > ANSWER_LIMIT]
        for ask, (state, op, version, _) in late:
            if self._asks.pop(ask, None) is None:
                continue
            if op == "stop" and version is not None:
                state.stop_asked.pop(version, None)
            known = self.processes.pop(state.path, None)
            if known is not None:
                known[1].close()
            self._fail(state, f"{op}() did not answer within {ANSWER_LIMIT:g} s (the search's process loads the "
                              f"script, then calls it); its process was ended", "")
            for other, entry in list(self._asks.items()):  # what else waited on that process is gone with it
                if entry[0].path == state.path:
                    del self._asks[other]
                    if entry[1] == "propose":
                        entry[0].asked = None
                    elif entry[2] is not None:
                        entry[0].stop_asked.pop(entry[2], None)
        return bool(late)

    def _lost(self, path: str, process: SearchProcess) -> bool:
        """The search child exited: the searches waiting on it end with an error."""
        waiting = [(ask, entry) for ask, entry in self._asks.items() if entry[0].path == path]
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
                self.runner.say(f"{state.rel} {version}: {reply['error']}; the version goes on, without stop()", 40)
            elif reply.get("stop"):
                self.runner.prune(state.rel, version, f"pruned by the search's stop() at step "
                                                      f"{state.stop_step.get(version)}")
            return False
        state.asked = None
        if "error" in reply:
            self._fail(state, reply["error"], reply.get("traceback") or "")
        elif reply.get("point") is None:
            state.ended = "propose() returned None"
            self.runner.say(f"{state.rel} {state.name}: the search ended: propose() returned None after "
                            f"{state.spent()} points")
        elif reply["name"] in state.running:
            # A propose() that reads only finished results (deterministic) repeats a point still running:
            # asking again now would get the same answer, so the search waits for the next result instead.
            state.held = True
        elif reply["name"] in state.tried:
            state.refused.append(reply["point"])
            if len(state.refused) >= REFUSALS:
                state.ended = f"propose() returned only points already tried, {REFUSALS} times in a row"
                self.runner.say(f"{state.rel} {state.name}: the search ended: {state.ended}", 30)
        else:
            state.ready, state.refused = reply, []
        return True

    def _once(self, key: Tuple[str, ...], message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.runner.say(message, 30)

    def _fail(self, state: SearchState, error: str, traceback: str) -> None:
        state.asked = None
        state.ended = error
        self.runner.search_failed(state.rel, state.name, state.info.sha256, f"{state.rel} {state.name}: {error}",
                                  traceback)

    # -- running points -------------------------------------------------------------------------

    def metrics(self, key: Tuple[str, str], rows: Sequence[MetricRow]) -> None:
        known = self.of.get(key)
        if known is None or key[1] not in known[0].running:
            return
        state, item = known
        version = key[1]
        if state.asha is not None:
            reason = state.asha.observe(version, rows)
            if reason is not None:
                self.runner.prune(state.rel, version, reason)
            return
        if not state.stop_function or version in state.stop_broken:
            return
        pending = state.stop_rows.setdefault(version, [])
        steps = [r.step for r in rows if r.step is not None]
        pending += [[metric_key(r.split, r.name), r.step, r.value] for r in rows if r.step is not None]
        if not steps or version in state.stop_asked or max(steps) <= state.stop_step.get(version, -1):
            return
        state.stop_step[version] = step = max(steps)
        state.stop_asked[version] = self._send(
            state, {"version": version, "step": step, "rows": pending, "params": state.point(dict(item.spec.params))},
            "stop", version)
        state.stop_rows[version] = []

    def finished(self, key: Tuple[str, str], run_id: int, status: str, again: bool) -> None:
        """A point ended (``again``: its node was lost and it runs again)."""
        known = self.of.get(key)
        if known is None:
            return
        state, item = known
        version = key[1]
        state.running.discard(version)
        state.held = False  # a new result: propose() may answer differently now
        for table in (state.stop_rows, state.stop_step, state.stop_asked):
            table.pop(version, None)
        if state.asha is not None and version not in state.asha.matched and status == "succeeded":
            self._once((state.rel, state.name, "asha"),
                       f"{state.rel} {state.name}: asha({state.asha.metric!r}) pruned nothing: {version} logged no "
                       f"{state.asha.metric!r} with a step; log it with self.log_metric(name, value, step=...) or fix "
                       f"the name")
        if again:
            state.resume.append((version, dict(item.spec.params), item.spec.params_sha256))
        elif status != "interrupted":
            state.history.append(state.item(version, dict(item.spec.params), status,
                                            self._metrics([run_id]).get(run_id, {})))
            child = self.processes.get(state.path)
            if child is not None and child[1].alive():  # now: an adapter mirrors results as they come
                for message in state.history_messages():
                    child[1].send(message)

    # -- what the queue shows ----------------------------------------------------------------------

    def row(self, slot: Any) -> Tuple[str, str]:
        state = self.states.get(slot.key)
        budget = 1 if self.runner.options.test_mode else slot.decl["budget"]
        if state is None:
            return "queued", f"search: up to {budget} points, {slot.decl['parallel']} at a time"
        if state.done():
            return "finished", f"search: {state.spent()} points tried; {state.ended or 'its budget is spent'}"
        return ("running" if state.running else "queued",
                f"search: {state.spent()} of {state.budget} points tried, {len(state.running)} running")

    def ended(self) -> List[str]:
        """Each search that proposes no more: ``script name: why``."""
        return [f"{state.rel} {state.name}: {state.ended or f'its budget of {state.budget} points is spent'}"
                for state in self.states.values() if state.done()]

    def waiting(self) -> bool:
        return any(state.asked is not None for state in self.states.values())

    def left(self) -> bool:
        return any(state.wants() for state in self.states.values())

    def close(self, grace: float = CLOSE_GRACE) -> None:
        for _, process in self.processes.values():
            process.close(grace)
        self.processes.clear()
