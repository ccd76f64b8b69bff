"""``optuna_search``: a search's ``propose`` backed by an Optuna study (ask and tell), its
trials kept in line with the ledger's history; it runs in the search's child process."""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core.vocabulary import RunStatus
from .space import Distribution, choice, loguniform, metric_value, randint, search_point_hash, uniform
from ..core.errors import VersionValueError

SPACE_HELP = ("optuna_search: no search space; pass space= a dict of distributions (uniform, loguniform, randint, "
              "choice from mlpipeline.sweeps), e.g. space={'lr': loguniform(1e-4, 1e-1)}, or a function "
              "space(trial) -> params, or put @optuna_search(...) over that function")


class OptunaSearch:
    """``propose`` for ``Versions.add_search`` that drives an Optuna study through
    ask and tell: each point is one trial (its user attribute ``mlpipeline_point``
    holds the hash that names the version), told its ``metric`` when the version
    succeeds, pruned when a stopper pruned it and failed when it failed. The
    ledger stays the truth: on every call the study is brought in line with the
    search's history, and a trial left running by a runner that died (Optuna's
    heartbeat does not cover ask and tell) is failed, unless its point is running
    again — also one asked just before the runner died, not yet marked with its
    point. So the study must be this search's own: another Optuna worker's
    running trials in it would be failed too."""

    def __init__(self, study_factory: Any, metric: str, direction: str = "minimize", space: Any = None):
        if study_factory is not None and not callable(study_factory):
            raise VersionValueError(f"optuna_search: study_factory must be a function that returns an optuna.Study "
                                    f"(or None for an in-memory study), got {study_factory!r}")
        if not isinstance(metric, str) or not metric:
            raise VersionValueError(f"optuna_search: metric must name a metric the versions report, e.g. 'test/acc', "
                                    f"got {metric!r}")
        if direction not in ("minimize", "maximize"):
            raise VersionValueError(f"optuna_search: direction={direction!r} must be 'minimize' or 'maximize'")
        if space is not None and not (callable(space) or isinstance(space, dict)):
            raise VersionValueError(SPACE_HELP)
        if isinstance(space, dict):
            for key, dist in space.items():
                if not isinstance(dist, Distribution):
                    raise VersionValueError(f"optuna_search: space[{key!r}]={dist!r} is not a distribution from "
                                            f"mlpipeline.sweeps")
        self.study_factory, self.metric, self.direction, self.space = study_factory, metric, direction, space
        self._study: Any = None
        self._trials: Dict[str, int] = {}   # point hash -> trial number (-1: added from the ledger, finished)
        self._told: set = set()              # point hashes whose trial is finished
        self._refused: Dict[str, int] = {}   # point hash -> a trial asked for a point already tried
        self._asked: Optional[str] = None    # the point last proposed (running or refused by the next call)
        self._scanned = False                # trials a dead runner left running are failed once, at the start
        self._asked_trials: Dict[int, Any] = {}  # trial number -> the Trial this process asked, until told
        self._unmarked: List[Tuple[Any, str]] = []  # (trial, point) asked, its user attribute not yet written

    @property
    def study(self) -> Any:
        """The study (created on first use, in the search's process)."""
        if self._study is None:
            import optuna

            # test mode tries one 1-step point: it must not become a trial of the real study
            test_mode = os.environ.get("MLPIPELINE_MODE") == "test"
            study = self.study_factory() if self.study_factory is not None and not test_mode else \
                optuna.create_study(direction="maximize" if self.direction == "maximize" else "minimize")
            if study.direction.name.lower() != self.direction:
                raise VersionValueError(f"optuna_search: the study's direction is {study.direction.name.lower()}, "
                                        f"but direction={self.direction!r}; make them agree")
            for trial in study.get_trials(deepcopy=False):
                point = self._point_of(trial)
                if point:
                    self._trials[point] = trial.number
                    if trial.state.is_finished():
                        self._told.add(point)
            self._study = study
        return self._study

    def idle(self) -> bool:
        """Called by the search's process when no question waits: mark one trial asked over a dict
        space with the ``mlpipeline_point`` user attribute (a storage write kept off the way of the
        next point: the trial is known by its parameters meanwhile). Whether more wait."""
        if self._unmarked:
            trial, point = self._unmarked.pop(0)
            trial.set_user_attr("mlpipeline_point", point)
        return bool(self._unmarked)

    def _point_of(self, trial: Any) -> Optional[str]:
        """The point a trial ran: its ``mlpipeline_point`` user attribute (a define-by-run space, or a
        study an earlier mlpipeline marked), else, over a dict space, the hash of its parameters —
        known the moment ``ask`` returns, so no trial is ever unmarked and no write marks one."""
        point = trial.user_attrs.get("mlpipeline_point")
        if point or not isinstance(self.space, dict) or set(trial.params) != set(self.space):
            return point or None
        return search_point_hash(_plain(trial.params))

    def _distributions(self) -> Dict[str, Any]:
        import optuna.distributions as od

        found: Dict[str, Any] = {}
        for key, dist in self.space.items():
            if isinstance(dist, loguniform):
                found[key] = od.FloatDistribution(dist.low, dist.high, log=True)
            elif isinstance(dist, uniform):
                found[key] = od.FloatDistribution(dist.low, dist.high)
            elif isinstance(dist, randint):
                found[key] = od.IntDistribution(dist.low, dist.high)
            elif isinstance(dist, choice):
                found[key] = od.CategoricalDistribution(dist.options)
            else:
                raise VersionValueError(f"optuna_search: {dist!r} has no Optuna counterpart")
        return found

    def sync(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Tell the study what the ledger knows: finished versions, and (at the first call, in a new
        search process) trials whose runs died with an earlier runner."""
        import optuna

        study = self.study
        for item in history:
            point = str(item.get("point", ""))
            if point not in self._trials:
                self._learn(point, item)  # a result the study never saw (an in-memory study after a crash)
            elif point not in self._told:
                self._tell(point, item)
        if self._scanned:
            return  # every trial asked since is this process's own, and told or running
        self._scanned = True
        running = set(getattr(history, "running_points", []))
        waiting = set(self._refused.values())  # refused trials this process still tells (next call)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            ran = self._point_of(trial)
            if ran in running or (ran is not None and ran in self._told) or trial.number in waiting \
                    or (ran is not None and ran == self._asked):
                continue
            # A runner killed while the trial ran, or between study.ask() and marking the trial with its
            # point (or after a refused one): no run will ever finish it. The study is this search's own.
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            if ran is not None:
                self._told.add(ran)

    def _learn(self, point: str, item: Mapping[str, Any]) -> None:
        """Add a finished version from the ledger to the study as a finished trial (dict spaces only:
        a define-by-run space does not say its distributions before it is asked)."""
        import optuna

        if not isinstance(self.space, dict):
            return
        params = item.get("params") or {}
        if not all(key in params for key in self.space):
            return
        state, value = self._result(item)
        try:
            trial = optuna.trial.create_trial(params={key: params[key] for key in self.space},
                                              distributions=self._distributions(), value=value, state=state,
                                              user_attrs={"mlpipeline_point": point})
        except ValueError:  # a value outside today's space (it was edited): the study does without it
            return
        self.study.add_trial(trial)
        self._trials[point] = -1
        self._told.add(point)

    def _result(self, item: Optional[Mapping[str, Any]]) -> Tuple[Any, Optional[float]]:
        """A history item as an Optuna trial's end: (state, value) — COMPLETE with the metric when it
        succeeded with a finite one, PRUNED when a stopper ended it, FAIL otherwise (or for no item)."""
        import optuna

        states = optuna.trial.TrialState
        value = metric_value(item.get("metrics") or {}, self.metric) if item else None
        if item and item.get("status") == RunStatus.SUCCEEDED and isinstance(value, (int, float)) \
                and math.isfinite(value):
            return states.COMPLETE, float(value)
        return (states.PRUNED if item and item.get("status") == RunStatus.PRUNED else states.FAIL), None

    def _tell(self, point: str, item: Mapping[str, Any]) -> None:
        number = self._trials[point]
        self._tell_trial(self._asked_trials.pop(number, number), item)
        self._told.add(point)

    def _tell_trial(self, trial: Any, item: Optional[Mapping[str, Any]]) -> None:
        """Tell ``trial`` (the Trial this process asked, or a trial's number) how its version ended."""
        state, value = self._result(item)
        if value is not None:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)

    def __call__(self, history: Any) -> Any:
        if self.space is None and callable(history) and not isinstance(history, (list, tuple)):
            self.space = history  # used as a decorator: @optuna_search(...) over space(trial) -> params
            return self
        if self.space is None:
            raise VersionValueError(SPACE_HELP)
        self._asked = None
        for refused in getattr(history, "refused", []):  # the point of an earlier version: its result, if known
            point = search_point_hash(refused)
            trial = self._refused.pop(point, None)
            if trial is not None:
                self._tell_trial(trial, next((i for i in history if i.get("point") == point),
                                             None))
        self.sync(history)
        study = self.study
        if callable(self.space):
            trial = study.ask()
            params = self.space(trial)
        else:
            trial = study.ask(self._distributions())
            params = dict(trial.params)
        if not isinstance(params, dict):
            raise VersionValueError(f"optuna_search: space(trial) returned {params!r}; return a dict of parameters")
        params = _plain(params)
        point = search_point_hash(params)
        if point in self._trials:  # a point tried before: the runner refuses it and asks again
            self._refused[point] = trial.number
        else:
            if callable(self.space):  # its parameters may not be the trial's: marked before anything runs
                trial.set_user_attr("mlpipeline_point", point)
            else:  # known by its parameters already: marked when the search's process is idle (idle)
                self._unmarked.append((trial, point))
            self._trials[point] = trial.number
            self._asked_trials[trial.number] = trial  # told by object: no lookup of its number in the storage
            self._asked = point
        return params


def _plain(params: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}


def optuna_search(study_factory: Any, metric: str, direction: str = "minimize", space: Any = None) -> OptunaSearch:
    """``propose`` for ``Versions.add_search`` backed by an Optuna study (see ``OptunaSearch``). The
    search space is ``space=`` (a dict of distributions, or ``space(trial) -> params``), or the
    function the result decorates (``@optuna_search(factory, "test/loss", "minimize")`` over
    ``def space(trial): return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}``):
    ``add_search(optuna_search(lambda: optuna.create_study(storage=..., study_name=..., load_if_exists=True,
    direction="minimize"), "test/loss", "minimize", space={"lr": loguniform(1e-4, 1e-1)}), budget=50, parallel=4)``."""
    return OptunaSearch(study_factory, metric, direction, space)
