"""Questions people ask the ledger: which runs, what happened in one, which
version did best. Each returns plain rows (dicts of ledger values) that the CLI
renders as a table, CSV or JSON — and that Python users can call directly.

They read through a read-only ``reader.Reader`` and show every run's status as
``liveness.Liveness`` derives it: a run whose runner died reads ``interrupted``.
"""
from __future__ import annotations

import datetime
import itertools
import json
import math
import operator
import os
import re
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..core.environment import summary
from ..core.errors import UsageError
from ..core.layout import run_log
from ..core.lifecycle import SYSTEM_SPLIT, RunStatus
from ..core.text import iso
from ..store.liveness import Liveness, RowLike
from ..store.reader import Reader
from ..store.curate import run_tags
from ..store.reads import Key
from ..store.runquery import SORTABLE, RunFilter, RunQuery

LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|rmse|perplexity|time", re.I)


def parse_since(text: str, now: Optional[float] = None, option: str = "--since") -> float:
    """``2026-11-20``, ``2026-11-20T10:00``, or an age: ``90m``, ``6h``, ``2d``, ``1w``."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return now - float(match.group(1)) * seconds
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a date (2026-11-20, 2026-11-20T10:00) or an age "
                         f"(90m, 6h, 2d)") from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):  # year 1, or past what the clock can count
        raise UsageError(f"{option} {text!r}: a date this machine's clock cannot count; give one after 1970, "
                         f"e.g. 2026-11-20") from None


def resolve_run(ledger: Reader, ref: str) -> Dict[str, Any]:
    """A run by numeric id or by a unique prefix of its uid, its status derived."""
    return Liveness(ledger).derive(_find_run(ledger, ref))


def _find_run(ledger: Reader, ref: str) -> RowLike:
    ref = str(ref).strip()
    if ref.isascii() and ref.isdigit():
        row = ledger.get_run(int(ref)) if int(ref) < 1 << 63 else None  # past SQLite's INTEGER: no such run
        if row is not None:
            return row
        if len(ref) < 6:  # a short number is an id; longer digit strings may still be uid prefixes
            raise UsageError(f"run {ref!r} not found (run ids go from 1 to {ledger.max_run_id()}; see mlpipeline "
                             f"runs)")
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", ref):
        raise UsageError(f"run {ref!r}: give a run id (a number) or a prefix of its uid (hex)")
    rows = ledger.runs_by_uid_prefix(ref, limit=6)
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise UsageError(f"run {ref!r} not found (run ids go from 1 to {ledger.max_run_id()}; see mlpipeline runs)")
    shown = ", ".join(f"{r['id']} ({r['uid'][:12]} {r['script']} {r['version'] or ''})".rstrip() for r in rows[:5])
    raise UsageError(f"run {ref!r} is ambiguous: it starts the uid of {shown}{' and more' if len(rows) > 5 else ''}; "
                     f"give more characters or the numeric id")


def _duration(row: Dict[str, Any], now: float) -> Optional[float]:
    if row["started_at"] is None:
        return None
    end = row["ended_at"]
    if end is None:
        if row["status"] != RunStatus.RUNNING.value:
            return None  # never finished and not running (e.g. imported interrupted runs)
        end = now
    return round(end - row["started_at"], 3)


def _test_first(label: str) -> Tuple[bool, str]:
    """Sort key for metric labels: test results first, they are what a listing is read for."""
    return not label.startswith("test/"), label


def _labelled(values: Dict[int, Dict[Key, Optional[float]]], suffix: str = "") -> Dict[int, Dict[str, Any]]:
    """{run id: {"split/name" + suffix: value}}, test results first."""
    return {run_id: {f"{split}/{name}{suffix}": value
                     for (split, name), value in sorted(found.items(), key=lambda kv: _test_first("/".join(kv[0])))}
            for run_id, found in values.items()}


def _eval_metrics(ledger: Reader, run_ids: Sequence[int]) -> Dict[int, Dict[str, Any]]:
    """Each run's results (what ``evaluate_model`` returned): {run_id: {"test/acc": 0.9, ...}}."""
    return _labelled(ledger.results(run_ids))


def _curve_last(ledger: Reader, run_ids: Sequence[int]) -> Dict[int, Dict[str, Any]]:
    """The last point of every training curve per run: {run_id: {"train/loss (last)": 0.1}}."""
    return _labelled(ledger.curve_last(run_ids), " (last)")


