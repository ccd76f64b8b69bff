"""Seeds: versions whose parameters differ only in a seed (a parameter named ``seed``, or one
the user names) are one configuration run several times, read as a mean and a standard
deviation — per final metric in ``compare`` and on the compare page, and as a band (mean ±
std at each step) around the mean curve on its charts."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..core.errors import UsageError
from ..core.lifecycle import SYSTEM_SPLIT
from ..store.reader import Reader
from .queries import LOWER_IS_BETTER, _decimated, compare_detail, compare_versions, metric_curves, spread
from .search import search_names

SEED = "seed"


def _config(params: Dict[str, Any], seed_param: str) -> Optional[str]:
    """The parameters bar the name and the seed, as one text; None without a seed."""
    if seed_param not in params:
        return None
    return json.dumps({k: v for k, v in params.items() if k not in ("name", seed_param)}, sort_keys=True,
                      default=str)


def seed_groups(versions: Sequence[Dict[str, Any]], seed_param: str = SEED,
                metrics: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """The groups of two or more ``versions`` (``{"version", "run", "params", "metrics"}``, params
    flattened) alike in every parameter but ``seed_param``, in the order their first version
    comes: ``{"versions", "runs", "seeds", "params" (what they share), "metrics": {label: {"mean",
    "std", "n"}}}`` over ``metrics`` (default: every label they have)."""
    found: Dict[str, List[Dict[str, Any]]] = {}
    for version in versions:
        key = _config(version["params"], seed_param)
        if key is not None:
            found.setdefault(key, []).append(version)
    groups = []
    for key, members in found.items():
        if len(members) < 2:
            continue
        labels = metrics if metrics is not None else sorted({m for v in members for m in v["metrics"]})
        stats = {m: spread([v["metrics"].get(m) for v in members]) for m in labels}
        groups.append({"versions": [v["version"] for v in members], "runs": [v["run"] for v in members],
                       "seeds": [v["params"][seed_param] for v in members], "params": json.loads(key),
                       "metrics": {m: s for m, s in stats.items() if s["n"]}})
    return groups


def band(curves: Sequence[Dict[str, Any]], max_points: Optional[int] = 2000) -> Dict[str, Any]:
    """Mean and sample std at each step of several runs' curves (``{"steps", "values"}``, each
    whole): ``{"steps", "mean", "std", "n"}``, over the runs that have a finite value at that
    step, decimated on the mean to ``max_points``."""
    at: Dict[Any, List[float]] = {}
    for curve in curves:
        for step, value in zip(curve["steps"], curve["values"]):
            if value is not None and math.isfinite(value):
                at.setdefault(step, []).append(value)
    steps = sorted(at)
    stats = [spread(at[s]) for s in steps]
    mean = [s["mean"] for s in stats]
    keep = _decimated(mean, max_points) if max_points is not None and len(steps) > max_points else range(len(steps))
    return {"steps": [steps[i] for i in keep], "mean": [mean[i] for i in keep],
            "std": [stats[i]["std"] for i in keep], "n": [stats[i]["n"] for i in keep]}


def add_seed_groups(ledger: Reader, detail: Dict[str, Any], seed_param: str = SEED,
                    max_points: int = 2000) -> Dict[str, Any]:
    """``detail`` (``compare_detail``'s) with ``seed_param`` and ``seed_groups``: the groups of its
    versions that differ only in the seed, each metric's mean and std, and with a chart metric, a
    band per split of that metric's curves (``curves``: ``[{"split", "name", "steps", "mean",
    "std", "n"}]``)."""
    groups = seed_groups(detail["versions"], seed_param, detail["metrics"])
    chart = detail.get("chart") or detail.get("metric")
    for group in groups:
        group["curves"] = []
        if not chart:
            continue
        by_split: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
        for run_id in group["runs"]:
            for curve in metric_curves(ledger, run_id, None, name=chart):
                by_split.setdefault((curve["split"], curve["name"]), []).append(curve)
        group["curves"] = [{"split": split, "name": name, **band(curves, max_points)}
                           for (split, name), curves in sorted(by_split.items())]
    detail["seed_param"], detail["seed_groups"] = seed_param, groups
    return detail


def compare_view(ledger: Reader, script: str, metric: Optional[str] = None, seed_param: str = SEED,
                 max_points: int = 2000) -> Dict[str, Any]:
    """What the compare page shows: ``compare_detail``'s, charting the first training curve (else the
    first metric) recorded when none is named (``chart``), with the seed groups (``add_seed_groups``), the best value of each
    metric over the versions (``best``) and over the seed groups' means (``best_mean``), and the
    searches whose points are among the versions (``searches``)."""
    detail = compare_detail(ledger, script, metric=metric, max_points=max_points)
    detail["chart"] = metric
    if not metric:
        curves = {f"{split}/{name}" for values in ledger.curve_last([v["run"] for v in detail["versions"]]).values()
                  for split, name in values}
        names = [m for m in detail["curve_names"] if not m.startswith(SYSTEM_SPLIT + "/")]
        chart = next((m for m in names if m in curves), names[0] if names else None)
        if chart:
            for version in detail["versions"]:
                version["curves"] = metric_curves(ledger, version["run"], max_points, name=chart)
        detail["chart"] = chart
    add_seed_groups(ledger, detail, seed_param, max_points)
    detail["best"] = {m: best([v["metrics"].get(m) for v in detail["versions"]], m) for m in detail["metrics"]}
    detail["best_mean"] = {m: best([g["metrics"].get(m, {}).get("mean") for g in detail["seed_groups"]], m)
                           for m in detail["metrics"]}
    detail["searches"] = search_names([v["version"] for v in detail["versions"] if v["version"]])
    return detail


def best(values: Sequence[Optional[float]], metric: str) -> Optional[float]:
    """The best of the finite ``values`` of ``metric``: the lowest of a loss, an error, a time...,
    else the highest; None when fewer than two differ (nothing to mark)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(set(finite)) < 2:
        return None
    return min(finite) if LOWER_IS_BETTER.search(metric.split("/", 1)[-1]) else max(finite)


