"""Import the runs recorded by the original mlpipeline 1.x in its outputs folder.

Per host H it wrote ``history-H``, ``t_history-H``, ``output-H`` and ``log-H``.
Each run becomes a ledger row with ``source='imported'`` and a stable
``source_key``, so importing again adds nothing; what cannot be read is reported
as ``file:line: message`` and skipped. The original's naive local ISO times are
aligned with t_history's epoch stamps through the log, else read in this machine's zone.
"""
from __future__ import annotations

import ast
import datetime
import json
import math
import os
import re
import textwrap
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..plan.config import Project
from ..core.errors import UsageError
from ..store.ledger import Ledger, MetricRow, Mode, RunStatus

SLACK = 2.0  # seconds between the original's writes for one run (t_history, log, output)
PREFIXES = ("history-", "t_history-", "output-")
RULE = "-------------------------------------------"
_HEADER = re.compile(r"^\[(?P<time>[^\]]*)\]:ml-pipline: output:\s*$")
_LOG = re.compile(r"^\[(?P<time>[^\]]*)\]::(?P<level>[A-Z]+) - (?P<msg>.*)$")
_FIELD = re.compile(r"^(Model|Version|Eval on train\s+set|Eval on test\s+set|Number of epocs|"
                    r"Parameters for this version):[ \t]?(.*)$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_METRIC = re.compile(rf"^(?P<name>[^:]+?):\s*(?P<value>{_NUMBER})$")
_REPR = re.compile(r"<[^<>]*>")


class NothingToImportError(UsageError):
    """The folder holds no files of the original mlpipeline."""


@dataclass
class ImportReport:
    """What ``import_history`` did: run counts and ``file:line: message`` notes."""

    imported: int = 0
    already_present: int = 0
    skipped: int = 0
    hosts: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def problem(self, where: str, message: str) -> None:
        self.skipped += 1
        self.problems.append(f"{where}: {message}")


@dataclass
class _Run:
    script: str
    version: str
    where: str                       # the file:line it was first seen at
    stamp: str                       # its start (or block) time as written: part of source_key
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    status: RunStatus = RunStatus.INTERRUPTED
    params: Optional[str] = None     # the original's repr of the version's parameters
    error: Optional[str] = None
    traceback: Optional[str] = None
    fields: Dict[str, str] = field(default_factory=dict)
    summaries: Dict[str, str] = field(default_factory=dict)


@dataclass
class _Loaded:
    """A ``version loaded`` line in the log and what followed it."""

    script: str
    version: str
    at: Optional[float]
    error_at: Optional[float] = None
    spec: Optional[str] = None
    errors: List[str] = field(default_factory=list)
    closed: bool = False


def import_history(project: Project, ledger: Ledger, outputs_dir: Optional[str] = None) -> ImportReport:
    """Add the runs recorded by the original mlpipeline in ``outputs_dir`` to ``ledger``."""
    folder = outputs_dir or project.outputs_dir
    if not os.path.isdir(folder):
        raise NothingToImportError(f"{folder}: no such folder; pass the outputs folder of the original "
                                   f"mlpipeline (it holds history-<host> and output-<host>)")
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise NothingToImportError(f"{folder}: cannot list the folder ({exc.strerror}); check its permissions") from None
    hosts = sorted({name[len(prefix):] for name in names for prefix in PREFIXES
                    if name.startswith(prefix) and len(name) > len(prefix)})
    if not hosts:
        raise NothingToImportError(f"{folder}: nothing to import; expected the original mlpipeline's "
                                   f"history-<host>, t_history-<host> or output-<host> files there")
    report = ImportReport(hosts=hosts)
    for host in hosts:
        for run in _host_runs(folder, host, report):
            _insert(ledger, host, run, report)
    return report


def _lines(folder: str, name: str, report: ImportReport) -> List[str]:
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8", errors="backslashreplace") as handle:
            return handle.read().splitlines()
    except OSError as exc:
        report.problems.append(f"{name}: cannot read ({exc.strerror}); its runs are not imported")
        return []


def _time(text: str) -> Tuple[Optional[float], bool]:
    """Epoch seconds of an ISO time (None if unreadable) and whether it carried a zone."""
    try:
        when = datetime.datetime.fromisoformat(text.strip())
        return when.timestamp(), when.tzinfo is not None
    except (ValueError, OverflowError, OSError):
        return None, False


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _host_runs(folder: str, host: str, report: ImportReport) -> List[_Run]:
    """Every run one host's files describe, oldest first."""
    starts: Dict[Tuple[str, str], List[_Run]] = defaultdict(list)
    finished: Dict[Tuple[str, str], List[Tuple[str, str]]] = defaultdict(list)
    for name, expected in ((f"t_history-{host}", "script::version::start_timestamp"),
                           (f"history-{host}", "script::mtime::version")):
        for number, line in enumerate(_lines(folder, name, report), start=1):
            where, parts = f"{name}:{number}", line.strip().split("::")
            if not line.strip():
                continue
            if name.startswith("t_"):
                script, version, stamp = parts[0], "::".join(parts[1:-1]), parts[-1]
            else:
                script, stamp, version = parts[0], parts[1] if len(parts) > 1 else "", "::".join(parts[2:])
            if len(parts) < 3 or not script or not version or _number(stamp) is None:
                report.problem(where, f"expected {expected}; line skipped")
            elif name.startswith("t_"):
                starts[(script, version)].append(_Run(script, version, where, stamp, started_at=_number(stamp)))
            else:
                finished[(script, version)].append((stamp, where))
    blocks = _read_blocks(folder, f"output-{host}", report)
    loaded = _read_log(folder, f"log-{host}", report)
    offset = _zone_offset(starts, loaded)
    for block in (b for same in blocks.values() for b in same):
        block.ended_at = (block.ended_at or 0.0) + offset
    for event in (e for same in loaded.values() for e in same):
        event.at, event.error_at = (None if t is None else t + offset for t in (event.at, event.error_at))
    runs: List[_Run] = []
    for key in sorted(set(starts) | set(blocks) | set(finished)):
        runs.extend(_pair(key, starts.get(key, []), blocks.get(key, []), finished.get(key, []),
                          loaded.get(key, []), report))
    return sorted(runs, key=lambda r: (r.started_at or r.ended_at or 0.0, r.where))


def _zone_offset(starts: Dict[Tuple[str, str], List[_Run]], loaded: Dict[Tuple[str, str], List[_Loaded]]) -> float:
    """Seconds to add to the original's naive local times to agree with t_history's epoch
    stamps: the most common gap, to the quarter hour, between a start and a log line for it."""
    votes = Counter(round(((s.started_at or 0.0) - e.at) / 900) * 900 for key, same in starts.items()
                    for s in same for e in loaded.get(key, []) if e.at is not None)
    return float(votes.most_common(1)[0][0]) if votes else 0.0


def _pair(key: Tuple[str, str], starts: List[_Run], blocks: List[_Run], finished: List[Tuple[str, str]],
          loaded: List[_Loaded], report: ImportReport) -> List[_Run]:
    """Match one version's output blocks to its starts; the starts left over never finished."""
    starts = sorted(starts, key=lambda r: r.started_at or 0.0)
    unmatched = list(starts)
    runs = []
    for block in sorted(blocks, key=lambda b: b.ended_at or 0.0):
        owner = next((s for s in reversed(unmatched) if (s.started_at or 0.0) <= (block.ended_at or 0.0) + SLACK), None)
        if owner is None:
            block.started_at = block.ended_at
        else:
            unmatched.remove(owner)
            block.started_at, block.stamp = owner.started_at, owner.stamp
        runs.append(block)
    extra = finished[len(blocks):]  # finished per history-H but with no output block
    for start in unmatched:
        begin = start.started_at or 0.0
        end = min((s.started_at or 0.0 for s in starts if (s.started_at or 0.0) > begin), default=float("inf"))
        events = [e for e in loaded if e.at is not None and begin - SLACK <= e.at < end - SLACK]
        event = min(events, key=lambda e: abs((e.at or 0.0) - begin), default=None)
        start.params = event.spec if event else None
        if event and event.errors:
            start.status, start.error, start.ended_at = RunStatus.FAILED, event.errors[0], event.error_at
            start.traceback = "\n".join(event.errors) if len(event.errors) > 1 else None
        elif extra:
            start.status = RunStatus.SUCCEEDED
            report.problems.append(f"{extra.pop(0)[1]}: {key[1]} finished but has no output block; "
                                f"imported without end time or evals")
        else:
            start.error = f"started ({start.where}) but never finished in the original mlpipeline"
        runs.append(start)
    for mtime, where in extra:
        runs.append(_Run(key[0], key[1], where, f"history:{mtime}", status=RunStatus.SUCCEEDED))
        report.problems.append(f"{where}: {key[1]} finished but has no start or output block; imported without times")
    return runs


def _read_blocks(folder: str, name: str, report: ImportReport) -> Dict[Tuple[str, str], List[_Run]]:
    groups: List[Tuple[int, str, List[str]]] = []
    for number, line in enumerate(_lines(folder, name, report), start=1):
        match = _HEADER.match(line)
        if match:
            groups.append((number, match.group("time"), []))
        elif groups:
            groups[-1][2].append(line)
        elif line.strip():
            report.problem(f"{name}:{number}", "text outside any output block; skipped")
    blocks: Dict[Tuple[str, str], List[_Run]] = defaultdict(list)
    ours: List[int] = []
    for number, stamp, body in groups:
        at, zoned = _time(stamp)
        if at is None:
            report.problem(f"{name}:{number}", f"block header has an unreadable time {stamp!r}; block skipped")
        elif zoned:  # written by this mlpipeline, so already in its ledger
            ours.append(number)
        elif (run := _parse_block(f"{name}:{number}", stamp, at, body, report)) is not None:
            blocks[(run.script, run.version)].append(run)
    if ours:
        where = f"{name}:{ours[0]}" + (f" and {len(ours) - 1} more block(s)" if len(ours) > 1 else "")
        report.problems.append(f"{where}: written by mlpipeline 2, whose runs are in its ledger already; "
                               f"not imported")
    return blocks


def _parse_block(where: str, stamp: str, at: float, body: List[str], report: ImportReport) -> Optional[_Run]:
    fields: Dict[str, str] = {}
    summaries: Dict[str, List[str]] = {"model": [], "dataloader": []}
    section: Optional[str] = "head"
    last = None
    for raw in body:
        line = raw[2:] if raw.startswith("\t\t") else raw
        if line.strip() == RULE:
            section = last = None
        elif section is None:
            heading = " ".join(line.split()).upper()
            if heading:  # EXECUTION SUMMERY and any unknown section hold fields
                section = {"MODEL SUMMERY:": "model", "DATALOADER SUMMERY:": "dataloader"}.get(heading, "head")
        elif section in summaries:
            summaries[section].append(line.rstrip())
        elif (match := _FIELD.match(line.strip())):
            last = " ".join(match.group(1).split())
            fields[last] = match.group(2).strip()
        elif last and last.startswith("Eval") and line.strip():  # a multi-line eval
            fields[last] += "\n" + line.strip()
    if not fields.get("Model") or not fields.get("Version"):
        report.problem(where, "output block has no Model: or Version: line; block skipped")
        return None
    run = _Run(fields["Model"], fields["Version"], where, stamp, ended_at=at, status=RunStatus.SUCCEEDED,
               params=fields.get("Parameters for this version"), fields=fields)
    run.summaries = {k: textwrap.dedent("\n".join(v)).strip() for k, v in summaries.items() if "".join(v).strip()}
    return run


def _read_log(folder: str, name: str, report: ImportReport) -> Dict[Tuple[str, str], List[_Loaded]]:
    """Each ``version loaded`` in the log, with its spec and the ERROR lines right after it."""
    loaded: Dict[Tuple[str, str], List[_Loaded]] = defaultdict(list)
    script, current = "", None
    for line in _lines(folder, name, report):
        match = _LOG.match(line)
        if not match:
            if current and current.errors and not current.closed:  # a multi-line error message
                current.errors.append(line)
            continue
        msg, level = match.group("msg").strip(), match.group("level")
        if msg.startswith(("Processing model: ", "Model loaded: ")):
            script, current = msg.split(": ", 1)[1], None
        elif msg.startswith("version loaded: "):
            current = _Loaded(script, msg.split(": ", 1)[1], _time(match.group("time"))[0])
            loaded[(current.script, current.version)].append(current)
        elif current and not current.closed:
            if msg.startswith("Version_spec: "):
                current.spec = msg.split(": ", 1)[1]
            elif level in ("ERROR", "CRITICAL"):
                current.error_at = current.error_at or _time(match.group("time"))[0]
                current.errors.append(msg)
            elif current.errors or msg.startswith(("Model evaluation complete", "=====")):
                current.closed = True
    return loaded


def _literal(text: str) -> Any:
    """A Python or JSON literal; ``<... object at 0x...>`` reprs become strings."""
    for attempt in (json.loads, ast.literal_eval, lambda t: ast.literal_eval(_REPR.sub(lambda m: repr(m.group(0)), t))):
        try:
            return attempt(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def _metrics(text: str, prefix: str) -> Tuple[Dict[str, float], Optional[str]]:
    """Numbers in an eval text, and why there are none when there are none."""
    text = text.strip()
    if not text:
        return {}, None
    if text.startswith("{"):
        value = _literal(text)
        if not isinstance(value, dict):
            return {}, "is not a readable dict; kept as text, no metrics"
        numbers = {str(k): float(v) for k, v in value.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e308}
        if len(numbers) < len(value) and _REPR.search(text):
            return numbers, "holds object reprs, not numbers; kept as text, no metrics for those"
        return numbers, None if numbers else "has no numbers; kept as text, no metrics"
    if _number(text) is not None:
        return {"value": float(text)}, None
    metrics, unread = {}, []
    for token in filter(None, (t.strip() for t in re.split(r"\s{2,}|\t|\n", text))):
        match = _METRIC.match(token)
        if not match:
            unread.append(token)
            continue
        name = match.group("name")
        metrics[name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else name] = float(match.group("value"))
    return metrics, (f"has text that is not 'name: number' ({unread[0][:40]!r}); kept as text" if unread else None)


def _insert(ledger: Ledger, host: str, run: _Run, report: ImportReport) -> None:
    notes = []
    params = _literal(run.params) if run.params is not None else {}
    try:  # a round trip makes every key a string and anything else text
        params = json.loads(json.dumps(params, default=str)) if isinstance(params, dict) else None
    except (TypeError, ValueError, RecursionError):
        params = None
    if params is None:
        notes.append(f"{run.where}: {run.version}: parameters are not a readable dict; kept as text under 'raw'")
        params = {"raw": run.params}
    if run.summaries:
        params["_legacy_summaries"] = run.summaries
    metrics = []
    for split, key, prefix in (("train", "Eval on train set", "TRAIN_"), ("test", "Eval on test set", "TEST_")):
        values, why = _metrics(run.fields.get(key, ""), prefix)
        if why:
            notes.append(f"{run.where}: {run.version}: eval on {split} set {why}")
        metrics += [(split, name, value) for name, value in values.items()]
    row = {
        "uid": uuid.uuid4().hex, "script": run.script, "version": run.version,
        "params": json.dumps(params, sort_keys=True), "mode": Mode.RUN.value,
        "status": run.status.value, "host": host, "started_at": run.started_at, "ended_at": run.ended_at,
        "error": run.error, "traceback": run.traceback, "eval_train_text": run.fields.get("Eval on train set"),
        "eval_test_text": run.fields.get("Eval on test set"), "source": "imported",
        "source_key": f"legacy:{host}:{run.script}:{run.version}:{run.stamp}",
    }
    recorded = run.ended_at or run.started_at or ledger.clock()
    if not ledger.import_run(row, [MetricRow(name, value, None, split) for split, name, value in metrics], recorded):
        report.already_present += 1
        return
    report.imported += 1
    report.problems.extend(notes)