def _results_else_last(ledger: Reader, run_ids: Sequence[int]) -> Dict[int, Dict[str, Any]]:
    """Each run's results; for a run that recorded none (a plain script that logs only curves), the last
    point of each of its curves, labelled "train/loss (last)" (the system's sampled curves left out)."""
    metrics = _eval_metrics(ledger, run_ids)
    bare = [run_id for run_id in run_ids if not metrics.get(run_id)]
    if bare:
        for run_id, values in _labelled(ledger.run_metrics(bare), " (last)").items():
            kept = {label: value for label, value in values.items() if not label.startswith(f"{SYSTEM_SPLIT}/")}
            if kept:
                metrics[run_id] = kept
    return metrics


RUN_LIST_COLUMNS = ("id", "uid", "script", "version", "mode", "status", "started", "duration", "metrics", "error")
_NEWEST_FIRST = ("id", "started", "duration")  # sorted descending unless asked otherwise


def list_runs(ledger: Reader, script: Optional[str] = None, version: Optional[str] = None,
              status: Optional[str] = None, mode: Optional[str] = None, since: Optional[float] = None,
              limit: Optional[int] = 50, ids: Optional[Sequence[int]] = None,
              now: Optional[float] = None, *, text: Optional[str] = None, sort: Optional[str] = None,
              descending: Optional[bool] = None, offset: int = 0, tags: Sequence[str] = (),
              before: Optional[float] = None, deleted: bool = False, last: bool = True) -> List[Dict[str, Any]]:
    """Runs newest first (or by ``sort``: a list column, or a final metric such
    as ``test/acc`` with the runs that lack it last), with their final eval
    metrics (``last``: for a run that recorded none, its curves' last points), tags and note. ``text``
    matches script, version, params or error, any case;
    ``tags``: runs with every one of them; ``deleted``: deleted (hidden) runs too.
    ``descending`` defaults to True for id, started and duration, to best first
    for a metric (lowest first for a loss, an error...), ascending otherwise."""
    query = RunQuery(ledger, now)
    sort = sort or "id"
    if descending is None:
        descending = sort in _NEWEST_FIRST or ("/" in sort and not LOWER_IS_BETTER.search(sort.split("/", 1)[1]))
    limit, offset = limit or None, max(0, int(offset or 0))
    if sort not in SORTABLE and "/" not in sort:
        raise UsageError(f"sort {sort!r}: not a column (columns: {', '.join(SORTABLE)}, or a metric as split/name, "
                         f"e.g. test/acc)")
    order = query.ids(RunFilter(script, version, status, mode, since, ids, text, tags, before, deleted), sort,
                      descending, limit, offset)
    found = {r["id"]: r for r in ledger.runs(order)}
    rows = [query.liveness.derive(found[run_id]) for run_id in order]
    metrics = _results_else_last(ledger, order) if last else _eval_metrics(ledger, order)
    tagged = run_tags(ledger, order)
    return [{
        "id": r["id"], "uid": r["uid"], "script": r["script"], "version": r["version"], "mode": r["mode"],
        "status": shown_status(r), "started": iso(r["started_at"]), "started_at": r["started_at"],
        "ended_at": r["ended_at"], "duration": _duration(r, query.now), "metrics": metrics.get(r["id"], {}),
        "exit_code": r["exit_code"], "signal": r["signal"],
        "error": r["error"].splitlines()[0] if r["error"] else None, "reason": r.get("reason"),
        "attempt": r.get("attempt"), "retry_of": r.get("retry_of"), "tags": tagged.get(r["id"], []),
        "note": r.get("note"), "deleted": iso(r.get("deleted_at")), "deleted_at": r.get("deleted_at"),
    } for r in rows]


def count_runs(ledger: Reader, script: Optional[str] = None, version: Optional[str] = None,
               status: Optional[str] = None, mode: Optional[str] = None, since: Optional[float] = None,
               ids: Optional[Sequence[int]] = None, now: Optional[float] = None, *,
               text: Optional[str] = None, tags: Sequence[str] = (), before: Optional[float] = None,
               deleted: bool = False) -> int:
    """How many runs ``list_runs`` with the same filters pages through."""
    return RunQuery(ledger, now).count(RunFilter(script, version, status, mode, since, ids, text, tags, before,
                                                 deleted))


def metric_columns(ledger: Reader, limit: int = 50) -> List[str]:
    """The result labels ("test/acc") runs have, test results first: what a listing can show or
    sort by."""
    return sorted((f"{split}/{name}" for split, name in ledger.result_keys()), key=_test_first)[:limit]


