"""``mlpipeline gc``: remove the files nothing kept needs, and say first what that frees.

What it takes: the run folders (``outputs/runs/<id>``) of deleted runs; the model dirs
(``outputs/model_ckpts/...``, with the marker beside each) that only deleted runs point to, or, with ``[MLP] keep = N by METRIC``,
that only runs ranked below a script's best N point to; the cached outputs (``outputs/cache/``) only
deleted runs recorded; and the ledger's write-ahead log (a checkpoint that truncates it). The rows stay:
history, ``-u`` and ``show`` stay exact, and ``show`` says what was collected and when.

What it never takes:
- anything while a runner works on the project: gc is refused, naming the runner's pid, and the plan
  is made again and carried out under the project lock, so none can start meanwhile;
- anything of a run still running or queued: its status derived as every reader derives it (a run whose
  runner died is interrupted, and its files go like any other's; a detached Slurm job goes on without
  its runner, and keeps them);
- a model dir a kept run points to (kept: not deleted, and not ranked out by ``keep``);
- a cached file that a kept run's output row names (files are shared by content);
- what the ledger does not know (a folder no run points to), nor any path outside the project's
  ``outputs/model_ckpts``, ``outputs/runs`` and ``outputs/cache`` (a moved project, an imported run);
  a symbolic link is never followed.
``keep`` ranks only scripts that recorded its metric: a script that never did keeps every model dir
(and gc says so). It ranks only model dirs under ``outputs/model_ckpts``: a run whose model dir is
elsewhere (``rerun --exact`` trains in its checkout under ``outputs/rerun/``) neither takes a best
place nor loses its dir.
"""
from __future__ import annotations

import math
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..core.errors import UsageError, display
from ..core.layout import CACHE_DIR, MODEL_DIRS, RUN_DIRS, Project, tree_size
from ..core.lifecycle import Mode, RunStatus
from ..plan.config import read_queue_config
from ..script.execute import marker_path
from ..proc.system import hostname
from ..store.curate import drop_outputs, file_runs, mark_collected, output_files, truncate_wal
from ..store.ledger import Ledger, open_ledger
from ..store.liveness import Liveness
from ..store.lock import RunnerLock
from ..store.reader import open_reader
from ..store.reads import Reads
from .queries import LOWER_IS_BETTER

_UNFINISHED = (RunStatus.RUNNING.value, RunStatus.QUEUED.value)


@dataclass
class Item:
    """One thing gc removes: a folder or a file, its size, and the runs that pointed to it."""

    path: str
    size: int
    runs: List[int] = field(default_factory=list)


@dataclass
class GcPlan:
    model_dirs: List[Item] = field(default_factory=list)
    run_dirs: List[Item] = field(default_factory=list)
    outputs: List[Item] = field(default_factory=list)    # cached files
    output_runs: List[int] = field(default_factory=list)  # deleted runs whose output rows go
    wal: int = 0                                          # bytes of write-ahead log now
    keep: Optional[Tuple[int, str]] = None
    ranked_out: List[int] = field(default_factory=list)   # runs whose model dirs keep lets go
    unranked: List[str] = field(default_factory=list)     # scripts with runs that never recorded keep's metric
    wal_busy: bool = False                                # a reader kept the WAL from being truncated
    problems: List[str] = field(default_factory=list)     # what could not be removed (gc itself)

    def summary(self) -> List[Dict[str, Any]]:
        """One row per kind: what, count, bytes."""
        rows: List[Dict[str, Any]] = [
            {"what": "model dirs", "count": len(self.model_dirs), "bytes": sum(i.size for i in self.model_dirs)},
            {"what": "run folders", "count": len(self.run_dirs), "bytes": sum(i.size for i in self.run_dirs)},
            {"what": "cached outputs", "count": len(self.outputs), "bytes": sum(i.size for i in self.outputs)},
            {"what": "ledger WAL", "count": 1 if self.wal else 0, "bytes": self.wal}]
        return rows

    @property
    def empty(self) -> bool:
        return not (self.model_dirs or self.run_dirs or self.outputs or self.output_runs)


def keep_rule(project: Project) -> Optional[Tuple[int, str]]:
    """``[MLP] keep`` of models.config (a bad value is a ConfigError naming file and line)."""
    path = project.config_path(False)
    return read_queue_config(path).keep if os.path.exists(path) else None