def compare_by_seed(ledger: Reader, script: str, metric: Optional[str] = None, sort: Optional[str] = None,
                    descending: bool = False, seed_param: str = SEED) -> Tuple[List[str], List[Dict[str, Any]]]:
    """``compare_versions``'s rows, with the versions that differ only in ``seed_param`` as one row
    each: ``version`` lists them, ``runs`` counts them, ``seed_param`` lists their seeds, and each
    metric column is their mean with its sample std in the column ``"<metric> std"``. Unchanged when no
    two versions differ only in the seed."""
    columns, rows = compare_versions(ledger, script, metric=metric)
    if seed_param not in columns:
        return _sorted(columns, rows, sort, descending)
    params = set()
    for run in ledger.runs([r["run"] for r in rows]):
        params.update(_flat_keys(json.loads(run["params"] or "{}")))
    fixed = ("version", "run", "status")
    metrics = [c for c in columns if c not in fixed and c not in params and c not in ("data", "data fingerprint")]
    config = [c for c in columns if c not in fixed and c not in metrics and c != seed_param]
    found: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        key = json.dumps([row.get(c) for c in config], default=str) if row.get(seed_param) is not None else \
            f"\0{row['run']}"
        found.setdefault(key, []).append(row)
    if all(len(members) < 2 for members in found.values()):
        return _sorted(columns, rows, sort, descending)
    grouped = []
    for members in found.values():
        row = {"version": [m["version"] for m in members], "runs": len(members),
               seed_param: [m.get(seed_param) for m in members],
               "status": sorted({m["status"] for m in members})}
        row.update({c: members[0].get(c) for c in config})
        for m in metrics:
            stats = spread([r.get(m) for r in members])
            row[m], row[f"{m} std"] = stats["mean"], stats["std"]
        grouped.append(row)
    shown = ["version", "runs", "status", seed_param, *config]
    for m in metrics:
        shown += [m, f"{m} std"]
    return _sorted(shown, grouped, sort, descending)


def _flat_keys(params: Dict[str, Any], prefix: str = "") -> List[str]:
    keys = []
    for key, value in params.items():
        if isinstance(value, dict) and value:
            keys += _flat_keys(value, f"{prefix}{key}.")
        keys.append(f"{prefix}{key}")
    return keys


def _sorted(columns: List[str], rows: List[Dict[str, Any]], sort: Optional[str],
            descending: bool) -> Tuple[List[str], List[Dict[str, Any]]]:
    """Rows sorted by the column ``sort`` names (the runs that lack it last), as ``compare`` sorts."""
    if not sort:
        return columns, rows
    key = next((c for c in columns if c == sort or c.split("/", 1)[-1] == sort), None)
    if key is None:
        raise UsageError(f"--sort {sort}: not a column (columns: {', '.join(columns)})")
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return columns, sorted(present, key=lambda r: r[key], reverse=descending) + missing
