"""Tags, notes and deleting (hiding) runs, written through the one door the ledger has.

While a runner works on the project it is the ledger's one writer: the change is a request (the
requests table) that it applies at its next step, and the caller waits until it has. While none
does, the change is written here, under the project lock (``RunnerLock``), held only for the moment
the write takes: a runner starting then waits its turn, as it would for another runner.
"""
from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional, Sequence

from ..core.errors import MLPipelineError, UsageError, display
from ..core.layout import Project
from ..core.lifecycle import RunStatus
from ..proc.system import hostname
from ..store.curate import apply_curation, request_row
from ..store.ledger import add_request, open_ledger
from ..store.liveness import Liveness
from ..store.lock import LockHeld, RunnerLock
from ..store.reader import Reader, open_reader
from .queries import list_runs, resolve_run

REQUEST_WAIT = 15.0  # seconds a live runner has to take a request before the caller is told it is pending
TAG = re.compile(r"(?!-)[^\s,\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]{1,64}")
NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline
MAX_NOTE = 10_000


class RequestPending(MLPipelineError):
    """A live runner has not yet taken a request (it applies it at its next step)."""


def check_tags(tags: Sequence[str]) -> List[str]:
    """The tags, each checked: 1 to 64 characters, no space or comma; duplicates dropped."""
    if not tags:
        raise UsageError("give at least one tag, e.g. baseline")
    for tag in tags:
        if not isinstance(tag, str) or not TAG.fullmatch(tag) or not _utf8(tag):
            raise UsageError(f"tag {tag!r}: give 1 to 64 characters without spaces, commas or invisible characters, "
                             f"not starting with -, e.g. baseline")
    return list(dict.fromkeys(tags))


def _utf8(text: str) -> bool:
    """Whether ``text`` is real text (an argument the terminal could not decode holds surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reader(project: Project, what: str) -> Reader:
    reader = open_reader(project.outputs_dir)
    if reader is None:
        raise UsageError(f"{what}: no runs recorded yet in this project; run mlpipeline -r first")
    return reader


def _resolve(project: Project, refs: Sequence[str], what: str) -> List[Dict[str, Any]]:
    reader = _reader(project, what)
    try:
        runs = [resolve_run(reader, ref) for ref in refs]
    finally:
        reader.close()
    return list({run["id"]: run for run in runs}.values())


def tag_runs(project: Project, refs: Sequence[str], tags: Sequence[str], remove: bool = False) -> Dict[str, Any]:
    """Add ``tags`` to the runs ``refs`` name (ids or uid prefixes), or with ``remove`` take them off."""
    tags = check_tags(tags)
    runs = _resolve(project, refs, "untag" if remove else "tag")
    via = write(project, "untag" if remove else "tag", [r["id"] for r in runs], {"tags": tags})
    return {"runs": [r["id"] for r in runs], "tags": tags, "via": via}


def note_run(project: Project, ref: str, text: str) -> Dict[str, Any]:
    """Set a run's note; empty text clears it."""
    if len(text) > MAX_NOTE:
        raise UsageError(f"note: {len(text)} characters is over the limit of {MAX_NOTE}")
    text = text.replace("\r\n", "\n")
    if not _utf8(text):
        raise UsageError("note: the text is not valid UTF-8 (check the terminal's encoding)")
    if NOTE_CONTROL.search(text):
        bad = NOTE_CONTROL.search(text).group()  # type: ignore[union-attr]
        raise UsageError(f"note: the text holds a control character ({bad!r}); write it without one (tabs and "
                         f"newlines are kept)")
    run = _resolve(project, [ref], "note")[0]
    note = text.strip() or None
    via = write(project, "note", [run["id"]], {"note": note})
    return {"run": run["id"], "note": note, "via": via}


