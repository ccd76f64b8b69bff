"""A search's child process (``run.search`` starts it, one per script): load the script once,
then answer the runner's questions — ``propose`` a point, ``stop`` a running one — one JSON
line each way over two pipes. It keeps nothing the runner cannot send again:

- ``{"op": "history", "search", "items", "running", "last"}``: finished points to add to the
  search's history (no answer);
- ``{"op": "propose", "search", "id", "running", "refused"}`` → ``{"id", "point", "point_id",
  "name", "params", "params_sha256"}`` (``point`` None: the search has no more to try) or
  ``{"id", "error", "traceback"}``;
- ``{"op": "stop", "search", "id", "version", "point_id", "step", "rows", "params"}`` →
  ``{"id", "stop"}``.

A point is known by its ``point_id`` (``space.search_point_hash`` of its parameters), made
here once when it is proposed and carried with it from then on (history items, questions):
nobody parses it back out of a version's name."""
from __future__ import annotations

import json
import os
import select
import sys
from typing import Any, Callable, Dict, Iterator, List

from ..proc.outcome import failure, user_traceback
from ..proc.system import die_with_parent, leave_now

CHILD_MAIN = "import sys; del sys.path[0]; from mlpipeline.script.search_child import serve; serve(sys.argv[1:])"


class History(list):
    """What ``propose`` and ``stop`` receive: the search's finished points, oldest first, each a
    dict with ``version`` (its name), ``point`` (its id), ``params`` (what the point set),
    ``status`` (``succeeded``, ``failed``, ``pruned``, ``timeout``, ``interrupted``,
    ``cancelled``) and ``metrics`` (``{"split/name": value}``). ``running`` names the versions of
    the search still running (``running_points``: their ids); ``refused``, the points last
    proposed that had been tried."""

    running: List[str] = []
    running_points: List[str] = []
    refused: List[Dict[str, Any]] = []


def _copy(history: History) -> History:
    copied = History(history)
    copied.running, copied.refused = list(history.running), list(history.refused)
    copied.running_points = list(history.running_points)
    return copied


def _lines(fd: int, idle: Callable[[], bool]) -> Iterator[str]:
    """The request lines on ``fd`` until it closes; while none waits, ``idle()`` is called until
    it says nothing is left to do (an adapter's bookkeeping)."""
    pending = b""
    busy = True
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode("utf-8", "replace")
        if busy and not select.select([fd], [], [], 0)[0]:
            busy = idle()
            continue
        data = os.read(fd, 1 << 20)
        if not data:
            return
        pending += data
        busy = True


def _do_chores(chores: List[Callable[[], bool]]) -> bool:
    """One step of each adapter's idle bookkeeping; whether any has more."""
    more = False
    for chore in chores:
        try:
            more = bool(chore()) or more
        except Exception as exc:  # noqa: BLE001 - bookkeeping of user-facing state: say it, keep serving
            print(f"mlpipeline: a search's idle bookkeeping raised {type(exc).__name__}: {exc}", file=sys.stderr)
    return more


def serve(argv: List[str]) -> None:
    """Child entry: ``SCRIPT REQUEST_FD REPLY_FD PARENT_PID``."""
    from .loading import get_model, load_module
    from .space import check_point, point_version, search_point_hash
    from .versions import params_digest, version_params

    path, requests, replies, parent = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    die_with_parent(parent)
    out = os.fdopen(replies, "w", buffering=1)

    def reply(**fields: Any) -> None:
        out.write(json.dumps(fields) + "\n")

    try:
        module = load_module(path)
        versions = get_model(module, path).versions
    except BaseException as exc:  # noqa: BLE001 - the script (its own code) failed while loading
        failed = failure(exc)
        reply(error=failed.error, traceback=failed.traceback or "")
        return
    searches = versions.searches
    histories: Dict[str, History] = {name: History() for name in searches}
    curves: Dict[str, Dict[str, List[List[Any]]]] = {}
    chores = [hook for hook in (getattr(s.propose, "idle", None) for s in searches.values()) if callable(hook)]
    for line in _lines(requests, lambda: _do_chores(chores)):
        request = json.loads(line)
        op, name = request.get("op"), request.get("search")
        search, history = searches.get(name), histories.get(name)
        if search is None or history is None:
            reply(id=request.get("id"), error=f"the script has no search named {name!r} any more")
            continue
        if op == "history":
            history.extend(request["items"])
            history.running = request.get("running", history.running)
            history.running_points = request.get("running_points", history.running_points)
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
                history.running_points = request.get("running_points", [])
                point = search.propose(_copy(history))  # a propose that edits its history changes nothing
                if point is None:
                    reply(id=request["id"], point=None)
                    continue
                point = check_point(point, search)
                point_id = search_point_hash(point)
                version_name = point_version(name, point_id)
                version = versions.search_version(version_name, point)
                params = version_params(version)
                reply(id=request["id"], point=point, point_id=point_id, name=version_name, params=params,
                      params_sha256=params_digest(params))
            elif op == "stop":
                version_name = request["version"]
                curve = curves.setdefault(version_name, {})
                for metric, step, value in request.get("rows", ()):
                    curve.setdefault(metric, []).append([step, value])
                verdict = search.stopper({"version": version_name, "point": request.get("point_id"),
                                          "params": request.get("params", {}), "curves": curve},
                                         request["step"], _copy(history))
                if type(verdict).__name__ not in ("bool", "bool_"):  # numpy's bool too
                    reply(id=request["id"], error=f"stop() returned {verdict!r:.60}, not True or False")
                else:
                    reply(id=request["id"], stop=bool(verdict))
        except BaseException as exc:  # noqa: BLE001 - user code: report it, keep serving
            what = "propose" if op == "propose" else "stop"
            reply(id=request.get("id"), error=f"{what}() raised {type(exc).__name__}: {exc}",
                  traceback=user_traceback(exc))
    out.flush()
    while _do_chores(chores):
        pass
    leave_now(0)  # the runner closed its end: leave now (a study's last tell is written), without the
    # interpreter's slow teardown of what the script imported, which the runner's close would wait out