def metric_summary(ledger: Reader, run_id: int) -> List[Dict[str, Any]]:
    """Per (split, name, kind): a ``curve`` (points logged with a step: its last value, best
    value, points and last step) and a ``result`` (what ``evaluate_model`` returned for the name,
    or a value logged without a step) are two rows, never one series — from the summaries the
    runner keeps, never the whole curves."""
    summary = []
    for row in ledger.metric_summaries(run_id):
        if row["count"]:
            summary.append(_summary_row(row["split"], row["name"], "curve", row["last"], row["min"], row["max"],
                                        row["count"], row["last_step"]))
        if row["has_final"]:
            final = row["final"]
            summary.append(_summary_row(row["split"], row["name"], "result", final, final, final, 1, None))
    return summary


def system_peaks(ledger: Reader, run_id: int) -> Dict[str, float]:
    """The peak of each curve the runner sampled of the run (``sys/cpu_percent``, ``sys/rss_mb``,
    ``sys/gpu_memory_mb``, ``sys/gpu_util``): {name: highest value}, empty when it has none."""
    return {row["name"]: row["max"] for row in ledger.metric_summaries(run_id)
            if row["split"] == SYSTEM_SPLIT and row["count"] and row["max"] is not None}


def system_line(peaks: Dict[str, float]) -> Optional[str]:
    """``peaks`` in one line: ``cpu 98 % peak, RSS 212 MiB peak, GPU memory 3.1 GiB peak, GPU util 87 % peak``."""
    shown = [(label, peaks[name], unit) for name, label, unit in SYSTEM_CURVES if name in peaks]
    if not shown:
        return None
    return ", ".join(f"{label} {_mib(value) if unit == 'MiB' else f'{value:.0f} %'} peak"
                     for label, value, unit in shown)


SYSTEM_CURVES = (("cpu_percent", "cpu", "%"), ("rss_mb", "RSS", "MiB"), ("gpu_memory_mb", "GPU memory", "MiB"),
                 ("gpu_util", "GPU util", "%"))


def _mib(value: float) -> str:
    return f"{value:.0f} MiB" if value < 1024 else f"{value / 1024:.1f} GiB"


def _summary_row(split: str, name: str, kind: str, last: Optional[float], low: Optional[float],
                 high: Optional[float], points: int, last_step: Optional[int]) -> Dict[str, Any]:
    return {"split": split, "name": name, "kind": kind, "last": last,
            "best": low if LOWER_IS_BETTER.search(name) else high, "points": points, "last_step": last_step}


def metric_curve(ledger: Reader, ref: str, name: Optional[str] = None) -> List[Dict[str, Any]]:
    """The points of one run's curves (all of them, or those named ``name`` or
    ``split/name``), in the order they were recorded."""
    run = resolve_run(ledger, ref)
    split, bare = _metric_name(name)
    rows = [dict(r) for r in ledger.points(run["id"], bare, split)]
    if name and not rows:
        known = [f"{s}/{n}" for s, n in ledger.metric_keys([run["id"]])[:50]]
        raise UsageError(f"run {run['id']} has no metric {name!r} (metrics: {', '.join(known) or 'none'})")
    return rows


