"""Curating runs in the ledger: tags, a note, runs hidden from every listing (``delete``), and what
``gc`` took of a run's files.

Writes go through the writer (``Ledger.tx``): the runner's, when a request of these kinds reaches it
(``apply_curation``), or a command's that holds the project lock while no runner works. Reads take any
``Reads`` (a ``Reader`` shows an older ledger with no tags and nothing deleted).
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .reads import Reads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .ledger import Ledger

CURATIONS = ("tag", "untag", "note", "delete")  # the request kinds ``apply_curation`` acts on


def apply_curation(ledger: Ledger, kind: str, run_id: Optional[int], payload: Mapping[str, Any]) -> str:
    """Do what a curation request asks (its ``payload``: ``runs``, ``tags``, ``note``); the request's
    result text. Every kind is idempotent: applying one twice changes nothing more."""
    runs = [int(i) for i in payload.get("runs") or ([] if run_id is None else [run_id])]
    tags = [str(t) for t in payload.get("tags") or []]
    if kind == "tag":
        add_tags(ledger, runs, tags)
        return "tagged"
    if kind == "untag":
        remove_tags(ledger, runs, tags)
        return "untagged"
    if kind == "note":
        note = payload.get("note")
        for one in runs:
            set_note(ledger, one, str(note) if note else None)
        return "noted"
    if kind == "delete":
        return f"deleted {hide_runs(ledger, runs, ledger.clock())}"
    return f"unknown request {kind!r}"


def add_tags(ledger: Ledger, run_ids: Sequence[int], tags: Sequence[str]) -> None:
    with ledger.tx() as db:
        db.executemany("INSERT OR IGNORE INTO run_tags (run_id, tag) SELECT id, ? FROM runs WHERE id = ?",
                       [(tag, run_id) for run_id in run_ids for tag in tags])


def remove_tags(ledger: Ledger, run_ids: Sequence[int], tags: Sequence[str]) -> None:
    with ledger.tx() as db:
        db.executemany("DELETE FROM run_tags WHERE run_id = ? AND tag = ?",
                       [(run_id, tag) for run_id in run_ids for tag in tags])


def set_note(ledger: Ledger, run_id: int, note: Optional[str]) -> None:
    """A run's note (None clears it)."""
    with ledger.tx() as db:
        db.execute("UPDATE runs SET note = ? WHERE id = ?", (note, run_id))


def hide_runs(ledger: Ledger, run_ids: Sequence[int], at: float) -> int:
    """Hide runs from listings (the caller refused running ones); how many of them are hidden now."""
    with ledger.tx() as db:
        db.executemany("UPDATE runs SET deleted_at = COALESCE(deleted_at, ?) WHERE id = ?",
                       [(at, run_id) for run_id in run_ids])
    return sum(1 for row in ledger.runs(list(run_ids)) if row["deleted_at"] is not None)


def mark_collected(ledger: Ledger, marks: Mapping[int, Sequence[str]], at: float) -> None:
    """Record on each run what ``gc`` removed of it (``model_dir``, ``run_dir``) and when."""
    with ledger.tx() as db:
        for run_id, kinds in marks.items():
            row = db.execute("SELECT collected FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                continue
            collected = {**json.loads(row[0] or "{}"), **{kind: at for kind in kinds}}
            db.execute("UPDATE runs SET collected = ? WHERE id = ?", (json.dumps(collected, sort_keys=True), run_id))


def drop_outputs(ledger: Ledger, run_ids: Sequence[int]) -> None:
    """Forget the cached outputs these runs recorded (their files are the caller's to remove)."""
    with ledger.tx() as db:
        db.executemany("DELETE FROM outputs WHERE run_id = ?", [(run_id,) for run_id in run_ids])


def truncate_wal(ledger: Ledger) -> bool:
    """Copy the WAL back into the ledger and truncate it; False when a reader kept it busy."""
    try:
        busy = ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError:
        return False
    return not busy


# -- reads ------------------------------------------------------------------------------------------------------

def run_tags(reads: Reads, run_ids: Sequence[int]) -> Dict[int, List[str]]:
    """{run id: its tags, sorted} for those of the runs that have any."""
    found: Dict[int, List[str]] = {}
    for run_id, tag in reads._chunked("SELECT run_id, tag FROM run_tags WHERE run_id IN ({marks}) ORDER BY run_id, tag",
                                      list(run_ids), plain=True):
        found.setdefault(run_id, []).append(tag)
    return found


def request_row(reads: Reads, request_id: int) -> Optional[sqlite3.Row]:
    return reads.conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()


def file_runs(reads: Reads) -> List[sqlite3.Row]:
    """Every run that has a model dir or a run folder, with what ``gc`` weighs: oldest first."""
    return reads.conn.execute(
        "SELECT id, script, mode, status, model_dir, run_dir, deleted_at, collected, "
        "runner_id, host, pid, pid_start, heartbeat_at, started_at, slurm_job_id FROM runs "
        "WHERE model_dir IS NOT NULL OR run_dir IS NOT NULL ORDER BY id").fetchall()


def output_files(reads: Reads) -> List[sqlite3.Row]:
    """(run_id, path, size, deleted) of every cached output recorded: ``deleted`` is 1 when its run is
    deleted, 0 when it is not, NULL when the ledger has no such run."""
    return reads.conn.execute("SELECT o.run_id, o.path, o.size, CASE WHEN r.id IS NOT NULL THEN r.deleted_at IS NOT NULL END "
                              "AS deleted FROM outputs o "
                              "LEFT JOIN runs r ON r.id = o.run_id ORDER BY o.id").fetchall()
