"""``[MLFLOW] tracking_uri`` in mlp.config (the original 2.0a1 ... 2.0a7.post1's section), or ``mlpipeline
run --mlflow_tracking_uri``: each run of execution mode is also logged to that MLflow store, named as 2.x
named it — an experiment per script (its path in the models folder), a run per version run, named after
the version — with the version's parameters, its points as they come, its results (``TRAIN_<name>`` and
``TEST_<name>``, as 2.x's ``log_metrics`` wrote them), how it ended and its model dir as artifacts.

The ledger stays the record; MLflow gets a copy. ``MlflowLog`` calls MLflow from one thread of its own, fed
by a queue, never from the runner's loop: points go in batches (``log_batch``), at most one a second per
run and the rest when the run ends. mlflow is imported in that thread, on first use. An error is said once
and never fails a run or stops the runner; an ending runner gives what is still queued ``mlflow_drain``
seconds at most (a few once MLflow has failed).
"""
from __future__ import annotations

import getpass
import logging
import os
import posixpath
import queue
import re
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from ..core.layout import Project, tree_size
from ..core.lifecycle import MetricRow, Outcome, RunStatus
from ..core.timings import timings
from ..proc.system import hostname
from .observers import Run

log = logging.getLogger(__name__)

INSTALL = "pip install mlflow"
FLUSH_EVERY = 1.0            # seconds between two batches of a running version's points
POINTS_LIMIT = 1_000_000     # points waiting for MLflow; more are dropped (said once)
ARTIFACTS_LIMIT = 1 << 30    # a model dir larger than this is not logged as artifacts (said per run)
FAILED_DRAIN = 5.0           # an ending runner waits at most this long once an MLflow call failed
ERROR_CHARS = 400            # what MLflow said of an error, cut to this
KEY_CHARS, VALUE_CHARS, TAG_CHARS = 250, 500, 5000  # MLflow's limits (newer versions read theirs at run time)
PER_BATCH_METRICS, PER_BATCH_PARAMS = 1000, 100
STATUSES = {RunStatus.SUCCEEDED: "FINISHED", RunStatus.CANCELLED: "KILLED", RunStatus.INTERRUPTED: "KILLED",
            RunStatus.PRUNED: "KILLED"}  # the rest (failed, timeout, stalled): FAILED

_BAD_KEY = re.compile(r"[^\w.\- :/]")
Points = List[Tuple[int, Sequence[MetricRow]]]  # (milliseconds since the epoch, the rows that came then)


