"""The questions asked of the ledger, in SQL, once: the runner (on the writer's
connection) and every reader (read-only, in the newest shape) share them.

``Reads`` is mixed into ``Ledger`` and ``Reader``; each method returns rows
(``sqlite3.Row``, read like dicts) or plain values, never a cursor. Statuses are
passed as ``RunStatus`` values, never spelled here.
"""
from __future__ import annotations

import json
import os
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..core.lifecycle import SYSTEM_SPLIT, Mode, RunStatus

Key = Tuple[str, str]  # (split, name)
CHUNK = 500  # ids per IN (...) list

_UNFINISHED = (RunStatus.RUNNING.value, RunStatus.QUEUED.value)


def script_clause(script: str, column: str = "script") -> Tuple[str, List[Any]]:
    """A WHERE clause for rows of ``script``: its path as runs record it (models/a.py), or its
    file name with or without .py — matched exactly, case included (``Case.py`` is not ``case.py``)."""
    name = os.path.basename(script if script.endswith(".py") else script + ".py")
    glob = "".join(f"[{c}]" if c in "*?[" else c for c in name)
    return f"({column} = ? OR {column} = ? OR {column} GLOB ?)", [script, name, f"*/{glob}"]


def _marks(ids: Sequence[Any]) -> str:
    return ",".join("?" * len(ids))


