"""An exact re-run (``mlpipeline rerun RUN --exact``): the same code, parameters and seed, and what differs
in the environment now.

The run's recorded commit is checked out as a git worktree under ``outputs/rerun/<run id>-<n>/``, with what
its run folder kept of the work tree applied (the diff of a dirty tree, the small files git did not track:
``repro.save_diff``). Its version runs there in execution mode, with the spec it started with (parameters,
argument line, seed: ``spec.json`` in its run folder), through ``run_batch`` on the checkout's project: the
model dir and run folder are the checkout's, the record goes to this project's ledger, as a new run whose
``rerun_of`` is the old one. The environment the run recorded is compared with this one before it starts.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..core import environment, repro
from ..core.errors import MLPipelineError, UsageError, display
from ..core.layout import PROJECT_FILE, Project
from ..core.lifecycle import Mode, RunStatus, VersionSpec
from ..plan.config import find_project
from ..store.lock import LockHeld
from .batch import BatchOptions, BatchResult, run_batch

RERUN_DIR = "rerun"  # under outputs/: one checkout per exact re-run


@dataclass
class Checkout:
    """A run's code as it ran: a git worktree with the run's diff and untracked files applied."""

    worktree: str                    # the worktree's top folder
    root: str                        # the project's root in it
    notes: List[str] = field(default_factory=list)  # what could not be restored as it was
    kept: List[str] = field(default_factory=list)   # what was applied over the commit: "its diff", "2 untracked files"


@dataclass
class RerunResult:
    original: Dict[str, Any]         # the re-run run's ledger row
    checkout: Checkout
    changed: Optional[List[str]]     # what differs in the environment now (None: the run recorded none)
    batch: BatchResult
    run_id: Optional[int] = None     # the new run
    status: Optional[str] = None
    # metrics (a result, else a curve's last value) that differ from the old run's: "test/accuracy 0.9 -> 0.8"
    metrics: List[str] = field(default_factory=list)
    same_metrics: int = 0            # metrics equal to the old run's

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED.value


def _refuse_live_runner(project: Project) -> None:
    """A runner at work on the project holds it: say so before anything is checked out for nothing."""
    from ..store.liveness import Liveness
    from ..store.reader import open_reader

    reader = open_reader(project.outputs_dir)
    if reader is None:
        return
    try:
        row = reader.latest_runner()
        if row is not None and Liveness(reader).runner_alive(row):
            raise UsageError(f"{display(project.root)}: a runner (pid {row['pid']} on {row['host']}) works on this "
                             f"project; rerun --exact runs while none does: wait for it to end (or stop it)")
    finally:
        reader.close()


def _recorded(project: Project, ref: str) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """(the run's row, the environment it recorded)."""
    from ..read.queries import resolve_run
    from ..store.reader import open_reader

    reader = open_reader(project.outputs_dir)
    if reader is None:
        raise UsageError(f"rerun {ref}: no runs recorded yet in this project")
    try:
        row = dict(resolve_run(reader, ref))
        return row, reader.environment(row.get("environment"))
    finally:
        reader.close()


def check_out(project: Project, run: Mapping[str, Any]) -> Checkout:
    """Check out ``run``'s commit, diff and untracked files as a new worktree under outputs/rerun/."""
    label = f"run {run['id']}"
    if not run.get("version"):
        raise UsageError(f"{label} is not a version's run (its script failed to load); nothing to run again")
    commit = run.get("git_commit")
    if not commit:
        raise UsageError(f"{label} recorded no git commit (the project was not in a git repository when it ran): "
                         f"rerun --exact needs one")
    top = repro.git_top(project.root)
    if top is None:
        raise UsageError(f"{display(project.root)} is no longer in a git repository: rerun --exact checks out "
                         f"{label}'s commit {commit[:12]} from it")
    parent = os.path.join(project.outputs_dir, RERUN_DIR)
    try:
        os.makedirs(parent, exist_ok=True)
        taken = [name.rpartition("-")[2] for name in os.listdir(parent) if name.startswith(f"{run['id']}-")]
    except OSError as exc:
        raise UsageError(f"{display(parent)}: cannot be made or read ({exc.strerror or exc}); rerun --exact checks "
                         f"out {label}'s commit there: make the outputs folder writable") from None
    dest = os.path.join(parent, f"{run['id']}-{max((int(n) for n in taken if n.isdigit()), default=0) + 1}")
    ok, said = repro.git(top, "worktree", "add", "--detach", dest, commit, timeout=300)
    if not ok:
        raise UsageError(f"{label}: cannot check out its commit {commit[:12]} ({said}); is it still in "
                         f"{display(top)}'s history?")
    checkout = Checkout(dest, os.path.normpath(os.path.join(dest, os.path.relpath(project.root, top))))
    checkout.kept = _restore(run, checkout)
    if not os.path.exists(os.path.join(checkout.root, PROJECT_FILE)):
        shutil.copyfile(os.path.join(project.root, PROJECT_FILE), os.path.join(checkout.root, PROJECT_FILE))
        checkout.notes.append(f"{PROJECT_FILE} is not in the commit; this project's was copied in")
    return checkout


def _restore(run: Mapping[str, Any], checkout: Checkout) -> List[str]:
    """Apply what the run's folder kept of the work tree to the checkout (returns what it applied); say
    what it did not keep."""
    label, run_dir = f"run {run['id']}", run.get("run_dir")
    applied: List[str] = []
    if not run_dir:
        checkout.notes.append(f"{label} is a test-mode run, which keeps no run folder: its commit alone is used"
                              + (" (it ran from a dirty tree)" if run.get("git_dirty") else ""))
        return applied
    if not os.path.isdir(run_dir) and "run_dir" in json.loads(run.get("collected") or "{}"):
        checkout.notes.append(f"{label}'s run folder was removed by mlpipeline gc (the run was deleted): its diff "
                              f"and the files git did not track are gone; the commit alone is used")
        return applied
    diff = os.path.join(run_dir, repro.DIFF_FILE)
    if os.path.exists(diff):
        ok, said = repro.git(checkout.worktree, "apply", "--whitespace=nowarn", os.path.abspath(diff))
        if not ok:
            raise UsageError(f"{label}: its diff does not apply to commit {run['git_commit'][:12]} ({said}); the "
                             f"checkout is in {display(checkout.worktree)}")
        applied.append("its diff")
    elif run.get("git_dirty"):
        checkout.notes.append(f"{label} ran from a dirty tree but its diff was not kept; the commit alone is used")
    tree = os.path.join(run_dir, repro.TREE_FILE)
    if not os.path.exists(tree):
        checkout.notes.append(f"{label} kept no copy of the files git did not track (it ran before mlpipeline kept "
                              f"them); copy any its script needs into {display(checkout.worktree)}")
        return applied
    try:
        with open(tree, encoding="utf-8") as handle:
            kept = json.load(handle)
        if not isinstance(kept.get("untracked"), dict):
            raise ValueError("no untracked files named")
    except (OSError, ValueError, AttributeError) as exc:
        checkout.notes.append(f"{label}: {display(tree)} cannot be read ({exc}): its untracked files are not restored")
        return applied
    store = os.path.join(run_dir, kept.get("store") or "")
    lost = []
    for rel, sha in (kept.get("untracked") or {}).items():
        target = os.path.join(checkout.worktree, rel)
        if os.path.isabs(rel) or ".." in rel.split("/"):  # git names files inside the tree; anything else is not ours
            lost.append(rel)
            continue
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(store, sha), target)
        except OSError:
            lost.append(rel)
    if kept.get("untracked"):
        applied.append(f"{len(kept['untracked']) - len(lost)} untracked file(s)")
    if lost:
        checkout.notes.append(f"{label}: these untracked files it kept are gone from {display(store)}: {', '.join(lost)}")
    if kept.get("left_out"):
        more = kept.get("left_out_count", 0) - len(kept["left_out"])
        checkout.notes.append(f"{label} did not keep these files git does not track (too large or unreadable): "
                              f"{', '.join(kept['left_out'])}{f' and {more} more' if more > 0 else ''}")
    return applied