def shown(uri: str) -> str:
    """``uri`` without a password it may hold (``https://user:token@host``)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1…@", uri)


def mlflow_key(text: str) -> str:
    """``text`` as a key MLflow takes: its characters (letters, digits, ``_ - . : /`` and spaces), a path that
    stays one after normalising, at most ``KEY_CHARS`` long."""
    key = _BAD_KEY.sub("_", text)[:KEY_CHARS]
    if posixpath.normpath(key) != key or key.startswith(("/", "..")):
        key = key.replace("/", "_")
    return key if key not in ("", ".") and not key.startswith("..") else "_" + key


def metric_key(split: str, name: str) -> str:
    """A point's name in MLflow: its name for the train split (2.x's curves), ``split/name`` for the others."""
    return mlflow_key(name if split == "train" else f"{split}/{name}")


def flat_params(params: Mapping[str, Any], prefix: str = "") -> Iterator[Tuple[str, str]]:
    """A version's parameters as MLflow's flat text params (nested mappings as ``a.b``), values as 2.x gave them
    (``str(value)``)."""
    for name, value in params.items():
        if isinstance(value, Mapping) and value:
            yield from flat_params(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", str(value)


def last_line(text: Optional[str]) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:ERROR_CHARS] if lines else ""


class MlflowLog:
    """The thread that calls MLflow, in order, for every task queued (``put``); started with the first. It keeps
    the client, the experiments' ids and the MLflow run of each ledger run. ``warn`` is called from that thread."""

    def __init__(self, uri: str, source: str, warn: Callable[[str], None]):
        self.uri, self.source, self._warn = uri, source, warn
        self.queue: queue.Queue[Optional[Tuple[str, Callable[..., None], Tuple[Any, ...]]]] = queue.Queue()
        self.thread: Optional[threading.Thread] = None
        self.failed = False   # a call failed (said once); later ones still go
        self.answered = False  # a call went through
        self.busy_since: Optional[float] = None  # monotonic: when the call being made began
        self.off = False      # mlflow could not be imported (said once): tasks are dropped
        self.waiting = 0      # points queued, not yet sent
        self._count = threading.Lock()
        self._say = threading.Lock()
        self.client: Any = None
        self.entities: Any = None
        self.limits = (KEY_CHARS, VALUE_CHARS, TAG_CHARS)
        self.experiments: Dict[str, str] = {}
        self.runs: Dict[int, str] = {}  # ledger run id -> MLflow run id

    def warn(self, message: str) -> None:
        with self._say:
            try:
                self._warn(message)
            except Exception:  # noqa: BLE001 - a log that cannot be written must not end the thread
                log.warning("%s", message)

    def put(self, what: str, task: Callable[..., None], *args: Any, points: int = 0) -> bool:
        """Queue ``task(*args)`` (``what``: the run it is for, as an error names it); False when dropped."""
        if self.off:
            return False
        if points:
            with self._count:
                if self.waiting + points > POINTS_LIMIT:
                    return False
                self.waiting += points
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="mlpipeline-mlflow", daemon=True)
            self.thread.start()
        self.queue.put((what, task, args))
        return True

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                what, task, args = item
                if self.off or (self.client is None and not self._connect()):
                    continue
                # from here: importing mlflow (seconds on a loaded machine) is no silence of the store
                self.busy_since = time.monotonic()
                try:
                    task(*args)
                    self.answered = True
                except Exception as exc:  # noqa: BLE001 - MLflow's failure costs MLflow's copy, never the run
                    self._failed(what, exc)
                finally:
                    self.busy_since = None
            finally:
                self.queue.task_done()

    def _connect(self) -> bool:
        """Import mlflow and make the client; False (said once, and every task dropped) when it cannot be."""
        try:
            import mlflow.entities as entities
            from mlflow.tracking import MlflowClient
        except ImportError:
            self.off = True
            self.warn(f"{self.source} is set but the mlflow package is not installed: {INSTALL}; runs are recorded "
                      f"in the ledger only")
            return False
        except Exception as exc:  # noqa: BLE001 - a broken install: the batch goes on without it
            self.off = True
            self.warn(f"{self.source}: mlflow could not be imported ({type(exc).__name__}: {last_line(str(exc))}); "
                      f"runs are recorded in the ledger only")
            return False
        if self.uri.startswith("file:"):
            # MLflow 3 keeps its file store only on request; a 2.x project's tracking_uri names one
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.utils import validation

            self.limits = (getattr(validation, "MAX_ENTITY_KEY_LENGTH", KEY_CHARS),
                           getattr(validation, "MAX_PARAM_VAL_LENGTH", VALUE_CHARS),
                           getattr(validation, "MAX_TAG_VAL_LENGTH", TAG_CHARS))
        except ImportError:
            pass
        try:
            self.client, self.entities = MlflowClient(self.uri), entities
        except Exception as exc:  # noqa: BLE001
            self.off = True
            self._failed("the MLflow store", exc)
            return False
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self.failed:
            self.failed = True
            self.warn(f"{what} could not be logged to MLflow at {shown(self.uri)} ({type(exc).__name__}: "
                      f"{last_line(str(exc))}); the runs go on and are recorded in the ledger, and later MLflow "
                      f"errors are not said again")

    # -- the tasks, in the thread -----------------------------------------------------------------------------

    def experiment(self, name: str) -> str:
        known = self.experiments.get(name)
        if known is not None:
            return known
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                self.client.create_experiment(name)
            except Exception:  # noqa: BLE001 - another runner made it first: look again (a real failure raises there)
                pass
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise RuntimeError(f"experiment {name!r} could not be made")
        if getattr(found, "lifecycle_stage", "active") == "deleted":
            raise RuntimeError(f"experiment {name!r} is deleted; restore it (mlflow experiments restore) or "
                               f"remove it for good (mlflow gc)")
        self.experiments[name] = found.experiment_id
        return found.experiment_id

    def start(self, run_id: int, experiment: str, name: str, params: Mapping[str, Any], tags: Dict[str, str],
              began: int) -> None:
        key_chars, value_chars, tag_chars = self.limits
        created = self.client.create_run(self.experiment(experiment), start_time=began, run_name=name,
                                         tags={k: v[:tag_chars] for k, v in tags.items()})
        mlflow_id = self.runs[run_id] = created.info.run_id
        seen: Set[str] = set()
        batch = []
        for key, value in flat_params(params):
            key = mlflow_key(key)[:key_chars]
            if key not in seen:
                seen.add(key)
                batch.append(self.entities.Param(key, value[:value_chars]))
        for at in range(0, len(batch), PER_BATCH_PARAMS):
            self.client.log_batch(mlflow_id, params=batch[at:at + PER_BATCH_PARAMS])

    def points(self, run_id: int, points: Points, count: int) -> None:
        try:
            mlflow_id = self.runs.get(run_id)
            if mlflow_id is not None:
                metric = self.entities.Metric
                batch = [metric(metric_key(row.split, row.name), float("nan") if row.value is None else row.value,
                                at, row.step or 0) for at, rows in points for row in rows]
                for at in range(0, len(batch), PER_BATCH_METRICS):
                    self.client.log_batch(mlflow_id, metrics=batch[at:at + PER_BATCH_METRICS])
        finally:
            with self._count:
                self.waiting -= count

    def end(self, run_id: int, label: str, status: str, ended: int, results: Dict[str, Optional[float]],
            tags: Dict[str, str], model_dir: str) -> None:
        mlflow_id = self.runs.pop(run_id, None)
        if mlflow_id is None:
            return
        try:
            tag_chars = self.limits[2]
            metrics = [self.entities.Metric(mlflow_key(k), float("nan") if v is None else v, ended, 0)
                       for k, v in results.items()]
            self.client.log_batch(mlflow_id, metrics=metrics[:PER_BATCH_METRICS],
                                  tags=[self.entities.RunTag(k, v[:tag_chars]) for k, v in tags.items()])
            if model_dir and os.path.isdir(model_dir) and any(os.scandir(model_dir)):
                size = tree_size(model_dir, ARTIFACTS_LIMIT)
                if size > ARTIFACTS_LIMIT:
                    self.warn(f"{label}: its model dir holds over {ARTIFACTS_LIMIT >> 30} GiB, so it is not logged to "
                              f"MLflow as artifacts (it stays in {model_dir})")
                else:
                    self.client.log_artifacts(mlflow_id, model_dir)
        finally:
            self.client.set_terminated(mlflow_id, status, ended)

    def given_up(self, began: float, limit: float) -> bool:
        """At the runner's end: not worth waiting for any longer (past ``limit``; past ``FAILED_DRAIN`` once a call
        failed, or while the store never answered and the call being made began that long ago)."""
        now, busy = time.monotonic(), self.busy_since
        short = self.failed or (not self.answered and busy is not None and now - busy >= FAILED_DRAIN)
        return now - began >= (min(limit, FAILED_DRAIN) if short else limit)

    def close(self, drain: Optional[float] = None) -> None:
        """Let the thread finish what is queued, for ``drain`` seconds at most (default ``mlflow_drain``; a few
        once a call failed or while the store does not answer), then give up on the rest, saying so."""
        thread = self.thread
        if thread is None:
            return
        self.queue.put(None)
        began = time.monotonic()
        limit = timings().mlflow_drain if drain is None else drain
        while thread.is_alive() and not self.given_up(began, limit):
            thread.join(0.05)
        left = self.queue.unfinished_tasks - 1  # (less the end of the queue)
        if thread.is_alive() and left > 0 and not self.off and not self.failed:  # (a failure was said: once)
            self.warn(f"MLflow at {shown(self.uri)} did not answer within {time.monotonic() - began:.0f} s of the "
                      f"batch's end: {left} calls to it are given up; the runs are recorded in the ledger")


