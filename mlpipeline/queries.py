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
import sqlite3
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import UsageError
from .liveness import Liveness
from .reader import Reader

LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|rmse|perplexity|time", re.I)


def iso(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def parse_since(text: str, now: Optional[float] = None) -> float:
    """``2026-11-20``, ``2026-11-20T10:00``, or an age: ``90m``, ``6h``, ``2d``, ``1w``."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return now - float(match.group(1)) * seconds
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: not a date (2026-11-20, 2026-11-20T10:00) or an age "
                         f"(90m, 6h, 2d)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def resolve_run(ledger: Reader, ref: str) -> Dict[str, Any]:
    """A run by numeric id or by a unique prefix of its uid, its status derived."""
    return Liveness(ledger.conn).derive(_find_run(ledger, ref))


def _find_run(ledger: Reader, ref: str) -> sqlite3.Row:
    ref = str(ref).strip()
    if ref.isdigit():
        row = ledger.get_run(int(ref)) if int(ref) < 1 << 63 else None  # past SQLite's INTEGER: no such run
        if row is not None:
            return row
        if len(ref) < 6:  # a short number is an id; longer digit strings may still be uid prefixes
            last = ledger.conn.execute("SELECT MAX(id) FROM runs").fetchone()[0]
            raise UsageError(f"run {ref!r} not found (run ids go from 1 to {last or 0}; see mlpipeline runs)")
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", ref):
        raise UsageError(f"run {ref!r}: give a run id (a number) or a prefix of its uid (hex)")
    rows = ledger.conn.execute("SELECT * FROM runs WHERE uid >= ? AND uid < ? ORDER BY id LIMIT 6",
                               (ref.lower(), ref.lower() + "g")).fetchall()
    if len(rows) == 1:
        return rows[0]
    if not rows:
        last = ledger.conn.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        raise UsageError(f"run {ref!r} not found (run ids go from 1 to {last or 0}; see mlpipeline runs)")
    shown = ", ".join(f"{r['id']} ({r['uid'][:12]} {r['script']} {r['version'] or ''})".rstrip() for r in rows[:5])
    raise UsageError(f"run {ref!r} is ambiguous: it starts the uid of {shown}{' and more' if len(rows) > 5 else ''}; "
                     f"give more characters or the numeric id")


def _duration(row: Dict[str, Any], now: float) -> Optional[float]:
    if row["started_at"] is None:
        return None
    end = row["ended_at"]
    if end is None:
        if row["status"] != "running":
            return None  # never finished and not running (e.g. imported interrupted runs)
        end = now
    return round(end - row["started_at"], 3)


def _test_first(label: str) -> Tuple[bool, str]:
    """Sort key for metric labels: test results first, they are what a listing is read for."""
    return not label.startswith("test/"), label


def _metric_values(ledger: Reader, run_ids: Sequence[int], where: str,
                   label: str = "{split}/{name}") -> Dict[int, Dict[str, float]]:
    """{run_id: {label: value}} for the metric rows matching ``where`` ({marks}
    stands for the run ids, queried 500 at a time)."""
    found: Dict[int, Dict[str, float]] = {}
    labels: Dict[Tuple[str, str], str] = {}
    cursor = ledger.conn.cursor()
    cursor.row_factory = None
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        sql = "SELECT run_id, split, name, value FROM metrics WHERE " + where.format(marks=",".join("?" * len(chunk)))
        for run_id, split, name, value in cursor.execute(sql, tuple(chunk)):
            key = labels.get((split, name))
            if key is None:
                key = labels[(split, name)] = label.format(split=split, name=name)
            found.setdefault(run_id, {})[key] = value
    return found


def _eval_metrics(ledger: Reader, run_ids: Sequence[int]) -> Dict[int, Dict[str, float]]:
    """Final (step-less) eval metrics per run: {run_id: {"test/acc": 0.9, ...}}."""
    found = _metric_values(ledger, run_ids, "run_id IN ({marks}) AND step IS NULL")
    return {run_id: dict(sorted(values.items(), key=lambda kv: _test_first(kv[0])))
            for run_id, values in found.items()}


def _curve_last(ledger: Reader, run_ids: Sequence[int]) -> Dict[int, Dict[str, float]]:
    """The last point of every training curve per run: {run_id: {"train/loss (last)": 0.1}}."""
    return _metric_values(ledger, run_ids, "rowid IN (SELECT MAX(rowid) FROM metrics WHERE run_id IN ({marks}) "
                                           "AND step IS NOT NULL GROUP BY run_id, split, name)",
                          label="{split}/{name} (last)")


def _script_match(script: str) -> Tuple[str, List[Any]]:
    """A WHERE clause for runs of ``script``: its path as runs record it
    (models/a.py), or its file name with or without .py — matched exactly, case
    included (``Case.py`` is not ``case.py``)."""
    name = os.path.basename(script if script.endswith(".py") else script + ".py")
    glob = "".join(f"[{c}]" if c in "*?[" else c for c in name)
    return "(script = ? OR script = ? OR script GLOB ?)", [script, name, f"*/{glob}"]


RUN_LIST_COLUMNS = ("id", "uid", "script", "version", "mode", "status", "started", "duration", "metrics", "error")
SORTABLE = ("id", "script", "version", "mode", "status", "started", "duration")
_NEWEST_FIRST = ("id", "started", "duration")  # sorted descending unless asked otherwise


class _RunQuery:
    """One read of the runs table: filters as SQL over ``runs``, and the runs a
    dead runner left ``running`` (looked up only when a filter or sort needs
    them, so liveness is derived for the returned rows alone otherwise)."""

    def __init__(self, ledger: Reader, now: Optional[float]):
        self.ledger = ledger
        self.now = time.time() if now is None else now
        self.liveness = Liveness(ledger.conn, now=self.now)
        self._dead: Optional[str] = None

    def dead(self) -> str:
        """The ids of stored-running runs whose owner is gone, as SQL list text."""
        if self._dead is None:
            rows = self.ledger.running_runs()
            self._dead = ",".join(str(int(r["id"])) for r in rows if not self.liveness.run_alive(r))
        return self._dead

    def where(self, script: Optional[str] = None, version: Optional[str] = None, status: Optional[str] = None,
              mode: Optional[str] = None, since: Optional[float] = None, ids: Optional[Sequence[int]] = None,
              text: Optional[str] = None) -> Tuple[str, List[Any]]:
        """(" WHERE ...", args) for the filters ``list_runs`` and ``count_runs`` share."""
        clauses: List[str] = []
        args: List[Any] = []
        if script:
            clause, more = _script_match(script)
            clauses.append(clause.replace("script", "runs.script"))
            args += more
        for column, value in (("version", version), ("mode", mode)):
            if value:
                clauses.append(f"runs.{column} = ?")
                args.append(value)
        if status == "running":  # a dead runner's 'running' row reads interrupted
            clauses.append(f"runs.status = 'running' AND runs.id NOT IN ({self.dead()})")
        elif status == "interrupted":
            clauses.append(f"(runs.status = 'interrupted' OR runs.id IN ({self.dead()}))")
        elif status:
            clauses.append("runs.status = ?")
            args.append(status)
        if since is not None:
            clauses.append("runs.started_at >= ?")
            args.append(since)
        if ids is not None:
            clauses.append(f"runs.id IN ({','.join('?' * len(ids))})")
            args += list(ids)
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(" + " OR ".join(f"runs.{c} LIKE ? ESCAPE '\\'" for c in ("script", "version", "params",
                                                                                     "error")) + ")")
            args += [pattern] * 4
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def order(self, sort: str, descending: bool) -> str:
        """ORDER BY for a list column: values missing last, newest first among equals."""
        if sort == "id":
            return f"runs.id {'DESC' if descending else 'ASC'}"
        expr = {"script": "runs.script", "version": "runs.version", "mode": "runs.mode", "started": "runs.started_at",
                "status": f"CASE WHEN runs.id IN ({self.dead()}) THEN 'interrupted' ELSE runs.status END",
                "duration": f"CASE WHEN runs.ended_at IS NOT NULL THEN runs.ended_at - runs.started_at "
                            f"WHEN runs.status = 'running' THEN (CASE WHEN runs.id IN ({self.dead()}) "
                            f"THEN COALESCE(runs.heartbeat_at, runs.started_at) ELSE {float(self.now)!r} END) "
                            f"- runs.started_at END"}[sort]
        nulls_last = "" if descending or sort in ("script", "mode", "status") else f"{expr} IS NULL, "
        return f"{nulls_last}{expr} {'DESC' if descending else 'ASC'}, runs.id DESC"

    def metric_sorted(self, label: str, where: str, args: List[Any], descending: bool,
                      limit: Optional[int], offset: int) -> List[int]:
        """Run ids in order of their final value of ``label`` ("test/acc": the
        last value recorded, when it came without a step); runs without one
        follow, newest first."""
        split, _, name = label.partition("/")
        conn, joined = self.ledger.conn, " JOIN runs ON runs.id = s.run_id" if where else ""  # filters need the run
        where = where or " WHERE 1"
        if not self.ledger.has("0005"):
            return self._metric_sorted_here(split, name, where, args, descending, limit, offset)
        holds, value = result_columns(self.ledger, "s")
        has = f"s.name = ? AND s.split = ? AND {holds} AND {value} IS NOT NULL"
        found = [r[0] for r in conn.execute(
            f"SELECT s.run_id FROM metric_summary s{joined}{where} AND {has} "
            f"ORDER BY {value} {'DESC' if descending else 'ASC'}, s.run_id DESC LIMIT ? OFFSET ?",
            [*args, name, split, -1 if limit is None else limit, offset])]
        if limit is not None and len(found) == limit:
            return found
        with_metric = offset + len(found) if found or not offset else conn.execute(
            f"SELECT COUNT(*) FROM metric_summary s{joined}{where} AND {has}",
            [*args, name, split]).fetchone()[0]
        return found + [r[0] for r in conn.execute(
            f"SELECT runs.id FROM runs{where} AND runs.id NOT IN (SELECT s.run_id FROM metric_summary s WHERE {has}) "
            f"ORDER BY runs.id DESC LIMIT ? OFFSET ?",
            [*args, name, split, -1 if limit is None else limit - len(found), max(0, offset - with_metric)])]

    def _metric_sorted_here(self, split: str, name: str, where: str, args: List[Any], descending: bool,
                            limit: Optional[int], offset: int) -> List[int]:
        """``metric_sorted`` for a ledger older than the metric summaries: sorted here."""
        conn = self.ledger.conn
        values = dict(conn.execute("SELECT run_id, value FROM metrics WHERE name = ? AND split = ? AND step IS NULL "
                                   "ORDER BY rowid", (name, split)).fetchall())
        ids = [r[0] for r in conn.execute(f"SELECT runs.id FROM runs{where} ORDER BY runs.id DESC", args)]
        present = sorted((i for i in ids if values.get(i) is not None), key=values.__getitem__, reverse=descending)
        ordered = present + [i for i in ids if values.get(i) is None]
        return ordered[offset:None if limit is None else offset + limit]


def list_runs(ledger: Reader, script: Optional[str] = None, version: Optional[str] = None,
              status: Optional[str] = None, mode: Optional[str] = None, since: Optional[float] = None,
              limit: Optional[int] = 50, ids: Optional[Sequence[int]] = None,
              now: Optional[float] = None, *, text: Optional[str] = None, sort: Optional[str] = None,
              descending: Optional[bool] = None, offset: int = 0) -> List[Dict[str, Any]]:
    """Runs newest first (or by ``sort``: a list column, or a final metric such
    as ``test/acc`` with the runs that lack it last), with their final eval
    metrics. ``text`` matches script, version, params or error, any case.
    ``descending`` defaults to True for id, started and duration, to best first
    for a metric (lowest first for a loss, an error...), ascending otherwise."""
    query = _RunQuery(ledger, now)
    where, args = query.where(script, version, status, mode, since, ids, text)
    sort = sort or "id"
    if descending is None:
        descending = sort in _NEWEST_FIRST or ("/" in sort and not LOWER_IS_BETTER.search(sort.split("/", 1)[1]))
    limit, offset = limit or None, max(0, int(offset or 0))
    if sort in SORTABLE:  # the ids alone are sorted, then those rows read
        order = [r[0] for r in ledger.conn.execute(
            f"SELECT runs.id FROM runs{where} ORDER BY {query.order(sort, descending)} "
            f"LIMIT {int(limit) if limit else -1} OFFSET {offset}", args)]
    elif "/" in sort:
        order = query.metric_sorted(sort, where, args, descending, limit, offset)
    else:
        raise UsageError(f"sort {sort!r}: not a column (columns: {', '.join(SORTABLE)}, or a metric as split/name, "
                         f"e.g. test/acc)")
    found = {r["id"]: r for start in range(0, len(order), 500) for r in ledger.runs(order[start:start + 500])}
    rows = [query.liveness.derive(found[run_id]) for run_id in order]
    metrics = _eval_metrics(ledger, order)
    return [{
        "id": r["id"], "uid": r["uid"], "script": r["script"], "version": r["version"], "mode": r["mode"],
        "status": r["status"], "started": iso(r["started_at"]), "started_at": r["started_at"],
        "ended_at": r["ended_at"], "duration": _duration(r, query.now), "metrics": metrics.get(r["id"], {}),
        "exit_code": r["exit_code"], "signal": r["signal"],
        "error": r["error"].splitlines()[0] if r["error"] else None,
    } for r in rows]


def count_runs(ledger: Reader, script: Optional[str] = None, version: Optional[str] = None,
               status: Optional[str] = None, mode: Optional[str] = None, since: Optional[float] = None,
               ids: Optional[Sequence[int]] = None, now: Optional[float] = None, *,
               text: Optional[str] = None) -> int:
    """How many runs ``list_runs`` with the same filters pages through."""
    query = _RunQuery(ledger, now)
    where, args = query.where(script, version, status, mode, since, ids, text)
    return int(ledger.conn.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0])


def metric_columns(ledger: Reader, limit: int = 50) -> List[str]:
    """The final-metric labels ("test/acc") runs have, test results first: what
    a listing can show or sort by. Walks the index of final values one label at
    a time; a ledger without it (not yet upgraded) is sampled over its newest runs."""
    conn = ledger.conn
    labels: List[str] = []
    if ledger.has("0006"):
        holds = result_columns(ledger, "metric_summary")[0]

        def after(column: str, where: str, *args: Any) -> Optional[str]:
            row = conn.execute(f"SELECT {column} FROM metric_summary WHERE {holds} AND {where} "
                               f"ORDER BY {column} LIMIT 1", args).fetchone()
            return row[0] if row else None

        name = after("name", "name >= ?", "")
        while name is not None and len(labels) < 1000:
            split = after("split", "name = ? AND split >= ?", name, "")
            while split is not None:
                labels.append(f"{split}/{name}")
                split = after("split", "name = ? AND split > ?", name, split)
            name = after("name", "name > ?", name)
    else:
        labels = [f"{split}/{name}" for split, name in conn.execute(
            "SELECT DISTINCT split, name FROM metrics WHERE run_id > (SELECT MAX(id) - 2000 FROM runs) "
            "AND step IS NULL")]
    return sorted(labels, key=_test_first)[:limit]


def result_columns(ledger: Reader, alias: str) -> Tuple[str, str]:
    """(the condition that a metric_summary row holds a run's result, the result): what
    ``evaluate_model`` returned for that name, or what was logged without a step."""
    if ledger.has("0010"):
        return f"{alias}.has_final = 1", f"{alias}.final"
    return f"{alias}.last_step IS NULL", f"{alias}.last"  # before results were kept apart from curves


def metric_summary(ledger: Reader, run_id: int) -> List[Dict[str, Any]]:
    """Per (split, name, kind): a ``curve`` (points logged with a step: its last value, best
    value, points and last step) and a ``result`` (what ``evaluate_model`` returned for the name,
    or a value logged without a step) are two rows, never one series — from the summaries the
    runner keeps, never the whole curves."""
    if not ledger.has("0005"):  # a ledger no runner has upgraded yet: summarise the points
        rows = ledger.conn.execute(
            "SELECT split, name, step IS NULL AS result, COUNT(*) AS count, MAX(step) AS last_step, "
            "MIN(value) AS min, MAX(value) AS max, (SELECT x.value FROM metrics x WHERE x.run_id = m.run_id AND "
            "x.split = m.split AND x.name = m.name AND (x.step IS NULL) = (m.step IS NULL) ORDER BY x.rowid DESC "
            "LIMIT 1) AS last FROM metrics m WHERE run_id = ? GROUP BY split, name, step IS NULL "
            "ORDER BY split DESC, name, result", (run_id,)).fetchall()
        return [_summary_row(r["split"], r["name"], "result" if r["result"] else "curve", r["last"], r["min"],
                             r["max"], 1 if r["result"] else r["count"], r["last_step"]) for r in rows]
    summary = []
    apart = ledger.has("0010")
    for row in ledger.conn.execute("SELECT * FROM metric_summary WHERE run_id = ? ORDER BY split DESC, name",
                                   (run_id,)):
        if not apart:  # before results were kept apart: a row is a result when its last point had no step
            kind = "result" if row["last_step"] is None else "curve"
            summary.append(_summary_row(row["split"], row["name"], kind, row["last"], row["min"], row["max"],
                                        row["count"], row["last_step"]))
            continue
        if row["count"]:
            summary.append(_summary_row(row["split"], row["name"], "curve", row["last"], row["min"], row["max"],
                                        row["count"], row["last_step"]))
        if row["has_final"]:
            final = row["final"]
            summary.append(_summary_row(row["split"], row["name"], "result", final, final, final, 1, None))
    return summary


def _summary_row(split: str, name: str, kind: str, last: Optional[float], low: Optional[float],
                 high: Optional[float], points: int, last_step: Optional[int]) -> Dict[str, Any]:
    return {"split": split, "name": name, "kind": kind, "last": last,
            "best": low if LOWER_IS_BETTER.search(name) else high, "points": points, "last_step": last_step}


def metric_curve(ledger: Reader, ref: str, name: Optional[str] = None) -> List[Dict[str, Any]]:
    """The points of one run's curves (all of them, or those named ``name`` or
    ``split/name``), in the order they were recorded."""
    run = resolve_run(ledger, ref)
    sql, args = "SELECT split, name, step, value, recorded_at FROM metrics WHERE run_id = ?", [run["id"]]
    if name:
        split, _, bare = name.rpartition("/")
        sql += " AND name = ?" + (" AND split = ?" if split else "")
        args += [bare] + ([split] if split else [])
    rows = [dict(r) for r in ledger.conn.execute(sql + " ORDER BY rowid", args)]
    if name and not rows:
        known = [f"{r[0]}/{r[1]}" for r in ledger.conn.execute(
            "SELECT DISTINCT split, name FROM metrics WHERE run_id = ? LIMIT 50", (run["id"],))]
        raise UsageError(f"run {run['id']} has no metric {name!r} (metrics: {', '.join(known) or 'none'})")
    return rows


def show_run(ledger: Reader, ref: str) -> Dict[str, Any]:
    """Everything about one run."""
    data = resolve_run(ledger, ref)
    data.pop("derived", None)
    for key in ("params", "packages"):
        if data.get(key):
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                pass
    data["git_dirty"] = None if data.get("git_dirty") is None else bool(data["git_dirty"])
    data["started"], data["ended"] = iso(data["started_at"]), iso(data["ended_at"])
    data["duration"] = _duration(data, time.time())
    data["metrics"] = metric_summary(ledger, data["id"])
    run_dir = data["run_dir"]
    data["log_path"] = os.path.join(run_dir, "output.log") if run_dir else None
    diff = os.path.join(run_dir, "git.diff") if run_dir else None
    data["git_diff_path"] = diff if diff and os.path.exists(diff) else None
    return data


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
    sql = ("SELECT split, name, step, CASE WHEN abs(value) < 9e999 THEN value END FROM metrics "
           "WHERE run_id = ? AND step IS NOT NULL")
    args: List[Any] = [run["id"]]
    if name:
        split, _, bare = name.rpartition("/")
        sql += " AND name = ?" + (" AND split = ?" if split else "")
        args += [bare] + ([split] if split else [])
    cursor = ledger.conn.cursor()
    cursor.row_factory = None  # plain tuples: a sqlite3.Row per point would cost more than the query
    rows = cursor.execute(sql + " ORDER BY name, step", args).fetchall()
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
    clause, args = _script_match(script)
    scripts = [r[0] for r in ledger.conn.execute(f"SELECT DISTINCT script FROM runs WHERE {clause}", args)]
    if not scripts:
        known = [r[0] for r in ledger.conn.execute("SELECT DISTINCT script FROM runs ORDER BY script LIMIT 20")]
        raise UsageError(f"compare {script!r}: no runs of that script (scripts with runs: {', '.join(known) or 'none'})")
    if len(scripts) > 1:
        raise UsageError(f"compare {script!r}: matches {', '.join(scripts)}; give the path as runs list it")
    return scripts[0]


def _chosen_runs(ledger: Reader, script: str) -> List[int]:
    """Per version, its latest successful execution-mode run or, if none
    succeeded, its last one: the run ids, oldest first."""
    chosen: Dict[str, int] = {}
    for version, run_id in ledger.conn.execute(
            "SELECT version, MAX(id) FROM runs WHERE script = ? AND mode = 'run' AND status = 'succeeded' "
            "AND version IS NOT NULL GROUP BY version", (script,)):
        chosen[version] = run_id
    for version, run_id in ledger.conn.execute(
            "SELECT version, MAX(id) FROM runs WHERE script = ? AND mode = 'run' AND version IS NOT NULL "
            "GROUP BY version", (script,)):
        chosen.setdefault(version, run_id)
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
    liveness = Liveness(ledger.conn)
    runs = {r["id"]: liveness.derive(r) for r in ledger.runs(ids)}
    metrics = _eval_metrics(ledger, ids)
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


def _spread(values: Sequence[Optional[float]]) -> Dict[str, Any]:
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
    cursor = ledger.conn.cursor()
    cursor.row_factory = None
    for run_id, version, params in cursor.execute(
            "SELECT id, version, params FROM runs WHERE script = ? AND mode = 'run' AND status = 'succeeded' "
            "ORDER BY id DESC", (script,)):
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
    metrics = _eval_metrics(ledger, [run_id for g in groups.values() for run_id in g["runs"]])
    for group in groups.values():
        labels = sorted({m for run_id in group["runs"] for m in metrics.get(run_id, {})}, key=_test_first)
        group["count"] = len(group["runs"])
        spreads = {m: _spread([metrics.get(run_id, {}).get(m) for run_id in group["runs"]]) for m in labels}
        group["metrics"] = {m: spread for m, spread in spreads.items() if spread["n"]}
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
    liveness = Liveness(ledger.conn)
    runs = {r["id"]: liveness.derive(r) for r in ledger.runs(ids)}
    metrics = _eval_metrics(ledger, ids)
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
    table = "metric_summary" if ledger.has("0005") else "metrics"
    recorded = [f"{split}/{name}" for split, name in ledger.conn.execute(
        f"SELECT DISTINCT split, name FROM {table} WHERE run_id IN ({','.join('?' * len(ids))})", ids)]
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
    path = os.path.join(row["run_dir"], "output.log")
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
        current = Liveness(ledger.conn).derive(_find_run(ledger, str(row["id"])))
        if current["status"] not in ("running", "queued"):
            follow = False  # one last read picks up what was written before it ended
            continue
        sleep(poll)