def plan_gc(project: Project, allow_runner: bool = False) -> GcPlan:
    """What ``gc`` would remove now, from a read-only look (nothing is changed). A runner at work
    is refused unless ``allow_runner`` (a dry run)."""
    keep = keep_rule(project)
    reader = open_reader(project.outputs_dir)
    if reader is None:
        return GcPlan(keep=keep)
    try:
        if not allow_runner:
            _refuse_live_runner(project, reader)
        return _plan(project, reader, keep)
    finally:
        reader.close()


def collect(project: Project) -> GcPlan:
    """Remove what ``plan_gc`` finds, planned again under the project lock (no runner starts while
    gc works); returns what was removed, with any ``problems``."""
    keep = keep_rule(project)
    if not os.path.exists(project.ledger_path):
        return GcPlan(keep=keep)
    lock = RunnerLock(project.outputs_dir)
    lock.acquire(hostname(), "gc")  # LockHeld (naming the runner's pid) while a runner works
    try:
        ledger = open_ledger(project.outputs_dir)
        try:
            _refuse_live_runner(project, ledger)  # one on another host, where the lock may not reach
            plan = _plan(project, ledger, keep)
            _carry_out(plan, ledger)
        finally:
            ledger.close()
    finally:
        lock.release()
    return plan


def _refuse_live_runner(project: Project, reads: Reads) -> None:
    row = reads.latest_runner()
    if row is not None and Liveness(reads).runner_alive(row):
        raise UsageError(f"{display(project.root)}: a runner (pid {row['pid']} on {row['host']}) works on this "
                         f"project; gc runs while none does: stop it (or let it end), then run mlpipeline gc again "
                         f"(--dry-run shows what it would free)")


