"""A search as a whole, read from the ledger: its points in the order they started, each
point's parameters and its value of a chosen metric, the best so far, and the ASHA rungs
(which points stopped at which step, with their values).

A search's points are the versions named ``<search>-<8 hex>`` (``add_search``, and
``add_random``'s ``r-...``); ``search=None`` takes every version of the script, so a grid
or any set of hand-written versions reads the same way. Each version counts once, by the
run ``compare`` chooses for it (its latest success, else its last run).
"""
from __future__ import annotations

import bisect
import json
import math
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..core.errors import UsageError
from ..core.lifecycle import SYSTEM_SPLIT, RunStatus
from ..core.text import iso
from ..script.space import HASH_LEN, is_point_name
from ..store.liveness import Liveness
from ..store.reader import Reader
from .queries import LOWER_IS_BETTER, _compared_script, _test_first, flatten

POINT_NAME = re.compile(r"^([A-Za-z0-9_.]+)-[0-9a-f]{%d}$" % HASH_LEN)
ASHA_REASON = re.compile(r"pruned by ASHA at step (\d+): (\S+?)=")
ALL = "all"  # the search name that stands for every version of the script


def search_names(versions: Sequence[str]) -> List[str]:
    """The searches (and random sweeps) whose points are among ``versions``, most points first."""
    counts = Counter(m.group(1) for m in map(POINT_NAME.match, versions) if m)
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _label(split: str, name: str) -> str:
    return f"{split}/{name}"


def load_points(ledger: Reader, script: str, search: Optional[str] = None) -> Dict[str, Any]:
    """The points of ``search`` in ``script`` (None or ``"all"``: every version), oldest start first:
    ``{"script", "search", "searches", "points": [{"index", "version", "run", "status", "started_at",
    "params" (flattened, the version's name left out), "metrics": {"split/name": value}}]}`` where a
    metric's value is its result, else its curve's last value."""
    script = _compared_script(ledger, script)
    chosen = ledger.latest_runs_per_version(script)
    if not chosen:
        raise UsageError(f"search {script!r}: only test-mode runs so far; run it with mlpipeline -r")
    names = search_names(list(chosen))
    search = None if search in (None, "", ALL) else search
    if search is not None:
        chosen = {v: r for v, r in chosen.items() if is_point_name(search, v)}
        if not chosen:
            raise UsageError(f"search {search!r}: {script} has no points of it (searches with runs: "
                             f"{', '.join(names) or 'none'}; {ALL!r} takes every version)")
    liveness = Liveness(ledger)
    rows = sorted((liveness.derive(r) for r in ledger.runs(list(chosen.values()))),
                  key=lambda r: (r["started_at"] is None, r["started_at"] or 0, r["id"]))
    values = ledger.run_metrics([r["id"] for r in rows])
    points = []
    for index, row in enumerate(rows):
        params = flatten(json.loads(row["params"] or "{}"))
        params.pop("name", None)
        metrics = {_label(*key): value for key, value in values.get(row["id"], {}).items() if key[0] != SYSTEM_SPLIT}
        points.append({"index": index, "version": row["version"], "run": row["id"], "status": row["status"],
                       "started_at": row["started_at"], "error": row["error"], "params": params, "metrics": metrics})
    return {"script": script, "search": search, "searches": names, "points": points}


def varying(points: Sequence[Dict[str, Any]]) -> List[str]:
    """The parameter keys whose values are not the same at every point (a key some lack varies)."""
    keys = sorted({k for p in points for k in p["params"]})

    def text(point: Dict[str, Any], key: str) -> str:
        return json.dumps(point["params"][key], sort_keys=True, default=str) if key in point["params"] else "\0"
    return [k for k in keys if len({text(p, k) for p in points}) > 1]


def choose_metric(points: Sequence[Dict[str, Any]], metric: Optional[str]) -> str:
    """``metric`` as a ``split/name`` label the points have (a bare name matches any split, test
    first); without one, the first label the finished points have, test results first."""
    labels = sorted({m for p in points for m in p["metrics"]}, key=_test_first)
    if not labels:
        raise UsageError("no point of this search recorded a metric yet")
    if not metric:
        done = [m for m in labels if any(m in p["metrics"] for p in points
                                         if p["status"] == RunStatus.SUCCEEDED.value)]
        return (done or labels)[0]
    found = [m for m in labels if m == metric or m.split("/", 1)[1] == metric]
    if not found:
        raise UsageError(f"metric {metric!r}: no point recorded it (metrics: {', '.join(labels[:20])})")
    return found[0]


