"""The queue and the loop that works through it.

``Runner.run_once`` re-reads the queue config, picks the next version that has
not run in this invocation (and, with ``-u``, has not already succeeded), runs
it through the executor it was given and records the outcome. ``run`` just
calls it until the queue is empty, so config edits take effect between versions.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import repro
from .config import Project, QueueConfig, read_queue_config, resolve_scripts
from .errors import ConfigError, MLPipelineError, ScriptError, UsageError
from .executors import Job, Outcome
from .ledger import Ledger, MetricRow, Mode, RunStatus
from .outputs import NullOutputs
from .scripts import ScriptInfo, VersionSpec, display, file_sha256
from .utils import ExecutionModeKeys
from ._versions import version_parameters

log = logging.getLogger(__name__)


@dataclass
class QueueItem:
    script: str          # absolute path
    rel: str             # path relative to the project root, as runs record it
    info: ScriptInfo
    version: VersionSpec

    @property
    def key(self) -> Tuple[str, str]:
        return (self.rel, self.version.name)


@dataclass
class Plan:
    """The queue as the configs and scripts now stand."""

    items: List[QueueItem] = field(default_factory=list)
    skipped: List[Tuple[str, Optional[str], str]] = field(default_factory=list)  # (script, version, reason)
    problems: List[str] = field(default_factory=list)       # config errors found while planning
    broken: List[Tuple[str, str, ScriptError]] = field(default_factory=list)  # (rel, sha, error)
    notes: List[str] = field(default_factory=list)          # warnings: unknown keys, missing scripts


@dataclass
class Finished:
    run_id: int
    item: Optional[QueueItem]
    rel: str
    outcome: Outcome


@dataclass
class Options:
    test_mode: bool = False
    use_history: bool = False
    only_version: Optional[str] = None
    command: str = ""


def _cache_key(path: str, sha: str) -> str:
    """A script's description depends on its own text and on the modules next
    to it that it may import; the key covers both."""
    folder = os.path.dirname(path)
    digest = hashlib.sha256(sha.encode())
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and os.path.join(folder, name) != path:
            stat = os.stat(os.path.join(folder, name))
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class _RunSink:
    """Routes one running version's events to the ledger and the log file."""

    def __init__(self, ledger: Ledger, run_id: int, say: Callable[[str, int], None]):
        self.ledger, self.run_id, self.say = ledger, run_id, say

    def started(self, child_pid: Optional[int]) -> None:
        if child_pid:
            self.ledger.update_run(self.run_id, child_pid=child_pid)

    def log(self, message: str, level: int) -> None:
        self.say(message, level, echo=False)

    def metric(self, row: MetricRow) -> None:
        self.ledger.add_metrics(self.run_id, [row])


