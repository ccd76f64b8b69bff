"""Questions people ask the ledger: which runs, what happened in one, which
version did best. Each returns plain rows (dicts of ledger values) that the CLI
renders as a table, CSV or JSON — and that Python users can call directly.

They read through a read-only ``reader.Reader`` and show every run's status as
``liveness.Liveness`` derives it: a run whose runner died reads ``interrupted``.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import sqlite3
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

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
        row = ledger.get_run(int(ref))
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


def _metric_values(ledger: Reader, run_ids: Sequence[int], where: str,
                   label: str = "{split}/{name}") -> Dict[int, Dict[str, float]]:
    """{run_id: {label: value}} for the metric rows matching ``where`` ({marks}
    stands for the run ids, queried 500 at a time)."""
    found: Dict[int, Dict[str, float]] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        sql = "SELECT run_id, split, name, value FROM metrics WHERE " + where.format(marks=",".join("?" * len(chunk)))
        for run_id, split, name, value in ledger.conn.execute(sql, tuple(chunk)):
            found.setdefault(run_id, {})[label.format(split=split, name=name)] = value
    return found


def _eval_metrics(ledger: Reader, run_ids: Sequence[int]) -> Dict[int, Dict[str, float]]:
    """Final (step-less) eval metrics per run: {run_id: {"test/acc": 0.9, ...}}."""
    found = _metric_values(ledger, run_ids, "run_id IN ({marks}) AND step IS NULL")
    # test results first: they are what a listing is read for
    return {run_id: dict(sorted(values.items(), key=lambda kv: (not kv[0].startswith("test/"), kv[0])))
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


def list_runs(ledger: Reader, script: Optional[str] = None, version: Optional[str] = None,
              status: Optional[str] = None, mode: Optional[str] = None, since: Optional[float] = None,
              limit: Optional[int] = 50, ids: Optional[Sequence[int]] = None,
              now: Optional[float] = None) -> List[Dict[str, Any]]:
    """Runs newest first, with their final eval metrics."""
    clauses: List[str] = []
    args: List[Any] = []
    if script:
        clause, more = _script_match(script)
        clauses.append(clause)
        args += more
    for column, value in (("version", version), ("mode", mode)):
        if value:
            clauses.append(f"{column} = ?")
            args.append(value)
    derived_filter = status in ("running", "interrupted")  # a dead runner's 'running' row reads interrupted
    if status:
        clauses.append("status IN ('running', 'interrupted')" if derived_filter else "status = ?")
        args += [] if derived_filter else [status]
    if since is not None:
        clauses.append("started_at >= ?")
        args.append(since)
    if ids is not None:
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        args += list(ids)
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id DESC"
    if limit and not derived_filter:
        sql += f" LIMIT {int(limit)}"
    now = time.time() if now is None else now
    liveness = Liveness(ledger.conn, now=now)
    rows = [liveness.derive(r) for r in ledger.conn.execute(sql, args).fetchall()]
    if derived_filter:
        rows = [r for r in rows if r["status"] == status][:limit or None]
    metrics = _eval_metrics(ledger, [r["id"] for r in rows])
    return [{
        "id": r["id"], "uid": r["uid"], "script": r["script"], "version": r["version"], "mode": r["mode"],
        "status": r["status"], "started": iso(r["started_at"]), "started_at": r["started_at"],
        "ended_at": r["ended_at"], "duration": _duration(r, now), "metrics": metrics.get(r["id"], {}),
        "exit_code": r["exit_code"], "signal": r["signal"],
        "error": r["error"].splitlines()[0] if r["error"] else None,
    } for r in rows]


def metric_summary(ledger: Reader, run_id: int) -> List[Dict[str, Any]]:
    """Per (split, name): the last value, the best one, how many points, the
    last step — from the summaries the runner keeps, never the whole curves."""
    if not ledger.has("0005"):  # a ledger no runner has upgraded yet: summarise the points
        rows = ledger.conn.execute(
            "SELECT split, name, COUNT(*) AS count, MAX(step) AS last_step, MIN(value) AS min, MAX(value) AS max, "
            "(SELECT x.value FROM metrics x WHERE x.run_id = m.run_id AND x.split = m.split AND x.name = m.name "
            "ORDER BY x.rowid DESC LIMIT 1) AS last FROM metrics m WHERE run_id = ? "
            "GROUP BY split, name ORDER BY MIN(rowid)", (run_id,)).fetchall()
    else:
        rows = ledger.conn.execute("SELECT * FROM metric_summary WHERE run_id = ? ORDER BY split DESC, name",
                                   (run_id,)).fetchall()
    summary = []
    for row in rows:
        best = row["min"] if LOWER_IS_BETTER.search(row["name"]) else row["max"]
        summary.append({"split": row["split"], "name": row["name"], "last": row["last"], "best": best,
                        "points": row["count"], "last_step": row["last_step"]})
    return summary


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


def compare_versions(ledger: Reader, script: str, metric: Optional[str] = None,
                     sort: Optional[str] = None, descending: bool = False) -> Tuple[List[str], List[Dict[str, Any]]]:
    """One row per version of ``script``: its latest successful execution-mode run
    (or, if none succeeded, its last run), the parameters that differ across
    versions, then the metrics."""
    clause, args = _script_match(script)
    scripts = [r[0] for r in ledger.conn.execute(f"SELECT DISTINCT script FROM runs WHERE {clause}", args)]
    if not scripts:
        known = [r[0] for r in ledger.conn.execute("SELECT DISTINCT script FROM runs ORDER BY script LIMIT 20")]
        raise UsageError(f"compare {script!r}: no runs of that script (scripts with runs: {', '.join(known) or 'none'})")
    if len(scripts) > 1:
        raise UsageError(f"compare {script!r}: matches {', '.join(scripts)}; give the path as runs list it")
    script = scripts[0]
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
    ids = sorted(chosen.values())
    liveness = Liveness(ledger.conn)
    runs = {r["id"]: liveness.derive(r) for r in ledger.runs(ids)}
    metrics = _eval_metrics(ledger, ids)
    params = {run_id: json.loads(runs[run_id]["params"] or "{}") for run_id in ids}
    keys = sorted({k for p in params.values() for k in p} - {"name"})
    differing = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params.values()}) > 1]
    metric_names = sorted({m for values in metrics.values() for m in values},
                          key=lambda m: (not m.startswith("test/"), m))
    if metric:
        metric_names = [m for m in metric_names if m == metric or m.split("/", 1)[1] == metric]
        if not metric_names:  # no final value by that name: the last point of its training curve
            curves = _curve_last(ledger, ids)
            for run_id, values in curves.items():
                metrics.setdefault(run_id, {}).update(values)
            metric_names = sorted({m for values in curves.values() for m in values
                                   if m[:-len(" (last)")] == metric or m[:-len(" (last)")].split("/", 1)[1] == metric})
        if not metric_names:
            raise UsageError(f"--metric {metric}: no run of {script} recorded it")
    rows = []
    for run_id in ids:
        run = runs[run_id]
        row = {"version": run["version"], "run": run_id, "status": run["status"]}
        row.update({k: params[run_id].get(k) for k in differing})
        row.update({m: metrics.get(run_id, {}).get(m) for m in metric_names})
        rows.append(row)
    columns = ["version", "run", "status", *differing, *metric_names]
    if sort:
        key = next((c for c in columns if c == sort or c.split("/", 1)[-1] == sort), None)
        if key is None:
            raise UsageError(f"--sort {sort}: not a column (columns: {', '.join(columns)})")
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        rows = sorted(present, key=lambda r: r[key], reverse=descending) + missing
    return columns, rows


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