def runs_to_delete(project: Project, refs: Sequence[str] = (), script: Optional[str] = None,
                   status: Optional[str] = None, before: Optional[float] = None) -> Dict[str, Any]:
    """The runs ``delete`` would hide: those ``refs`` name (a running one is refused), or those the
    filters select among the runs not deleted yet (running ones are left out and counted)."""
    if not refs and not any((script, status, before is not None)):
        raise UsageError("delete: name the runs (RUN...) or select them with --script, --status and --before")
    if refs and any((script, status, before is not None)):
        raise UsageError("delete: name the runs (RUN...) or select them with --script, --status and --before, not "
                         "both: the runs named are deleted whatever the filters say")
    if refs:
        runs = _resolve(project, refs, "delete")
        running = [r for r in runs if r["status"] == RunStatus.RUNNING.value]
        if running:
            shown = ", ".join(str(r["id"]) for r in running)
            raise UsageError(f"run {shown} is running; cancel it first (mlpipeline cancel {running[0]['id']}) or wait "
                             f"for it to end, then delete it")
        gone = [r["id"] for r in runs if r["deleted_at"] is not None]
        return {"runs": [r for r in runs if r["deleted_at"] is None], "running_left": 0, "already": gone}
    reader = _reader(project, "delete")
    try:
        found = list_runs(reader, script=script, status=status, before=before, limit=None)
    finally:
        reader.close()
    runs = [r for r in found if not r["status"].startswith(RunStatus.RUNNING.value)]
    return {"runs": runs, "running_left": len(found) - len(runs), "already": []}


def delete_runs(project: Project, run_ids: Sequence[int]) -> Dict[str, Any]:
    """Hide runs from every listing (``runs --all`` shows them); their rows, files and history stay
    until ``gc`` takes the files."""
    via = write(project, "delete", list(run_ids), {})
    return {"runs": list(run_ids), "via": via}


# -- the door --------------------------------------------------------------------------------------------------

def _live_runner(reader: Reader) -> Optional[Dict[str, Any]]:
    row = reader.latest_runner()
    if row is None or not Liveness(reader).runner_alive(row):
        return None
    return {"id": row["id"], "pid": row["pid"], "host": row["host"]}


def write(project: Project, kind: str, run_ids: Sequence[int], payload: Dict[str, Any],
          wait: float = REQUEST_WAIT) -> str:
    """Apply a curation (``tag``, ``untag``, ``note``, ``delete``) to ``run_ids``: through the live
    runner, or directly under the project lock. Says which: ``runner pid N`` or ``the ledger``."""
    payload = {**payload, "runs": [int(i) for i in run_ids]}
    deadline = time.monotonic() + wait
    while True:
        reader = _reader(project, kind)
        try:
            runner = _live_runner(reader)
        finally:
            reader.close()
        if runner is not None:
            return _through_runner(project, runner, kind, payload, deadline)
        try:
            _direct(project, kind, payload)
            return "the ledger"
        except LockHeld:  # a runner is starting (it is alive in a moment), or a command writes briefly
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _direct(project: Project, kind: str, payload: Dict[str, Any], request_id: Optional[int] = None) -> str:
    """The write itself, while no runner works: under the lock (LockHeld when someone holds it)."""
    lock = RunnerLock(project.outputs_dir)
    lock.acquire(hostname(), kind)
    try:
        ledger = open_ledger(project.outputs_dir)
        try:
            result = apply_curation(ledger, kind, None, payload)
            if request_id is not None:  # a request its runner died before taking: answered here
                ledger.consume_request(request_id, None, result)
            return result
        finally:
            ledger.close()
    finally:
        lock.release()


def _through_runner(project: Project, runner: Dict[str, Any], kind: str, payload: Dict[str, Any],
                    deadline: float) -> str:
    """Ask the live runner, and wait until it has done it. A runner that ends before taking the request
    leaves it to be answered here, under the lock (every curation is idempotent)."""
    request_id = add_request(project.ledger_path, kind, payload["runs"][0] if payload["runs"] else None, payload)
    reader = _reader(project, kind)
    try:
        while True:
            row = request_row(reader, request_id)
            if row is not None and row["consumed_at"] is not None:
                if str(row["result"] or "").startswith("unknown request"):
                    raise UsageError(f"the runner (pid {runner['pid']}) is an older "
                                     f"mlpipeline that cannot {kind} runs; stop it (or let it end) and run "
                                     f"mlpipeline {kind} again")
                return f"runner pid {runner['pid']}"
            if _live_runner(reader) is None:
                try:
                    _direct(project, kind, payload, request_id)
                    return "the ledger"
                except LockHeld:  # a new runner is starting: it takes the request
                    pass
            if time.monotonic() > deadline:
                raise RequestPending(f"{display(project.ledger_path)}: the runner (pid {runner['pid']}) has not "
                                     f"taken the {kind} request yet; it applies it at its next step (see "
                                     f"mlpipeline status)")
            time.sleep(0.05)
    finally:
        reader.close()
