"""What reacts to a run's life besides the ledger: the terminal (its start, progress and end),
the host files (``output-<host>``), the litter check. The runner tells every observer of each
run's start, points and end; an observer that fails is turned off with a warning, and the run
goes on (the ledger is no observer: a run that cannot be recorded fails, see ``recorder``)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from ..core.errors import MLPipelineError
from ..core.layout import Project
from ..core.lifecycle import MetricRow, Outcome, RunStatus
from ..core.text import elapsed_text
from ..plan.planner import QueueItem
from ..script.versions import version_parameters
from . import litter

PROGRESS_EVERY = 1.0  # seconds between a running version's progress lines

Say = Callable[..., None]  # (message, level=INFO, echo=True)


@dataclass
class Run:
    """A run the runner watches: its queue item, id, executor ticket, when it started (the
    runner's clock), its bound and model dir; what the observers keep of it."""

    item: QueueItem
    run_id: int
    ticket: int
    started: float
    timeout: Optional[float] = None
    model_dir: str = ""
    ending: bool = False                # a cancel, timeout or prune was sent
    notes: Dict[str, Any] = field(default_factory=dict)  # per-observer state

    @property
    def label(self) -> str:
        return self.item.label


class Observer(Protocol):
    def started(self, run: Run) -> None: ...

    def metrics(self, run: Run, rows: Sequence[MetricRow], now: float) -> None: ...

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None: ...


class Terminal:
    """What the person watching reads: each start, a progress line a second while points come
    in, and how each run ended (a failure with its traceback in the log)."""

    def __init__(self, say: Say, notify: Callable[[str, int], None], project: Project, test: bool):
        self.say, self.notify, self.project, self.test = say, notify, project, test

    def started(self, run: Run) -> None:
        where = "test mode, 1 step" if self.test else "model dir " + os.path.relpath(run.model_dir, self.project.root)
        self.say(f"{run.label}: started (run {run.run_id}, {where})")

    def metrics(self, run: Run, rows: Sequence[MetricRow], now: float) -> None:
        run.notes.setdefault("last", {}).update({(r.split, r.name): r.value for r in rows})
        stepped = next((r for r in reversed(rows) if r.step is not None), None)
        if stepped is None or now - run.notes.get("progress", float("-inf")) < PROGRESS_EVERY:
            return
        run.notes["progress"] = now
        value = "nan" if stepped.value is None else f"{stepped.value:.4g}"
        self.notify(f"{run.label}: step {stepped.step}  {stepped.split}/{stepped.name}={value}  "
                    f"({elapsed_text(now - run.started)})", logging.INFO)

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None:
        took = elapsed_text(seconds)
        if outcome.status == RunStatus.SUCCEEDED:
            result = outcome.result or {}
            last = run.notes.get("last") or {}
            if not result.get("eval_train_text") and not result.get("eval_test_text") and last:
                shown = "  ".join(f"{split}/{name}={'nan' if value is None else format(value, '.4g')}"
                                  for (split, name), value in list(last.items())[:8])
                self.say(f"{run.label}: succeeded in {took} (run {run.run_id}); last points: {shown}")
                return
            self.say(f"{run.label}: succeeded in {took} (run {run.run_id}); train: "
                     f"{result.get('eval_train_text') or '-'}; test: {result.get('eval_test_text') or '-'}")
            return
        asked = outcome.status in (RunStatus.CANCELLED, RunStatus.INTERRUPTED)  # asked for
        level = logging.INFO if outcome.status == RunStatus.PRUNED else logging.WARNING if asked else logging.ERROR
        self.say(f"{run.label}: {outcome.status.value} after {took} (run {run.run_id}): {outcome.error}", level)
        if outcome.traceback:
            self.say(outcome.traceback.rstrip(), logging.ERROR, echo=False)


class HostFiles:
    """``output-<host>``: one block per version that succeeded, in the original tool's layout."""

    def __init__(self, outputs: Any):
        self.outputs = outputs

    def started(self, run: Run) -> None:
        pass

    def metrics(self, run: Run, rows: Sequence[MetricRow], now: float) -> None:
        pass

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None:
        if outcome.status == RunStatus.SUCCEEDED:
            spec = run.item.spec
            self.outputs.output_block(script=spec.rel, version=spec.version, result=outcome.result or {},
                                      params=dict(spec.params), epochs=spec.params.get(version_parameters.EPOC_COUNT))


class Litter:
    """Says which files next to the configs and scripts changed while a version ran: a version
    should write inside its model dir."""

    def __init__(self, project: Project, say: Say):
        self.project, self.say = project, say
        self.folders = [project.root, project.models_dir]

    def started(self, run: Run) -> None:
        run.notes["files"] = litter.snapshot(self.folders)

    def metrics(self, run: Run, rows: Sequence[MetricRow], now: float) -> None:
        pass

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None:
        changed = litter.changed_since(run.notes.get("files") or {}, self.folders)
        if changed:
            shown = ", ".join(os.path.relpath(p, self.project.root) for p in changed[:5])
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            self.say(f"{run.label}: wrote outside its model dir while it ran (run {run.run_id}): {shown}{more}; keep "
                     f"a version's files in the model_dir it is given", logging.WARNING)


class Observers:
    """Tells each observer; one that raises is turned off, with a warning, and the rest go on."""

    def __init__(self, observers: List[Any], warn: Callable[[str], None]):
        self.observers, self.warn = list(observers), warn

    def add(self, observer: Any) -> None:
        self.observers.append(observer)

    def tell(self, event: str, *args: Any) -> None:
        """An event only some observers take (``queue_empty``, ``retried``, ``searches``, ``broken``):
        observers without a method of that name are passed over."""
        self._each(event, *args, optional=True)

    def _each(self, event: str, *args: Any, optional: bool = False) -> None:
        for observer in list(self.observers):
            if optional and not hasattr(observer, event):
                continue
            try:
                getattr(observer, event)(*args)
            except MLPipelineError:
                raise  # a write the runner must make failed (a full disk): it stops, as for the ledger
            except Exception as exc:  # noqa: BLE001 - an observer's failure costs its own work only
                self.observers.remove(observer)
                self.warn(f"{type(observer).__name__}: {type(exc).__name__}: {exc}; it is turned off, the runs go on")

    def started(self, run: Run) -> None:
        self._each("started", run)

    def metrics(self, run: Run, rows: Sequence[MetricRow], now: float) -> None:
        self._each("metrics", run, rows, now)

    def finished(self, run: Run, outcome: Outcome, seconds: float) -> None:
        self._each("finished", run, outcome, seconds)