def recorded_spec(run: Mapping[str, Any], checkout: Checkout) -> Tuple[VersionSpec, List[str]]:
    """The spec ``run`` started with, its script in the checkout, and what makes it less than exact."""
    notes: List[str] = []
    saved = os.path.join(run["run_dir"], repro.SPEC_FILE) if run.get("run_dir") else ""
    rel = run["script"]
    if saved and os.path.exists(saved):
        with open(saved, encoding="utf-8") as handle:
            spec = VersionSpec.from_json(json.load(handle))
    else:  # a run from before spec.json: its recorded parameters (a plain script's line from the config)
        spec = VersionSpec(script="", rel=rel, version=run["version"], params=json.loads(run["params"] or "{}"),
                           params_sha256=run["params_sha256"] or "", fingerprint=run["fingerprint"] or "",
                           script_sha256=run["script_sha256"] or "", seed=run["seed"],
                           argv=_plain_argv(checkout.root, rel, run["version"], run["params_sha256"]))
        notes.append(f"run {run['id']} kept no spec.json (it ran before mlpipeline kept them): its recorded "
                     f"parameters are used")
    path = os.path.join(checkout.root, rel)
    if not os.path.exists(path):
        raise UsageError(f"run {run['id']}: {rel} is not in its commit {run['git_commit'][:12]} (nor in what the "
                         f"run kept of the tree); the checkout is in {display(checkout.worktree)}")
    sha = _sha256(path)
    if run.get("script_sha256") and sha != run["script_sha256"]:
        notes.append(f"{rel} as checked out differs from what run {run['id']} ran: the re-run is not exact")
        spec = replace(spec, fingerprint="")
    return replace(spec, script=path, rel=rel), notes


