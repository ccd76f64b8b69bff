"""Listing runs: filters, sorting (by a column or by a result) and paging, as SQL
over ``runs``, with the runs a dead runner left ``running`` read as
``interrupted`` (``liveness``) — looked up only when a filter or a sort needs them."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from ..core.lifecycle import RunStatus
from .liveness import Liveness
from .reads import Reads, script_clause

SORTABLE = ("id", "script", "version", "mode", "status", "started", "duration")


@dataclass(frozen=True)
class RunFilter:
    script: Optional[str] = None      # a path as runs record it, or a file name with or without .py
    version: Optional[str] = None
    status: Optional[str] = None      # as derived: a dead runner's running run is interrupted
    mode: Optional[str] = None
    since: Optional[float] = None     # started at or after (epoch seconds)
    ids: Optional[Sequence[int]] = None
    text: Optional[str] = None        # in script, version, params or error, any case
    tags: Sequence[str] = ()          # tagged with every one of these
    before: Optional[float] = None    # started before (epoch seconds)
    deleted: bool = False             # deleted (hidden) runs too: ``runs --all``


class RunQuery:
    """One read of the runs table through ``reads`` (a Reader, or the writer)."""

    def __init__(self, reads: Reads, now: Optional[float] = None, liveness: Optional[Liveness] = None):
        self.reads = reads
        self.now = time.time() if now is None else now
        self.liveness = liveness or Liveness(reads, now=self.now)
        self._dead: Optional[str] = None

    def dead(self) -> str:
        """The ids of stored-running runs whose owner is gone, as SQL list text."""
        if self._dead is None:
            rows = self.reads.running_runs()
            self._dead = ",".join(str(int(r["id"])) for r in rows
                                  if not self.liveness.run_alive(r) and not self.liveness.detached(r))
        return self._dead

    def where(self, f: RunFilter) -> Tuple[str, List[Any]]:
        clauses: List[str] = []
        args: List[Any] = []
        if f.script:
            clause, more = script_clause(f.script, "runs.script")
            clauses.append(clause)
            args += more
        for column, value in (("version", f.version), ("mode", f.mode)):
            if value:
                clauses.append(f"runs.{column} = ?")
                args.append(value)
        if f.status == RunStatus.RUNNING.value:  # a dead runner's 'running' row reads interrupted
            clauses.append(f"runs.status = ? AND runs.id NOT IN ({self.dead()})")
            args.append(RunStatus.RUNNING.value)
        elif f.status == RunStatus.INTERRUPTED.value:
            clauses.append(f"(runs.status = ? OR runs.id IN ({self.dead()}))")
            args.append(RunStatus.INTERRUPTED.value)
        elif f.status:
            clauses.append("runs.status = ?")
            args.append(f.status)
        if f.since is not None:
            clauses.append("runs.started_at >= ?")
            args.append(f.since)
        if f.before is not None:
            clauses.append("runs.started_at < ?")
            args.append(f.before)
        for tag in f.tags:
            clauses.append("runs.id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
            args.append(tag)
        if not f.deleted:
            clauses.append("runs.deleted_at IS NULL")
        if f.ids is not None:
            clauses.append(f"runs.id IN ({','.join('?' * len(f.ids))})")
            args += list(f.ids)
        if f.text:
            pattern = "%" + f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(" + " OR ".join(f"runs.{c} LIKE ? ESCAPE '\\'" for c in ("script", "version", "params",
                                                                                     "error")) + ")")
            args += [pattern] * 4
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def _order(self, sort: str, descending: bool) -> Tuple[str, List[Any]]:
        """ORDER BY for a list column: values missing last, newest first among equals."""
        if sort == "id":
            return f"runs.id {'DESC' if descending else 'ASC'}", []
        running, interrupted = RunStatus.RUNNING.value, RunStatus.INTERRUPTED.value
        expr, args = {
            "script": ("runs.script", []), "version": ("runs.version", []), "mode": ("runs.mode", []),
            "started": ("runs.started_at", []),
            "status": (f"CASE WHEN runs.id IN ({self.dead()}) THEN ? ELSE runs.status END", [interrupted]),
            "duration": (f"CASE WHEN runs.ended_at IS NOT NULL THEN runs.ended_at - runs.started_at "
                         f"WHEN runs.status = ? THEN (CASE WHEN runs.id IN ({self.dead()}) "
                         f"THEN COALESCE(runs.heartbeat_at, runs.started_at) ELSE {float(self.now)!r} END) "
                         f"- runs.started_at END", [running])}[sort]
        nulls_last = "" if descending or sort in ("script", "mode", "status") else f"{expr} IS NULL, "
        return f"{nulls_last}{expr} {'DESC' if descending else 'ASC'}, runs.id DESC", args * (2 if nulls_last else 1)

    def ids(self, f: RunFilter, sort: str, descending: bool, limit: Optional[int], offset: int) -> List[int]:
        """Run ids by a list column (``SORTABLE``) or by a result (``test/acc``: runs without it last)."""
        where, args = self.where(f)
        if sort in SORTABLE:
            order, more = self._order(sort, descending)
            return [r[0] for r in self.reads.conn.execute(
                f"SELECT runs.id FROM runs{where} ORDER BY {order} LIMIT {int(limit) if limit else -1} "
                f"OFFSET {offset}", args + more)]
        return self._by_result(sort, where, args, descending, limit, offset)

    def _by_result(self, label: str, where: str, args: List[Any], descending: bool, limit: Optional[int],
                   offset: int) -> List[int]:
        split, _, name = label.partition("/")
        conn, joined = self.reads.conn, " JOIN runs ON runs.id = s.run_id" if where else ""  # filters need the run
        where = where or " WHERE 1"
        has = "s.name = ? AND s.split = ? AND s.has_final = 1 AND s.final IS NOT NULL"
        found = [r[0] for r in conn.execute(
            f"SELECT s.run_id FROM metric_summary s{joined}{where} AND {has} "
            f"ORDER BY s.final {'DESC' if descending else 'ASC'}, s.run_id DESC LIMIT ? OFFSET ?",
            [*args, name, split, -1 if limit is None else limit, offset])]
        if limit is not None and len(found) == limit:
            return found
        with_metric = offset + len(found) if found or not offset else conn.execute(
            f"SELECT COUNT(*) FROM metric_summary s{joined}{where} AND {has}", [*args, name, split]).fetchone()[0]
        return found + [r[0] for r in conn.execute(
            f"SELECT runs.id FROM runs{where} AND runs.id NOT IN (SELECT s.run_id FROM metric_summary s WHERE {has}) "
            f"ORDER BY runs.id DESC LIMIT ? OFFSET ?",
            [*args, name, split, -1 if limit is None else limit - len(found), max(0, offset - with_metric)])]

    def count(self, f: RunFilter) -> int:
        where, args = self.where(f)
        return int(self.reads.conn.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0])