def _metric_name(name: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(split or None, name or None) of ``loss`` or ``train/loss`` (None: every metric)."""
    if not name:
        return None, None
    split, _, bare = name.rpartition("/")
    return split or None, bare


def shown_status(run: Mapping[str, Any]) -> str:
    """A derived run's status as readers show it: ``running (detached)`` for a Slurm job no runner follows."""
    return f"{run['status']} (detached)" if run.get("detached") else run["status"]


def show_run(ledger: Reader, ref: str) -> Dict[str, Any]:
    """Everything about one run."""
    data = resolve_run(ledger, ref)
    data.pop("derived", None)
    data["status"] = shown_status(data)
    for key in ("params", "packages"):
        if data.get(key):
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                pass
    data["git_dirty"] = None if data.get("git_dirty") is None else bool(data["git_dirty"])
    data["started"], data["ended"] = iso(data["started_at"]), iso(data["ended_at"])
    data["tags"] = run_tags(ledger, [data["id"]]).get(data["id"], [])
    data["deleted"] = iso(data.get("deleted_at"))  # hidden from listings (mlpipeline delete)
    data["collected"] = {kind: iso(at) for kind, at in json.loads(data.get("collected") or "{}").items()} or None
    data["duration"] = _duration(data, time.time())
    data["metrics"] = metric_summary(ledger, data["id"])
    data["system_peaks"] = system_peaks(ledger, data["id"])
    run_dir = data["run_dir"]
    data["log_path"] = run_log(run_dir) if run_dir else None
    diff = os.path.join(run_dir, "git.diff") if run_dir else None
    data["git_diff_path"] = diff if diff and os.path.exists(diff) else None
    info = ledger.environment(data.get("environment"))  # one line here; run_environment has it whole
    data["environment_sha256"], data["environment"] = data.get("environment"), summary(info) if info else None
    return data


def run_environment(ledger: Reader, ref: str) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """(the run, the environment it recorded: ``core.environment``'s record, or None for a run from before)."""
    run = resolve_run(ledger, ref)
    return run, ledger.environment(run.get("environment"))


Point = Tuple[Any, Optional[float]]


def _decimated(values: Sequence[Optional[float]], max_points: int) -> List[int]:
    """The indexes ``decimate`` keeps: the ends, and each bucket's lowest and
    highest finite value in order (a bucket of no finite value keeps its first)."""
    count, buckets = len(values), (max_points - 2) // 2
    keep = [0]
    for bucket in range(buckets):
        low, high = 1 + (count - 2) * bucket // buckets, 1 + (count - 2) * (bucket + 1) // buckets
        chunk = values[low:high]
        if not chunk:
            continue
        try:
            if None in chunk or not math.isfinite(sum(chunk)):  # type: ignore[arg-type]
                raise TypeError
            first, second = low + chunk.index(min(chunk)), low + chunk.index(max(chunk))  # type: ignore[type-var]
        except TypeError:  # None, inf or NaN among them: compare the finite values only
            finite = [(v, i) for i, v in enumerate(chunk, low) if v is not None and math.isfinite(v)]
            first, second = (min(finite)[1], max(finite)[1]) if finite else (low, low)
        keep += sorted({first, second})
    keep.append(count - 1)
    return keep


def decimate(points: Sequence[Point], max_points: int = 2000) -> List[Point]:
    """At most ``max_points`` of a curve's (step, value) points for a chart: the
    first and the last, and per bucket the lowest and the highest value, so
    spikes survive; in order. A curve that small comes back as it is."""
    if max_points < 4:
        raise UsageError(f"max_points {max_points}: give 4 or more")
    if len(points) <= max_points:
        return points if isinstance(points, list) else list(points)
    return [points[i] for i in _decimated([p[1] for p in points], max_points)]


def metric_curves(ledger: Reader, run_id: Union[int, str], max_points: Optional[int] = 2000,
                  name: Optional[str] = None) -> List[Dict[str, Any]]:
    """A run's training curves (those with steps; with ``name``, only that
    metric, ``loss`` or ``train/loss``), each decimated to ``max_points`` (None:
    all): [{"split", "name", "steps", "values", "points", "decimated"}], by name.
    Values that are not finite read None."""
    run = _find_run(ledger, str(run_id))
    if max_points is not None and max_points < 4:
        raise UsageError(f"max_points {max_points}: give 4 or more")
    split, bare = _metric_name(name)
    rows = ledger.curve_points(run["id"], bare, split)
    curves = []
    for metric, group in itertools.groupby(rows, key=operator.itemgetter(1)):
        points = list(group)
        splits = sorted({p[0] for p in points})
        for split in splits:
            mine = points if len(splits) == 1 else [p for p in points if p[0] == split]
            values = [p[3] for p in mine]
            if max_points is not None and len(mine) > max_points:
                keep = _decimated(values, max_points)
                steps, values = [mine[i][2] for i in keep], [values[i] for i in keep]
            else:
                steps = [p[2] for p in mine]
            curves.append({"split": split, "name": metric, "steps": steps, "values": values, "points": len(mine),
                           "decimated": len(steps) < len(mine)})
    return curves


def _compared_script(ledger: Reader, script: str) -> str:
    """The script path as runs record it, for a path or a file name."""
    scripts = ledger.scripts(matching=script)
    if not scripts:
        known = ledger.scripts(limit=20)
        raise UsageError(f"script {script!r}: no runs of it are recorded (scripts with runs: "
                         f"{', '.join(known) or 'none'})")
    if len(scripts) > 1:
        raise UsageError(f"script {script!r}: matches {', '.join(scripts)}; give the path as runs list it")
    return scripts[0]


def _chosen_runs(ledger: Reader, script: str) -> List[int]:
    """Per version, its latest successful execution-mode run or, if none
    succeeded, its last one: the run ids, oldest first."""
    chosen = ledger.latest_runs_per_version(script)
    if not chosen:
        raise UsageError(f"compare {script!r}: only test-mode runs so far; run it with mlpipeline -r")
    return sorted(chosen.values())


def _differing(params: Sequence[Dict[str, Any]]) -> List[str]:
    """The parameter keys (bar the version's name) whose values are not the same everywhere."""
    keys = sorted({k for p in params for k in p} - {"name"})
    return [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params}) > 1]