class Reads:
    """Read questions on ``self.conn`` (a connection whose schema is the newest)."""

    conn: sqlite3.Connection

    def _chunked(self, sql: str, ids: Sequence[int], plain: bool = False, extra: Sequence[Any] = ()) -> List[Any]:
        """``sql`` (``{marks}`` for the ids, then ``extra``'s marks) run CHUNK ids at a time."""
        cursor = self.conn.cursor()
        if plain:
            cursor.row_factory = None  # tuples: a Row per point costs more than the query
        found: List[Any] = []
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start:start + CHUNK])
            found += cursor.execute(sql.format(marks=_marks(chunk)), [*chunk, *extra]).fetchall()
        return found

    # -- runs ---------------------------------------------------------------------------------------------------

    def get_run(self, run_id: int) -> Optional[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def runs(self, ids: Sequence[int]) -> List[sqlite3.Row]:
        """The runs with these ids, in id order."""
        return sorted(self._chunked("SELECT * FROM runs WHERE id IN ({marks})", ids), key=lambda r: r["id"])

    def max_run_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0])

    def runs_by_uid_prefix(self, prefix: str, limit: int = 6) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runs WHERE uid >= ? AND uid < ? ORDER BY id LIMIT ?",
                                 (prefix.lower(), prefix.lower() + "g", limit)).fetchall()

    def model_dir_scripts(self, model_dir: str, script: str) -> List[str]:
        """The other scripts whose runs used ``model_dir`` (two scripts of one file name in different folders
        would share it)."""
        return [row[0] for row in self.conn.execute("SELECT DISTINCT script FROM runs WHERE model_dir = ? AND "
                                                    "script != ? LIMIT 20", (model_dir, script))]

    def running_runs(self) -> List[sqlite3.Row]:
        """Runs stored as running (whether their runner still lives is for ``liveness`` to say)."""
        return self.conn.execute("SELECT * FROM runs WHERE status = ? ORDER BY id",
                                 (RunStatus.RUNNING.value,)).fetchall()

    def unfinished_runs(self) -> List[sqlite3.Row]:
        return self.conn.execute(f"SELECT * FROM runs WHERE status IN ({_marks(_UNFINISHED)}) ORDER BY id",
                                 _UNFINISHED).fetchall()

    def runs_after(self, run_id: int) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runs WHERE id > ? ORDER BY id", (run_id,)).fetchall()

    def scripts(self, mode: Optional[Mode] = None, matching: Optional[str] = None,
                limit: Optional[int] = None) -> List[str]:
        """The scripts runs not deleted were recorded for, sorted (of ``mode``; matching a path or file name)."""
        clauses: List[str] = ["deleted_at IS NULL"]
        args: List[Any] = []
        if mode is not None:
            clauses.append("mode = ?")
            args.append(Mode(mode).value)
        if matching is not None:
            clause, more = script_clause(matching)
            clauses.append(clause)
            args += more
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return [r[0] for r in self.conn.execute(f"SELECT DISTINCT script FROM runs{where} ORDER BY script "
                                                f"LIMIT {int(limit) if limit else -1}", args)]

    def latest_runs_per_version(self, script: str) -> Dict[str, int]:
        """{version: its latest succeeded execution-mode run, or its last one if none succeeded}, deleted runs
        aside."""
        chosen: Dict[str, int] = {}
        for version, run_id in self.conn.execute(
                "SELECT version, MAX(id) FROM runs WHERE script = ? AND mode = ? AND status = ? "
                "AND version IS NOT NULL AND deleted_at IS NULL GROUP BY version",
                (script, Mode.RUN.value, RunStatus.SUCCEEDED.value)):
            chosen[version] = run_id
        for version, run_id in self.conn.execute(
                "SELECT version, MAX(id) FROM runs WHERE script = ? AND mode = ? AND version IS NOT NULL "
                "AND deleted_at IS NULL GROUP BY version", (script, Mode.RUN.value)):
            chosen.setdefault(version, run_id)
        return chosen

    def succeeded_params(self, script: str) -> List[Tuple[int, str, str]]:
        """(id, version, params text) of the script's succeeded execution-mode runs not deleted, newest first."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute("SELECT id, version, params FROM runs WHERE script = ? AND mode = ? AND status = ? "
                              "AND deleted_at IS NULL ORDER BY id DESC",
                              (script, Mode.RUN.value, RunStatus.SUCCEEDED.value)).fetchall()

    def later_runs_in(self, model_dir: str, after: int) -> List[sqlite3.Row]:
        """Runs after ``after`` that used ``model_dir`` (their versions may have changed it since)."""
        return self.conn.execute("SELECT id, status FROM runs WHERE model_dir = ? AND id > ? ORDER BY id",
                                 (model_dir, after)).fetchall()

    def succeeded_last(self, script: str) -> Dict[str, Tuple[Optional[str], Optional[str], Optional[str]]]:
        """{version: (fingerprint, params_sha256, script_sha256)} for the versions of
        ``script`` whose last execution-mode run succeeded: what ``-u`` compares against."""
        rows = self.conn.execute(
            "SELECT version, status, fingerprint, params_sha256, script_sha256 FROM runs WHERE id IN "
            "(SELECT MAX(id) FROM runs WHERE script = ? AND mode = ? AND version IS NOT NULL GROUP BY version)",
            (script, Mode.RUN.value))
        return {r["version"]: (r["fingerprint"], r["params_sha256"], r["script_sha256"]) for r in rows
                if r["status"] == RunStatus.SUCCEEDED.value}

    def last_attempt(self, script: str, version: str) -> Optional[sqlite3.Row]:
        """The last execution-mode run of a version (id, status, attempt, signal, reason): where a retry chain a
        dead runner left goes on."""
        return self.conn.execute("SELECT id, status, attempt, signal, reason, runner_id FROM runs WHERE script = ? "
                                 "AND version = ? AND mode = ? ORDER BY id DESC LIMIT 1",
                                 (script, version, Mode.RUN.value)).fetchone()

    def search_runs(self, script: str, search: str, fingerprint: str) -> List[sqlite3.Row]:
        """The finished execution-mode runs of ``search``'s points (versions named ``<search>-<hash>``)
        with the script's code as it is now (``fingerprint``), oldest first: a search's history."""
        pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"
        return self.conn.execute(
            "SELECT id, version, status, params, params_sha256 FROM runs WHERE script = ? AND mode = ? "
            f"AND version LIKE ? ESCAPE '\\' AND fingerprint = ? AND status NOT IN ({_marks(_UNFINISHED)}) "
            "ORDER BY id", (script, Mode.RUN.value, pattern, fingerprint, *_UNFINISHED)).fetchall()

    # -- metrics ------------------------------------------------------------------------------------------------

    def results(self, run_ids: Sequence[int]) -> Dict[int, Dict[Key, Optional[float]]]:
        """Each run's results (values recorded without a step: what ``evaluate_model`` returned)."""
        return self._per_run("SELECT run_id, split, name, value FROM metrics WHERE run_id IN ({marks}) "
                             "AND step IS NULL ORDER BY rowid", run_ids)

    def curve_last(self, run_ids: Sequence[int]) -> Dict[int, Dict[Key, Optional[float]]]:
        """The last point of each of the runs' curves."""
        return self._per_run("SELECT run_id, split, name, value FROM metrics WHERE rowid IN (SELECT MAX(rowid) "
                             "FROM metrics WHERE run_id IN ({marks}) AND step IS NOT NULL GROUP BY run_id, split, "
                             "name)", run_ids)

    def run_metrics(self, run_ids: Sequence[int]) -> Dict[int, Dict[Key, Optional[float]]]:
        """Per run and metric, its result, else its curve's last value (from the summaries)."""
        return self._per_run("SELECT run_id, split, name, CASE WHEN has_final THEN final ELSE last END "
                             "FROM metric_summary WHERE run_id IN ({marks})", run_ids)

    def _per_run(self, sql: str, run_ids: Sequence[int]) -> Dict[int, Dict[Key, Optional[float]]]:
        """``{run id: {(split, name): value}}`` from ``sql``'s (run_id, split, name, value) rows, the
        later row winning."""
        found: Dict[int, Dict[Key, Optional[float]]] = {}
        for run_id, split, name, value in self._chunked(sql, run_ids, plain=True):
            found.setdefault(run_id, {})[(split, name)] = value
        return found

    def curves(self, run_ids: Sequence[int]) -> List[Tuple[int, str, str, int, Optional[float]]]:
        """(run id, split, name, step, value) of the runs' curve points, by run and step."""
        return self._chunked("SELECT run_id, split, name, step, value FROM metrics WHERE run_id IN ({marks}) "
                             "AND step IS NOT NULL ORDER BY run_id, step, rowid", run_ids, plain=True)

    def metric_points(self, run_ids: Sequence[int], split: str, name: str) -> List[Tuple[int, int, Optional[float]]]:
        """(run id, step, value) of one curve (``split/name``) of each of the runs, by run and step; a value
        that is not finite reads None."""
        return self._chunked("SELECT run_id, step, CASE WHEN abs(value) < 9e999 THEN value END FROM metrics "
                             "WHERE run_id IN ({marks}) AND name = ? AND split = ? AND step IS NOT NULL "
                             "ORDER BY run_id, step", run_ids, plain=True, extra=(name, split))

    def metric_summaries(self, run_id: int) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM metric_summary WHERE run_id = ? ORDER BY split DESC, name",
                                 (run_id,)).fetchall()

    def metric_keys(self, run_ids: Sequence[int]) -> List[Key]:
        """The (split, name) of every metric the runs recorded."""
        return sorted({(r[0], r[1]) for r in self._chunked(
            "SELECT DISTINCT split, name FROM metric_summary WHERE run_id IN ({marks})", run_ids, plain=True)})

    def result_keys(self, limit: int = 1000) -> List[Key]:
        """The (split, name) of the results runs have, walking the index of results one key at a time."""
        def after(column: str, where: str, *args: Any) -> Optional[str]:
            row = self.conn.execute(f"SELECT {column} FROM metric_summary WHERE has_final = 1 AND {where} "
                                    f"ORDER BY {column} LIMIT 1", args).fetchone()
            return row[0] if row else None

        keys: List[Key] = []
        name = after("name", "name >= ?", "")
        while name is not None and len(keys) < limit:
            split = after("split", "name = ? AND split >= ?", name, "")
            while split is not None:
                keys.append((split, name))
                split = after("split", "name = ? AND split > ?", name, split)
            name = after("name", "name > ?", name)
        return keys

    def points(self, run_id: int, name: Optional[str] = None, split: Optional[str] = None) -> List[sqlite3.Row]:
        """(split, name, step, value, recorded_at) of a run's points, in the order they were recorded."""
        sql, args = _of_metric("SELECT split, name, step, value, recorded_at FROM metrics WHERE run_id = ?",
                               run_id, name, split)
        return self.conn.execute(sql + " ORDER BY rowid", args).fetchall()

    def curve_points(self, run_id: int, name: Optional[str] = None,
                     split: Optional[str] = None) -> List[Tuple[str, str, int, Optional[float]]]:
        """(split, name, step, value) of a run's curve points by name and step; a value that is
        not finite reads None."""
        sql, args = _of_metric("SELECT split, name, step, CASE WHEN abs(value) < 9e999 THEN value END FROM metrics "
                               "WHERE run_id = ? AND step IS NOT NULL", run_id, name, split)
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(sql + " ORDER BY name, step", args).fetchall()

    def last_point(self, run_id: int) -> Optional[sqlite3.Row]:
        """The curve point the version recorded last (from the summaries: a run's curves are never scanned;
        not one the runner sampled, in the ``sys`` split)."""
        return self.conn.execute("SELECT split, name, last_step AS step, last AS value FROM metric_summary "
                                 "WHERE run_id = ? AND count > 0 AND split != ? "
                                 "ORDER BY updated_at DESC, last_step DESC LIMIT 1", (run_id, SYSTEM_SPLIT)).fetchone()

    # -- runners, the queue, requests ---------------------------------------------------------------------------

    def runner(self, runner_id: int) -> Optional[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runners WHERE id = ?", (runner_id,)).fetchone()

    def latest_runner(self) -> Optional[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runners ORDER BY id DESC LIMIT 1").fetchone()

    def open_runners(self) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM runners WHERE ended_at IS NULL").fetchall()

    def queue(self, runner_id: int) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM queue WHERE runner_id = ? ORDER BY position", (runner_id,)).fetchall()

    def open_requests(self) -> List[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM requests WHERE consumed_at IS NULL ORDER BY id").fetchall()

    def data_version(self) -> int:
        """Changes when another connection commits (SQLite's ``data_version``)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    # -- script descriptions and cached outputs -----------------------------------------------------------------

    def cached_script(self, key: str) -> Optional[Dict[str, Any]]:
        """A script description the runner cached (``describe``), by its cache key."""
        row = self.conn.execute("SELECT info FROM script_cache WHERE sha256 = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def environment(self, sha256: Optional[str]) -> Optional[Dict[str, Any]]:
        """A recorded environment (``core.environment``) by its sha256; None when there is none."""
        if not sha256:
            return None
        row = self.conn.execute("SELECT info FROM environments WHERE sha256 = ?", (sha256,)).fetchone()
        return json.loads(row[0]) if row else None

    def output_scripts(self, matching: Optional[str] = None, limit: Optional[int] = None) -> List[str]:
        clause, args = script_clause(matching) if matching is not None else ("1", [])
        return [r[0] for r in self.conn.execute(f"SELECT DISTINCT script FROM outputs WHERE {clause} ORDER BY script "
                                                f"LIMIT {int(limit) if limit else -1}", args)]

    def outputs(self, script: Optional[str] = None, version: Optional[str] = None,
                matching: Optional[str] = None) -> List[sqlite3.Row]:
        """Recorded outputs, newest first: of ``script`` (as runs record it) and ``version``, or of
        the scripts ``matching`` a path or file name, or all."""
        clauses: List[str] = []
        args: List[Any] = []
        if matching is not None:
            clause, args = script_clause(matching)
            clauses.append(clause)
        if script is not None:
            clauses.append("script = ?")
            args.append(script)
        if version is not None:
            clauses.append("version = ?")
            args.append(version)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return self.conn.execute(f"SELECT * FROM outputs{where} ORDER BY id DESC", args).fetchall()


def on_connection(conn: sqlite3.Connection) -> Reads:
    """The read questions on a connection of the caller's own."""
    reads = Reads()
    reads.conn = conn
    return reads


def _of_metric(sql: str, run_id: int, name: Optional[str], split: Optional[str]) -> Tuple[str, List[Any]]:
    """``sql`` (which selects one run's points) narrowed to a metric's name and split where given."""
    args: List[Any] = [run_id]
    for column, value in (("name", name), ("split", split)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    return sql, args
