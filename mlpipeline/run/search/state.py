"""The runner's side of one search in one batch: what it tried and runs, its budget, the
history its ``propose`` sees, its stopper's state."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ...core.lifecycle import MetricRow, RunStatus, VersionSpec
from ...plan.planner import spec_of
from ...script.loading import VersionInfo
from ...script.space import point_of
from .asha import AshaRungs

HISTORY_CHUNK = 500  # history items per line sent to the child


class SearchState:
    """One search (``add_search``) of one script, as the runner drives it."""

    def __init__(self, rel: str, path: str, info: Any, decl: Dict[str, Any], budget: int):
        self.rel, self.path, self.info, self.decl = rel, path, info, decl
        self.name: str = decl["name"]
        self.budget, self.parallel = budget, int(decl["parallel"])
        self.history: List[Dict[str, Any]] = []
        self.sent = 0                          # history items the child has
        self.tried: Set[str] = set()           # versions started or finished (not to be proposed again)
        self.running: Dict[str, str] = {}      # version -> its point id
        self.resume: List[Tuple[str, Dict[str, Any], str]] = []  # (name, params, sha256) interrupted: run again
        self.asked: Optional[int] = None       # the id of the proposal asked for
        self.ready: Optional[Dict[str, Any]] = None
        self.refused: List[Dict[str, Any]] = []
        self.held = False                      # propose() gave a running point: ask again once a result is in
        self.ended: Optional[str] = None       # why it proposes no more
        stopper = decl.get("stopper") or {}
        self.asha = AshaRungs(stopper) if stopper.get("kind") == "asha" else None
        self.stop_function = stopper.get("kind") == "function"
        self.stop_asked: Dict[str, int] = {}   # version -> the id of the stop() question out for it
        self.stop_rows: Dict[str, List[List[Any]]] = {}  # rows not yet sent with a stop() question
        self.stop_step: Dict[str, int] = {}    # the last step asked about
        self.stop_broken: Set[str] = set()     # versions whose stop() failed: not asked again

    @property
    def key(self) -> Tuple[str, str]:
        return (self.rel, self.name)

    def spent(self) -> int:
        return len(self.tried)

    def wants(self) -> bool:
        """Can another point of this search start now?"""
        return self.ended is None and len(self.running) < self.parallel and \
            (bool(self.resume) or (self.spent() < self.budget and not self.held))

    def done(self) -> bool:
        return not self.running and (self.ended is not None or (self.spent() >= self.budget and not self.resume))

    def load(self, runs: Sequence[Any], metrics: Dict[int, Dict[str, Any]], curves: Dict[int, List[MetricRow]]) -> None:
        """Take up where earlier batches left this search (``-u``): their finished points are
        its history; a point whose only runs were interrupted runs again."""
        finished: Dict[str, Any] = {}
        interrupted: Dict[str, Any] = {}
        for run in runs:  # oldest first
            name = run["version"]
            if run["status"] == RunStatus.INTERRUPTED.value:
                interrupted.setdefault(name, run)
                continue
            finished[name] = run
            self.history.append(self.item(name, point_of(name), json.loads(run["params"] or "{}"), run["status"],
                                          metrics.get(run["id"], {})))
            if self.asha is not None:
                self.asha.observe(name, curves.get(run["id"], []))
        self.tried.update(finished)
        for name, run in interrupted.items():
            if name not in finished:
                self.resume.append((name, json.loads(run["params"] or "{}"), run["params_sha256"] or ""))
                self.tried.add(name)

    def point(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """What a point set: a version's parameters less those of the search's template."""
        template = self.decl.get("template") or {}
        return {k: v for k, v in params.items() if k != "name" and template.get(k, object()) != v}

    def item(self, name: str, point_id: str, params: Dict[str, Any], status: str,
             metrics: Dict[str, Any]) -> Dict[str, Any]:
        """A history item: the point (``version``, its ``point`` id, the ``params`` it set), how
        its run ended and its metrics."""
        return {"version": name, "point": point_id, "params": self.point(params), "status": status,
                "metrics": metrics}

    def spec(self, name: str, params: Dict[str, Any], params_sha256: str) -> VersionSpec:
        return spec_of(self.path, self.rel, self.info, VersionInfo(name, params, params_sha256))

    def history_messages(self) -> List[Dict[str, Any]]:
        """The history the child does not have yet, in lines of a bounded size."""
        new = self.history[self.sent:]
        self.sent = len(self.history)
        chunks = [new[i:i + HISTORY_CHUNK] for i in range(0, len(new), HISTORY_CHUNK)]
        return [{"op": "history", "search": self.name, "items": chunk, "running": sorted(self.running),
                 "running_points": sorted(self.running.values()), "last": i == len(chunks) - 1}
                for i, chunk in enumerate(chunks)]