def _inside(path: str, folder: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real != base and real.startswith(base + os.sep)


def _removable_dir(path: Optional[str], folder: str) -> bool:
    return bool(path) and os.path.isdir(str(path)) and not os.path.islink(str(path)) and _inside(str(path), folder)


def _unfinished(reads: Reads, rows: Sequence[sqlite3.Row]) -> Set[int]:
    """The runs still running or queued, as every reader derives it: a run stored ``running`` whose
    runner is gone is interrupted (unless it is a detached Slurm job, which goes on)."""
    liveness = Liveness(reads)
    out: Set[int] = set()
    for r in rows:
        if r["status"] in _UNFINISHED:
            derived = liveness.derive(r)
            if derived["status"] in _UNFINISHED or derived.get("detached"):
                out.add(r["id"])
    return out


def _plan(project: Project, reads: Reads, keep: Optional[Tuple[int, str]]) -> GcPlan:
    plan = GcPlan(keep=keep)
    rows = file_runs(reads)
    unfinished = _unfinished(reads, rows)
    kept = [r for r in rows if r["deleted_at"] is None]
    models = os.path.join(project.outputs_dir, MODEL_DIRS)
    ranked_out, plan.unranked = _ranked_out(reads, kept, keep, unfinished, models)
    plan.ranked_out = sorted(ranked_out)
    norm = os.path.normpath
    needed = {norm(r["model_dir"]) for r in rows if r["model_dir"] and (
        r["id"] in unfinished or (r["deleted_at"] is None and r["id"] not in ranked_out))}
    found: Dict[str, Item] = {}
    for r in rows:
        path = norm(r["model_dir"]) if r["model_dir"] else None
        if path is None or path in needed or not _removable_dir(path, models):
            continue
        item = found.get(path) or found.setdefault(path, Item(path, tree_size(path) + tree_size(marker_path(path))))
        item.runs.append(r["id"])
    plan.model_dirs = list(found.values())
    runs_folder = os.path.join(project.outputs_dir, RUN_DIRS)
    kept_run_dirs = {norm(r["run_dir"]) for r in rows if r["run_dir"] and
                     (r["deleted_at"] is None or r["id"] in unfinished)}
    for r in rows:
        path = norm(r["run_dir"]) if r["run_dir"] else None
        if r["deleted_at"] is None or r["id"] in unfinished or path is None or path in kept_run_dirs:
            continue
        if _removable_dir(path, runs_folder):
            plan.run_dirs.append(Item(path, tree_size(path), [r["id"]]))
    _plan_outputs(project, reads, plan)
    try:
        plan.wal = os.path.getsize(project.ledger_path + "-wal")
    except OSError:
        plan.wal = 0
    return plan


def _plan_outputs(project: Project, reads: Reads, plan: GcPlan) -> None:
    """Cached files named only by deleted runs' rows (a file is shared by every row of its content)."""
    named_by_kept: Set[str] = set()
    named_by_deleted: Dict[str, Item] = {}
    gone: Set[int] = set()
    cache = os.path.join(project.outputs_dir, CACHE_DIR)
    for row in output_files(reads):
        rel = str(row["path"])
        if row["deleted"] != 1:  # a kept run's, or one whose run the ledger lacks: kept
            named_by_kept.add(rel)
            continue
        gone.add(row["run_id"])
        item = named_by_deleted.setdefault(rel, Item(os.path.join(project.outputs_dir, *rel.split("/")), 0))
        item.runs.append(row["run_id"])
    plan.output_runs = sorted(gone)
    for rel, item in named_by_deleted.items():
        path = item.path
        if rel in named_by_kept or not os.path.isfile(path) or os.path.islink(path) or not _inside(path, cache):
            continue
        item.size = tree_size(path)
        plan.outputs.append(item)


def _ranked_out(reads: Reads, kept: Sequence[sqlite3.Row], keep: Optional[Tuple[int, str]], unfinished: Set[int],
                models: str) -> Tuple[Set[int], List[str]]:
    """The kept runs whose model dirs ``keep`` lets go: per script that recorded the metric, every
    execution-mode run whose model dir (under ``models``) is not among those of its best ``count``
    succeeded runs; and the scripts that never recorded it (all their model dirs stay)."""
    if keep is None:
        return set(), []
    count, label = keep
    split, _, name = label.partition("/")
    lower = bool(LOWER_IS_BETTER.search(name))
    by_script: Dict[str, List[sqlite3.Row]] = {}
    for r in kept:
        if r["mode"] == Mode.RUN.value and r["id"] not in unfinished and _removable_dir(r["model_dir"], models):
            by_script.setdefault(r["script"], []).append(r)
    results = reads.results([r["id"] for runs in by_script.values() for r in runs])
    out: Set[int] = set()
    unranked: List[str] = []
    for script, runs in by_script.items():
        scored = []
        for r in runs:
            value = results.get(r["id"], {}).get((split, name))
            if value is not None and math.isfinite(value):
                scored.append((value if lower else -value, -r["id"], r))
        if not scored:
            unranked.append(script)
            continue  # the script never recorded the metric: keep ranks none of its model dirs
        best: List[str] = []
        for _, _, r in sorted(scored, key=lambda s: s[:2]):
            path = os.path.normpath(r["model_dir"])
            if r["status"] == RunStatus.SUCCEEDED.value and path not in best:
                best.append(path)
            if len(best) == count:
                break
        out |= {r["id"] for r in runs if os.path.normpath(r["model_dir"]) not in best}
    return out, unranked


def _carry_out(plan: GcPlan, ledger: Ledger) -> None:
    """Remove what ``plan`` holds; the runs are marked with what went. What could not go is kept in
    the plan's ``problems`` (and left out of its lists)."""
    marks: Dict[int, List[str]] = {}
    for kind, items in (("model_dir", plan.model_dirs), ("run_dir", plan.run_dirs)):
        removed = []
        for item in items:
            try:
                shutil.rmtree(item.path)
                if kind == "model_dir" and os.path.lexists(marker_path(item.path)):
                    os.unlink(marker_path(item.path))  # which version used the dir, beside it
            except OSError as exc:
                plan.problems.append(f"{display(item.path)}: not (wholly) removed ({exc.strerror or exc})")
                continue
            removed.append(item)
            for run_id in item.runs:
                marks.setdefault(run_id, []).append(kind)
        items[:] = removed
    drop_outputs(ledger, plan.output_runs)  # the rows first: nothing recorded points to a file that is gone
    removed = []
    for item in plan.outputs:
        try:
            os.unlink(item.path)
            removed.append(item)
        except FileNotFoundError:
            removed.append(item)
        except OSError as exc:
            plan.problems.append(f"{display(item.path)}: not removed ({exc.strerror})")
    plan.outputs = removed
    mark_collected(ledger, marks, ledger.clock())
    before = plan.wal
    if not truncate_wal(ledger):
        plan.wal_busy = True
    try:
        after = os.path.getsize(ledger.path + "-wal")
    except OSError:
        after = 0
    plan.wal = max(0, before - after)