def lower_is_better(metric: str, goal: Optional[str] = None) -> bool:
    """Whether a lower value of ``metric`` is better: ``goal`` (min or max) when given, else its
    name (a loss, an error, a time...)."""
    if goal not in (None, "", "min", "max"):
        raise UsageError(f"goal={goal!r}: min or max")
    return goal == "min" if goal else bool(LOWER_IS_BETTER.search(metric.split("/", 1)[-1]))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def search_detail(ledger: Reader, script: str, search: Optional[str] = None, metric: Optional[str] = None,
                  goal: Optional[str] = None, rung_metric: Optional[str] = None) -> Dict[str, Any]:
    """Everything the search page draws: the points (start order) with the parameters that vary
    and their value of ``metric``, the best so far after each point (finished points only), the
    best point, and the ASHA rungs (None when no point was pruned)."""
    loaded = load_points(ledger, script, search)
    points = loaded["points"]
    metric = choose_metric(points, metric)
    lower = lower_is_better(metric, goal)
    keys = varying(points)
    shown, best_so_far, best = [], [], None
    for point in points:
        value = point["metrics"].get(metric)
        value = value if _finite(value) else None
        if value is not None and point["status"] == RunStatus.SUCCEEDED.value and (
                best is None or (value < best["value"] if lower else value > best["value"])):
            best = {"index": point["index"], "version": point["version"], "run": point["run"], "value": value,
                    "params": {k: point["params"].get(k) for k in keys}}
        best_so_far.append(best["value"] if best else None)
        shown.append({"index": point["index"], "version": point["version"], "run": point["run"],
                      "status": point["status"], "started": iso(point["started_at"]), "value": value,
                      "params": {k: point["params"][k] for k in keys if k in point["params"]}})
    labels = sorted({m for p in points for m in p["metrics"]}, key=_test_first)
    return {"script": loaded["script"], "search": loaded["search"] or ALL, "searches": loaded["searches"],
            "metric": metric, "metrics": labels, "lower_is_better": lower, "params": keys,
            "kinds": {k: _kind([p["params"].get(k) for p in points if k in p["params"]]) for k in keys},
            "points": shown, "best_so_far": best_so_far, "best": best,
            "counts": dict(Counter(p["status"] for p in points)),
            "rungs": asha_rungs(ledger, points, metric, rung_metric)}


def _kind(values: Sequence[Any]) -> str:
    """``number`` when every value is a number, else ``category``."""
    return "number" if values and all(_finite(v) for v in values) else "category"


def _rung_curve(ledger: Reader, points: Sequence[Dict[str, Any]], reasons: Sequence[Tuple[int, str]],
                chosen: str, asked: Optional[str]) -> Optional[Tuple[str, str]]:
    """The (split, name) of the curve the stopper read: ``asked``, else the one ASHA's reasons
    name, else the chosen metric's curve, else the first curve a pruned point recorded."""
    keys = ledger.metric_keys([p["run"] for p in points if p["status"] == RunStatus.PRUNED.value])
    keys = [k for k in keys if k[0] != SYSTEM_SPLIT]
    named = [asked] if asked else [m for m, _ in Counter(metric for _, metric in reasons).most_common()]
    for wanted in [*named, chosen]:
        for split, name in keys:
            if wanted in (name, _label(split, name)):
                return split, name
    return keys[0] if keys else None


def asha_rungs(ledger: Reader, points: Sequence[Dict[str, Any]], metric: str,
               rung_metric: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """Where the stopper ended points: the rung steps (the steps pruned points stopped at: ASHA's
    reason names it, else the curve's last step) and, per rung, each point that reached it with its
    value there and whether it stopped there or went on; per point, the step it stopped at."""
    pruned = [p for p in points if p["status"] == RunStatus.PRUNED.value]
    if not pruned:
        return None
    reasons: Dict[int, Tuple[int, str]] = {}
    for point in pruned:
        match = ASHA_REASON.search(point["error"] or "")
        if match:
            reasons[point["run"]] = (int(match.group(1)), match.group(2))
    curve = _rung_curve(ledger, points, list(reasons.values()), metric, rung_metric)
    if curve is None:
        return {"metric": None, "steps": [], "rungs": [], "stops": [],
                "note": "the pruned points recorded no curve"}
    by_run: Dict[int, List[Tuple[int, float]]] = {}
    for run_id, step, value in ledger.metric_points([p["run"] for p in points], *curve):
        if value is not None:
            by_run.setdefault(run_id, []).append((step, value))
    stops: List[Dict[str, Any]] = []
    for point in pruned:
        series = by_run.get(point["run"])
        stop = reasons[point["run"]][0] if point["run"] in reasons else (series[-1][0] if series else None)
        if stop is not None:
            stops.append({"index": point["index"], "version": point["version"], "run": point["run"], "step": stop,
                          "value": _at(series or [], stop)})
    steps = sorted({s["step"] for s in stops})
    stopped_at = {s["run"]: s["step"] for s in stops}
    rungs = []
    for step in steps:
        reached = []
        for point in points:
            series = by_run.get(point["run"])
            if not series or series[-1][0] < step or stopped_at.get(point["run"], step) < step:
                continue
            reached.append({"index": point["index"], "version": point["version"], "run": point["run"],
                            "value": _at(series, step), "stopped": stopped_at.get(point["run"]) == step})
        rungs.append({"step": step, "reached": len(reached), "stopped": sum(r["stopped"] for r in reached),
                      "points": reached})
    return {"metric": _label(*curve), "steps": steps, "rungs": rungs, "stops": stops}


def _at(series: Sequence[Tuple[int, float]], step: int) -> Optional[float]:
    """The value of a (step, value) series at ``step``: its last point at or before it."""
    at = bisect.bisect_right(series, (step, math.inf))
    return series[at - 1][1] if at else None
