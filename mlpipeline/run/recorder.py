"""What the runner records of its runs in the ledger, the one writer: a run's start (its
parameters, code, git state, where it keeps its files), where it was placed, its points
(written in batches), its outputs, how it ended — and a run's failure to be recorded, which
fails that run alone (``flush`` returns it; the runner applies the decision)."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core import environment, repro
from ..core.errors import MLPipelineError, ScriptError
from ..core.layout import Project
from ..core.faults import fault_point
from ..core.lifecycle import MetricRow, Mode, Outcome, RunStatus, VersionSpec
from ..store.ledger import Ledger

METRICS_EVERY = 0.1      # seconds between metric batches written to the ledger
METRICS_BATCH = 5000     # or this many points, whichever comes first


class Recorder:
    """Records runs in ``ledger`` for one runner (``runner_id``, ``host``, its process ``identity``)."""

    def __init__(self, ledger: Ledger, project: Project, mode: Mode, host: str, identity: Optional[int],
                 command: str):
        self.ledger, self.project, self.mode, self.host = ledger, project, mode, host
        self.identity, self.command = identity, command
        self.runner_id: Optional[int] = None
        self.also: Dict[str, Any] = {}  # columns every run it starts records (an exact re-run: rerun_of)
        self.gpu: Callable[[], Mapping[str, Any]] = dict  # the driver and GPUs, for the environment (from NVML)
        self._environment: Optional[str] = None  # the sha256 of this process's environment, once recorded
        self._metrics: Dict[int, List[MetricRow]] = {}
        self._count = 0
        self._flushed_at = float("-inf")

    def start(self, spec: VersionSpec, model_dir: Optional[str], **link: Any) -> Tuple[Any, Optional[str]]:
        """Insert the run as running; returns its row and its folder (None in test mode: no
        ``model_dir`` is kept either)."""
        git = repro.git_state(self.project.root, untracked=model_dir is not None, exclude=(self.project.outputs_dir,))
        run = self.ledger.start_run(
            script=spec.rel, version=spec.version, mode=self.mode, host=self.host, pid_start=self.identity,
            params=dict(spec.params), script_sha256=spec.script_sha256, fingerprint=spec.fingerprint,
            params_sha256=spec.params_sha256, model_dir=model_dir, command=self.command,
            python_version=repro.python_version(), seed=spec.seed, git_commit=git.commit if git else None,
            git_dirty=int(git.dirty) if git else None, runner_id=self.runner_id, environment=self.environment(),
            **{**self.also, **link})
        if model_dir is None:
            return run, None
        run_dir = self.project.run_dir(run["id"])
        self.ledger.update_run(run["id"], run_dir=run_dir)
        if git:
            repro.save_diff(run_dir, git, os.path.join(self.project.outputs_dir, repro.UNTRACKED_DIR))
        repro.save_spec(run_dir, spec.to_json())
        return run, run_dir

    def environment(self) -> Optional[str]:
        """The sha256 of the environment this runner's versions run in, recorded once (read once per
        process: ``environment.capture``). None when it cannot be read: the run goes on without it."""
        if self._environment is None:
            try:
                info = environment.capture(self.gpu())
                sha = environment.digest(info)
                self.ledger.record_environment(sha, environment.canonical(info))
            except MLPipelineError:
                raise
            except Exception:  # noqa: BLE001 - best effort: the run matters more than its record of packages
                sha = ""
            self._environment = sha
        return self._environment or None

    def failed_to_load(self, rel: str, version: Optional[str], sha: str, error: str, traceback: str) -> int:
        """A script (or a search) that cannot run: a failed run that says why; returns its id."""
        run = self.ledger.start_run(script=rel, version=version, mode=self.mode, host=self.host,
                                    pid_start=self.identity, script_sha256=sha, command=self.command,
                                    runner_id=self.runner_id)
        self.ledger.set_status(run["id"], RunStatus.FAILED, error=error, traceback=traceback or None)
        return int(run["id"])

    def placed(self, run_id: int, where: Mapping[str, Any]) -> None:
        fields = {"child_pid": where.get("pid"), "gpu": where.get("gpu"), "node": where.get("node"),
                  "node_id": where.get("node_id"), "gpu_uuids": where.get("gpu_uuids"),
                  "resources": where.get("resources"), "slurm_job_id": where.get("slurm_job_id")}
        fields = {k: v for k, v in fields.items() if v is not None}
        if fields:
            self.ledger.update_run(run_id, **fields)

    def data(self, run_id: int, fingerprint: str) -> None:
        self.ledger.update_run(run_id, data_fingerprint=fingerprint)

    def params(self, run_id: int, params: Mapping[str, Any]) -> None:
        """Parameters a version added to its record: merged over what it started with (``-u`` compares the
        version's own, kept in ``params_sha256``)."""
        self.ledger.add_params(run_id, params)

    def output(self, run_id: int, spec: VersionSpec, row: Mapping[str, Any]) -> None:
        """Index a value the version stored with ``save_output``."""
        self.ledger.add_output(run_id, {**row, "script": spec.rel, "version": spec.version})

    # -- points, in batches ---------------------------------------------------------------------------

    def points(self, run_id: int, rows: Sequence[MetricRow]) -> bool:
        """Queue a run's points; True when enough are waiting to be written now."""
        self._metrics.setdefault(run_id, []).extend(rows)
        self._count += len(rows)
        return self._count >= METRICS_BATCH

    def flush(self, now: float, force: bool = True) -> List[Tuple[int, str]]:
        """Write the waiting points (unless it is not yet time and ``force`` is off); returns the
        runs whose points could not be recorded, with why: the last line of defence, so one run's
        data never stops the runner (a ledger that cannot be written at all raises)."""
        if not self._metrics or (not force and now - self._flushed_at < METRICS_EVERY
                                 and self._count < METRICS_BATCH):
            return []
        self._flushed_at = now
        failed = []
        for run_id in list(self._metrics):
            rows = self._metrics[run_id]
            try:
                self.ledger.add_metrics(run_id, rows)  # taken out of the buffer only once committed
            except MLPipelineError:
                raise  # the ledger cannot be written at all (a full disk): the runner stops, what it had is kept
            except Exception as exc:  # noqa: BLE001 - the last line of defence: this run fails, not the runner
                failed.append((run_id, f"its metrics could not be recorded ({type(exc).__name__}: {exc})"))
            del self._metrics[run_id]
            self._count -= len(rows)
        return failed

    # -- how it ended ---------------------------------------------------------------------------------

    def finish(self, run_id: int, outcome: Outcome) -> None:
        """The run's results and how it ended (a version ended early keeps the data fingerprint it
        sent before training)."""
        result = outcome.result or {}
        rows = [MetricRow(name, value, None, "train") for name, value in result.get("eval_train", {}).items()]
        rows += [MetricRow(name, value, None, "test") for name, value in result.get("eval_test", {}).items()]
        self.ledger.add_metrics(run_id, rows)
        fault_point("record")  # results written, the status not yet: a power cut here leaves it running
        known = {"data_fingerprint": result["data_fingerprint"]} if result.get("data_fingerprint") else {}
        self.ledger.set_status(
            run_id, outcome.status, exit_code=outcome.exit_code, signal=outcome.signal,
            error=outcome.error or None, traceback=outcome.traceback or None,
            steps=result.get("steps"), eval_train_text=result.get("eval_train_text"),
            eval_test_text=result.get("eval_test_text"), reason=outcome.reason, **known,
            packages=json.dumps(outcome.packages, sort_keys=True) if outcome.packages else None)

    def abandon(self, run_ids: Sequence[int], why: str) -> None:
        """Runs the runner stops watching (it is stopping on an error or a second Ctrl+C): interrupted."""
        for run_id in run_ids:
            try:
                self.ledger.set_status(run_id, RunStatus.INTERRUPTED, error=why)
            except MLPipelineError:
                pass


def why_stopped(exc: BaseException, when: str, ctrl_c: str) -> str:
    """What a run the runner had to abandon records as its error."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted (Ctrl+C) {ctrl_c}"
    if isinstance(exc, MLPipelineError):
        return f"the runner stopped {when}: {exc}"
    return f"the runner stopped on an internal error {when} ({type(exc).__name__})"


def shared_model_dir(ledger: Ledger, project: Project, label: str, rel: str, model_dir: str) -> Optional[ScriptError]:
    """Why a version of ``rel`` must not start in ``model_dir``: another script that is still there used it (model
    dirs are named by file name: models/b.py and models/sub/b.py share them); None when no other script did, or
    when that script is gone (moved or renamed to this one: its checkpoints are this script's to go on from)."""
    mine = os.path.realpath(os.path.join(project.root, rel))
    others = [other for other in ledger.model_dir_scripts(model_dir, rel)
              if os.path.isfile(os.path.join(project.root, other))
              and os.path.realpath(os.path.join(project.root, other)) != mine]
    if not others:
        return None
    other = others[0]
    return ScriptError(f"{label}: its model dir {project.rel(model_dir)} is {other}'s too (model dirs are named by "
                       f"file name); rename one of the two scripts, or give this version a model_dir_suffix")