def _plain_argv(root: str, rel: str, version: str, params_sha256: Optional[str]) -> Optional[Tuple[str, ...]]:
    """A plain script's argument line for ``version`` in the checkout's models.config, if it is the one
    the run recorded (the same digest)."""
    from ..plan.config import read_queue_config
    from ..script.plain import version_of

    try:
        config = read_queue_config(os.path.join(root, "models.config"))
        entry = next((e for e in config.arguments.get(os.path.basename(rel), []) if e.key == version), None)
        declared = version_of(version, entry.value) if entry is not None else None
    except (MLPipelineError, OSError, ValueError):
        return None
    return declared.argv if declared is not None and declared.params_sha256 == params_sha256 else None


def _sha256(path: str) -> str:
    from ..script.loading import file_sha256

    return file_sha256(path)


def current_environment() -> Dict[str, Any]:
    """This process's environment, as the recorder of the re-run records it (the same cached reading)."""
    from ..execution.gpus import driver_info

    return environment.capture(driver_info())


def environment_line(run_id: int, changed: Optional[List[str]]) -> str:
    """What differs from the environment run ``run_id`` recorded, in one line."""
    if changed is None:
        return f"run {run_id} recorded no environment (it ran before mlpipeline kept them): what differs is unknown"
    if not changed:
        return f"environment: no differences from run {run_id}'s"
    return f"environment: {len(changed)} difference(s) from run {run_id}'s: {'; '.join(changed)}"


def rerun_exact(directory: Optional[str], ref: str, notify: Callable[[str, int], None],
                timeout: Optional[float] = None, prepare: Optional[Callable[[Any], None]] = None) -> RerunResult:
    """Re-run ``ref`` (a run id or uid prefix) of the project in ``directory`` exactly (see the module):
    ``notify`` hears what is not as it was (before the version starts) and the batch's progress."""
    project = find_project(directory)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):  # before a checkout is made for nothing
        raise UsageError(f"--timeout {timeout:g}: give a positive number of seconds")
    run, recorded = _recorded(project, ref)
    if run.get("mode") == Mode.TEST.value:
        raise UsageError(f"run {run['id']} is a test-mode run (one step in a temporary model dir, nothing kept): "
                         f"rerun --exact re-runs an execution-mode (-r) run; pick one from mlpipeline runs --mode run")
    _refuse_live_runner(project)
    checkout = check_out(project, run)
    spec, notes = recorded_spec(run, checkout)
    checkout.notes += notes
    notify(f"run {run['id']}: commit {run['git_commit'][:12]}{''.join(' + ' + k for k in checkout.kept)} checked out "
           f"in {display(checkout.worktree)}; {spec.label} runs there", logging.INFO)
    for note in checkout.notes:
        notify(note, logging.WARNING)
    changed = None if recorded is None else environment.differences(recorded, current_environment())
    notify(environment_line(run["id"], changed), logging.INFO if not changed else logging.WARNING)
    options = BatchOptions(directory=checkout.root, run=True, timeout=timeout, pinned=spec,
                           records_in=project.outputs_dir, rerun_of=int(run["id"]),
                           command=f"mlpipeline rerun {run['id']} --exact")
    try:
        batch = run_batch(options, notify, prepare=prepare)
    except LockHeld:  # a runner at work on the project: nothing ran, so the checkout goes
        repro.git(checkout.worktree, "worktree", "remove", "--force", checkout.worktree)
        raise
    result = RerunResult(run, checkout, changed, batch)
    if result.batch.finished:
        last = result.batch.finished[-1]
        result.run_id, result.status = last.run_id, last.status.value
        _compare_metrics(project, result)
    return result


def _compare_metrics(project: Project, result: RerunResult) -> None:
    from ..store.reader import open_reader

    reader = open_reader(project.outputs_dir)
    if reader is None or result.run_id is None:
        return
    try:
        old_id = int(result.original["id"])
        found = reader.run_metrics([old_id, result.run_id])
    finally:
        reader.close()
    old, new = found.get(old_id, {}), found.get(result.run_id, {})
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            result.same_metrics += 1
        else:
            result.metrics.append(f"{'/'.join(key)} {old.get(key, '(none)')} -> {new.get(key, '(none)')}")