class MlflowObserver:
    """A runner's observer (execution mode) that logs each run to MLflow through ``MlflowLog``: on the loop
    thread it only queues; the batch calls ``close`` at its end (runs still open end KILLED)."""

    def __init__(self, project: Project, log: MlflowLog, clock: Callable[[], float] = time.time):
        self.project, self.log, self.clock = project, log, clock
        self.open: Dict[int, str] = {}  # ledger run id -> its label, started and not yet ended
        self.dropped = False
        try:
            self.user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name (a container's uid): MLflow's tag is left out
            self.user = ""
        self.host = hostname()

    def experiment(self, run: Run) -> str:
        """2.x's experiment name: the script's path in the models folder (``sample_experiment.py``)."""
        spec = run.item.spec
        rel = os.path.relpath(spec.script, self.project.models_dir)
        return spec.rel if rel.startswith("..") else rel.replace(os.sep, "/")

    def started(self, run: Run) -> None:
        spec = run.item.spec
        tags = {"mlpipeline.script": spec.rel, "mlpipeline.version": spec.version,
                "mlpipeline.run_id": str(run.run_id), "mlpipeline.project": os.path.basename(self.project.root),
                "mlpipeline.host": self.host, "mlflow.source.name": spec.rel, "mlflow.source.type": "LOCAL"}
        if self.user:
            tags["mlflow.user"] = self.user
        if self.log.put(run.label, self.log.start, run.run_id, self.experiment(run), spec.version, spec.params, tags,
                        int(self.clock() * 1000)):
            self.open[run.run_id] = run.label
            run.notes["mlflow"] = ([], 0, float("-inf"))  # (points, their count, when the last batch went)

    def metrics(self, run: Run, rows: Sequence[MetricRow], now: float) -> None:
        kept = run.notes.get("mlflow")
        if kept is None or not rows:
            return
        points, count, sent = kept
        points.append((int(self.clock() * 1000), list(rows)))
        count += len(rows)
        if now - sent < FLUSH_EVERY:
            run.notes["mlflow"] = (points, count, sent)
            return
        self._send(run, points, count)
        run.notes["mlflow"] = ([], 0, now)

    def _send(self, run: Run, points: Points, count: int) -> None:
        if count and not self.log.put(run.label, self.log.points, run.run_id, points, count, points=count) \
                and not self.dropped and not self.log.off:
            self.dropped = True
            self.log.warn(f"MLflow at {shown(self.log.uri)} is {POINTS_LIMIT} points behind; later points are dropped "
                          f"from MLflow while it is (the ledger has them all)")

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None:
        kept = run.notes.pop("mlflow", None)
        if kept is None:
            return
        self._send(run, kept[0], kept[1])
        result = outcome.result or {}
        results = {f"TRAIN_{k}": v for k, v in (result.get("eval_train") or {}).items()}
        results.update({f"TEST_{k}": v for k, v in (result.get("eval_test") or {}).items()})
        tags = {"mlpipeline.status": outcome.status.value}
        error = last_line(outcome.error) or last_line(outcome.traceback)
        if error:
            tags["mlpipeline.error"] = error
        self.open.pop(run.run_id, None)
        self.log.put(run.label, self.log.end, run.run_id, run.label, STATUSES.get(outcome.status, "FAILED"),
                     int(self.clock() * 1000), results, tags, run.model_dir)

    def close(self, drain: Optional[float] = None) -> None:
        """The batch ended: runs it left open end KILLED, and what is queued gets ``drain`` seconds."""
        for run_id, label in list(self.open.items()):
            self.log.put(label, self.log.end, run_id, label, "KILLED", int(self.clock() * 1000), {},
                         {"mlpipeline.status": RunStatus.INTERRUPTED.value}, "")
        self.open.clear()
        self.log.close(drain)


def mlflow_observer(project: Project, uri: Optional[str], warn: Callable[[str], None]) -> Optional[MlflowObserver]:
    """The observer for ``uri`` (2.x's ``--mlflow_tracking_uri``) or else the project's ``[MLFLOW]
    tracking_uri``; None (said with ``warn``) when the mlflow package is not installed."""
    import importlib.util

    source = "--mlflow_tracking_uri" if uri else "[MLFLOW] tracking_uri"
    where = uri or project.mlflow_uri
    if not where:
        return None
    if importlib.util.find_spec("mlflow") is None:
        warn(f"{source} is set but the mlflow package is not installed: {INSTALL}; runs are recorded in the ledger "
             f"only")
        return None
    return MlflowObserver(project, MlflowLog(where, source, warn))