def _data_column(runs: Dict[int, Dict[str, Any]]) -> Dict[int, Optional[str]]:
    """Each run's data fingerprint, shortened (``csv:1a2b3c4d5e6f``), when the runs
    differ in the data they read; empty when they all read the same (or none recorded it)."""
    recorded = {run_id: run.get("data_fingerprint") for run_id, run in runs.items()}
    if len(set(recorded.values())) < 2:
        return {}
    return {run_id: _short_fingerprint(value) for run_id, value in recorded.items()}


def _short_fingerprint(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    kind, _, digest = value.rpartition(":")
    return f"{kind}:{digest[:12]}" if kind else digest[:12]


def _chosen_metrics(ledger: Reader, script: str, ids: Sequence[int], metrics: Dict[int, Dict[str, float]],
                    metric: Optional[str]) -> List[str]:
    """The metric labels to compare: every final one, or those named ``metric``
    (``acc`` or ``test/acc``); a metric with no final value is compared by the
    last point of its training curve, added to ``metrics`` as "train/loss (last)"."""
    names = sorted({m for values in metrics.values() for m in values}, key=_test_first)
    if not metric:
        return names
    names = [m for m in names if m == metric or m.split("/", 1)[1] == metric]
    if not names:
        curves = _curve_last(ledger, ids)
        for run_id, values in curves.items():
            metrics.setdefault(run_id, {}).update(values)
        names = sorted({m for values in curves.values() for m in values
                        if m[:-len(" (last)")] == metric or m[:-len(" (last)")].split("/", 1)[1] == metric})
    if not names:
        raise UsageError(f"--metric {metric}: no run of {script} recorded it")
    return names


def compare_versions(ledger: Reader, script: str, metric: Optional[str] = None,
                     sort: Optional[str] = None, descending: bool = False) -> Tuple[List[str], List[Dict[str, Any]]]:
    """One row per version of ``script``: its latest successful execution-mode run
    (or, if none succeeded, its last run), the parameters that differ across
    versions, then the metrics. A ``data`` column (short data fingerprints)
    comes after the parameters when the versions read different data."""
    script = _compared_script(ledger, script)
    ids = _chosen_runs(ledger, script)
    liveness = Liveness(ledger)
    runs = {r["id"]: liveness.derive(r) for r in ledger.runs(ids)}
    metrics = _results_else_last(ledger, ids)
    params = {run_id: json.loads(runs[run_id]["params"] or "{}") for run_id in ids}
    differing = _differing(list(params.values()))
    metric_names = _chosen_metrics(ledger, script, ids, metrics, metric)
    data = _data_column(runs)
    data_key = "data" if "data" not in differing else "data fingerprint"
    rows = []
    for run_id in ids:
        run = runs[run_id]
        row = {"version": run["version"], "run": run_id, "status": run["status"]}
        row.update({k: params[run_id].get(k) for k in differing})
        if data:
            row[data_key] = data[run_id]
        row.update({m: metrics.get(run_id, {}).get(m) for m in metric_names})
        rows.append(row)
    columns = ["version", "run", "status", *differing, *([data_key] if data else []), *metric_names]
    if sort:
        key = next((c for c in columns if c == sort or c.split("/", 1)[-1] == sort), None)
        if key is None:
            raise UsageError(f"--sort {sort}: not a column (columns: {', '.join(columns)})")
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        rows = sorted(present, key=lambda r: r[key], reverse=descending) + missing
    return columns, rows


def flatten(params: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested dicts as dotted keys: {"opt": {"lr": 0.1}} -> {"opt.lr": 0.1}."""
    flat: Dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def spread(values: Sequence[Optional[float]]) -> Dict[str, Any]:
    """Mean and sample standard deviation (None for a single value) of the finite values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    mean = math.fsum(finite) / len(finite)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else None
    return {"mean": mean, "std": std, "n": len(finite)}


def _repeat_groups(ledger: Reader, script: str) -> List[Dict[str, Any]]:
    """The script's succeeded execution-mode runs grouped by identical
    parameters (the version's name aside): mean and sample std of each final
    metric across the repeats. Newest group first."""
    groups: Dict[str, Dict[str, Any]] = {}
    keys: Dict[str, str] = {}  # params as stored -> as compared: thousands of repeats share a few texts
    for run_id, version, params in ledger.succeeded_params(script):
        key = keys.get(params)
        if key is None:
            values = {k: v for k, v in json.loads(params or "{}").items() if k != "name"}
            key = keys[params] = json.dumps(values, sort_keys=True)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"params": flatten(json.loads(key)), "versions": [], "runs": []}
        group["runs"].append(run_id)
        if version not in group["versions"]:
            group["versions"].append(version)
    metrics = _results_else_last(ledger, [run_id for g in groups.values() for run_id in g["runs"]])
    for group in groups.values():
        labels = sorted({m for run_id in group["runs"] for m in metrics.get(run_id, {})}, key=_test_first)
        group["count"] = len(group["runs"])
        spreads = {m: spread([metrics.get(run_id, {}).get(m) for run_id in group["runs"]]) for m in labels}
        group["metrics"] = {m: s for m, s in spreads.items() if s["n"]}
    return list(groups.values())


def compare_detail(ledger: Reader, script: str, metric: Optional[str] = None,
                   max_points: int = 2000) -> Dict[str, Any]:
    """Everything the compare page shows for ``script``: each version's chosen
    run (as ``compare_versions`` chooses) with all its parameters (nested ones
    as dotted keys) and final metrics; the parameter keys that differ; the
    repeats of identical parameters with each metric's mean and std; and with
    ``metric``, each version's curve of it, decimated. When the versions read
    different data, each version has ``data`` (its short data fingerprint) and
    ``data_differs`` is true."""
    script = _compared_script(ledger, script)
    ids = _chosen_runs(ledger, script)
    liveness = Liveness(ledger)
    runs = {r["id"]: liveness.derive(r) for r in ledger.runs(ids)}
    metrics = _results_else_last(ledger, ids)
    chosen = _chosen_metrics(ledger, script, ids, metrics, metric)
    params = {run_id: flatten(json.loads(runs[run_id]["params"] or "{}")) for run_id in ids}
    data = _data_column(runs)
    versions = []
    for run_id in ids:
        run = runs[run_id]
        entry = {"version": run["version"], "run": run_id, "status": run["status"], "started": iso(run["started_at"]),
                 "params": params[run_id], "metrics": metrics.get(run_id, {})}
        if data:
            entry["data"] = data[run_id]
        if metric:
            entry["curves"] = metric_curves(ledger, run_id, max_points, name=metric)
        versions.append(entry)
    recorded = [f"{split}/{name}" for split, name in ledger.metric_keys(ids)]
    return {"script": script, "versions": versions, "param_keys": sorted({k for p in params.values() for k in p}),
            "differing": _differing(list(params.values())), "data_differs": bool(data),
            "metrics": chosen if metric else sorted({m for v in metrics.values() for m in v}, key=_test_first),
            "curve_names": sorted(recorded, key=_test_first), "metric": metric,
            "groups": _repeat_groups(ledger, script)}


def follow_log(ledger: Reader, ref: str, follow: bool = False, poll: float = 0.3,
               sleep=time.sleep) -> Iterator[bytes]:
    """The captured output of a run; with ``follow``, keep yielding new output
    until the run is no longer running."""
    row = resolve_run(ledger, ref)
    if not row["run_dir"]:
        if row["mode"] == "test":
            raise UsageError(f"run {row['id']} is a test-mode run: its output went to the terminal only "
                             f"(execution mode, mlpipeline -r, keeps every version's output)")
        raise UsageError(f"run {row['id']} has no captured output: its script failed before a version started; "
                         f"see mlpipeline show {row['id']}")
    path = run_log(row["run_dir"])
    offset = 0
    while True:
        if os.path.exists(path):
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
            if data:
                offset += len(data)
                yield data
        if not follow:
            return
        current = Liveness(ledger).derive(_find_run(ledger, str(row["id"])))
        if RunStatus(current["status"]).finished:
            follow = False  # one last read picks up what was written before it ended
            continue
        sleep(poll)