class Runner:
    """Works through a project's queue with the executor it is given."""

    def __init__(self, project: Project, ledger: Ledger, executor: Any, options: Options,
                 outputs: Any = None, host: str = "localhost",
                 notify: Optional[Callable[[str, int], None]] = None):
        self.project = project
        self.ledger = ledger
        self.executor = executor
        self.options = options
        self.outputs = outputs or NullOutputs()
        self.host = host
        self.notify = notify or (lambda message, level: None)
        self.config_path = project.config_path(options.test_mode)
        self.mode = Mode.TEST if options.test_mode else Mode.RUN
        self.done: Set[Tuple[str, Optional[str]]] = set()
        self.finished: List[Finished] = []
        self._config: Optional[QueueConfig] = None
        self._said: Set[str] = set()

    # -- messages -----------------------------------------------------------

    def say(self, message: str, level: int = logging.INFO, echo: bool = True) -> None:
        self.outputs.log(message, level)
        if echo:
            self.notify(message, level)

    def _say_once(self, message: str, level: int = logging.WARNING) -> None:
        if message not in self._said:
            self._said.add(message)
            self.say(message, level)

    # -- planning -----------------------------------------------------------

    def read_config(self) -> QueueConfig:
        """Re-read the queue config; after the first good read, a broken edit
        keeps the last good config and says so."""
        try:
            config = read_queue_config(self.config_path)
        except ConfigError as exc:
            if self._config is None:
                raise
            self._say_once(f"{exc}; keeping the last good queue", logging.ERROR)
            return self._config
        self._config = config
        for warning in config.warnings:
            self._say_once(warning)
        return config

    def describe(self, path: str, sha: str) -> ScriptInfo:
        key = _cache_key(path, sha)
        cached = self.ledger.cached_script(key)
        if cached is not None:
            info = ScriptInfo.from_json(cached)
            info.path, info.sha256 = path, sha
            return info
        info = self.executor.describe(path)
        info.sha256 = sha
        self.ledger.cache_script(key, info.to_json())
        return info

    def plan(self) -> Plan:
        config = self.read_config()
        plan = Plan()
        selections, plan.notes = resolve_scripts(self.project, config)
        for note in plan.notes:
            self._say_once(note)
        where = display(self.config_path)
        for selection in selections:
            rel = self.project.rel(selection.path)
            try:
                sha = file_sha256(selection.path)
            except OSError:
                plan.skipped.append((rel, None, "script vanished while planning"))
                continue
            try:
                info = self.describe(selection.path, sha)
            except ScriptError as exc:
                plan.broken.append((rel, sha, exc))
                plan.skipped.append((rel, None, f"load error: {exc}"))
                continue
            names = info.names
            for wanted in (selection.only or []) + selection.exclude:
                if wanted not in names:
                    plan.problems.append(f"{where}:{selection.line}: {wanted!r} is not a version of {rel} "
                                         f"(versions: {', '.join(names)})")
            for spec in info.versions:
                if selection.only is not None and spec.name not in selection.only:
                    plan.skipped.append((rel, spec.name, "not whitelisted in " + where))
                elif spec.name in selection.exclude:
                    plan.skipped.append((rel, spec.name, "blacklisted in " + where))
                elif self.options.only_version and spec.name != self.options.only_version:
                    plan.skipped.append((rel, spec.name, f"not --version {self.options.only_version}"))
                else:
                    plan.items.append(QueueItem(selection.path, rel, info, spec))
        return plan

    def check_first_plan(self, plan: Plan) -> None:
        """Errors that stop a run before anything starts (exit 2)."""
        if plan.problems:
            raise ConfigError(plan.problems[0] + (f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""))
        wanted = self.options.only_version
        if wanted and not plan.items and not plan.broken:
            found = sorted(set(self._all_versions(plan)))
            raise UsageError(f"--version {wanted}: no listed script has a version named {wanted!r} "
                             f"(versions: {', '.join(found) or 'none'})")

    @staticmethod
    def _all_versions(plan: Plan) -> List[str]:
        return [version for _, version, _ in plan.skipped if version] + [i.version.name for i in plan.items]

    def next_item(self, plan: Plan):
        """The next thing to do: a broken script to record, a version to run, or None."""
        for rel, sha, error in plan.broken:
            if (rel, sha) not in self.done:
                return ("broken", rel, sha, error)
        for item in plan.items:
            if item.key in self.done:
                continue
            if self.options.use_history and not self.options.test_mode and self.ledger.already_done(
                    item.rel, item.version.name, item.info.sha256, item.version.params_sha256):
                self.done.add(item.key)
                self.say(f"{item.rel} {item.version.name}: skipped, already succeeded with this script and "
                         f"these parameters (-u)")
                continue
            return ("run", item)
        return None

    # -- running ------------------------------------------------------------

    def model_dir(self, item: QueueItem) -> str:
        stem = os.path.splitext(os.path.basename(item.script))[0]
        suffix = item.version.params.get(version_parameters.MODEL_DIR_SUFFIX) or f"-{item.version.name}"
        return os.path.join(self.project.outputs_dir, "model_ckpts", f"{stem}{suffix}")

    def record_broken(self, rel: str, sha: str, error: ScriptError) -> Finished:
        self.done.add((rel, sha))
        run = self.ledger.start_run(script=rel, version=None, mode=self.mode, host=self.host,
                                    script_sha256=sha, command=self.options.command)
        outcome = Outcome(RunStatus.FAILED, error=str(error), traceback=error.details, script_error=True)
        self.ledger.set_status(run["id"], RunStatus.FAILED, error=outcome.error, traceback=outcome.traceback or None)
        self.say(str(error), logging.ERROR)
        if error.details:
            self.say(error.details, logging.ERROR, echo=False)
        finished = Finished(run["id"], None, rel, outcome)
        self.finished.append(finished)
        return finished

    def run_item(self, item: QueueItem) -> Finished:
        self.done.add(item.key)
        test = self.options.test_mode
        model_dir = tempfile.mkdtemp(prefix="mlp-test-") if test else self.model_dir(item)
        git = repro.git_state(self.project.root)
        run = self.ledger.start_run(
            script=item.rel, version=item.version.name, mode=self.mode, host=self.host,
            params=item.version.params, script_sha256=item.info.sha256,
            params_sha256=item.version.params_sha256, model_dir=None if test else model_dir,
            command=self.options.command, python_version=repro.python_version(),
            seed=repro.seed_of(item.version.params), git_commit=git.commit if git else None,
            git_dirty=int(git.dirty) if git else None)
        run_id = run["id"]
        run_dir = None if test else os.path.join(self.project.outputs_dir, "runs", str(run_id))
        if run_dir:
            self.ledger.update_run(run_id, run_dir=run_dir)
            if git:
                repro.save_diff(run_dir, git)
        self.say(f"{item.rel} {item.version.name}: started (run {run_id}, "
                 f"{'test mode, 1 step' if test else 'model dir ' + os.path.relpath(model_dir, self.project.root)})")
        exec_mode = ExecutionModeKeys.TEST if test else ExecutionModeKeys.TRAIN
        sink = _RunSink(self.ledger, run_id, self.say)
        try:
            outcome = self.executor.execute(Job(item.script, item.version.name, model_dir, exec_mode, run_dir), sink)
        except KeyboardInterrupt:
            self.ledger.set_status(run_id, RunStatus.INTERRUPTED, error="interrupted (Ctrl+C)")
            self.say(f"{item.rel} {item.version.name}: interrupted (run {run_id})", logging.WARNING)
            raise
        finally:
            if test:
                shutil.rmtree(model_dir, ignore_errors=True)
        self._record(run_id, item, outcome)
        finished = Finished(run_id, item, item.rel, outcome)
        self.finished.append(finished)
        return finished

    def _record(self, run_id: int, item: QueueItem, outcome: Outcome) -> None:
        result = outcome.result or {}
        rows = [MetricRow(name, value, None, "train") for name, value in result.get("eval_train", {}).items()]
        rows += [MetricRow(name, value, None, "test") for name, value in result.get("eval_test", {}).items()]
        self.ledger.add_metrics(run_id, rows)
        self.ledger.set_status(
            run_id, outcome.status, exit_code=outcome.exit_code, signal=outcome.signal,
            error=outcome.error or None, traceback=outcome.traceback or None,
            steps=result.get("steps"), eval_train_text=result.get("eval_train_text"),
            eval_test_text=result.get("eval_test_text"),
            packages=json.dumps(outcome.packages, sort_keys=True) if outcome.packages else None)
        name = f"{item.rel} {item.version.name}"
        if outcome.status == RunStatus.SUCCEEDED:
            self.outputs.output_block(script=item.rel, version=item.version.name, result=result,
                                      params=item.version.params,
                                      epochs=item.version.params.get(version_parameters.EPOC_COUNT))
            self.say(f"{name}: succeeded (run {run_id}); train: {result.get('eval_train_text') or '-'}; "
                     f"test: {result.get('eval_test_text') or '-'}")
        else:
            self.say(f"{name}: {outcome.status.value} (run {run_id}): {outcome.error}", logging.ERROR)
            if outcome.traceback:
                self.say(outcome.traceback.rstrip(), logging.ERROR, echo=False)

    def run_once(self) -> Optional[Finished]:
        """Plan, then run the next version (or record the next broken script).
        Returns what finished, or None when nothing is left."""
        plan = self.plan()
        if not self.done and not self.finished:
            self.check_first_plan(plan)
        else:
            for problem in plan.problems:
                self._say_once(problem + "; that entry is ignored", logging.ERROR)
        step = self.next_item(plan)
        if step is None:
            return None
        if step[0] == "broken":
            return self.record_broken(*step[1:])
        return self.run_item(step[1])

    def run(self, stop_on_error: bool = False) -> List[Finished]:
        """Run until the queue is empty (or, with ``stop_on_error``, until a version fails)."""
        while True:
            finished = self.run_once()
            if finished is None:
                break
            if stop_on_error and finished.outcome.status != RunStatus.SUCCEEDED:
                break
        return self.finished
