"""Which parameters matter: a ranking of a script's parameters by how much of a metric's
variance each explains, over the finished runs the ledger holds — any search, grid or set
of versions qualifies, not only Optuna's.

fANOVA through Optuna's importance evaluator, on a study built in memory from the runs (a
trial per run, each parameter's distribution read off the values seen); where Optuna (or
scikit-learn, which its fANOVA fits forests with) is missing or fails, a fallback that needs
no optional package: per parameter, the share of the variance its binned means explain,
corrected for what chance alone gives that many bins (epsilon squared of a one-way ANOVA).
Neither optuna nor numpy is imported until a ranking is asked for.
"""
from __future__ import annotations

import json
import math
import random
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..core.errors import UsageError
from ..core.lifecycle import RunStatus
from ..store.reader import Reader
from .search import ALL, choose_metric, load_points, lower_is_better, varying

METHODS = ("auto", "fanova", "binned")
FANOVA_TREES = 16     # Optuna's default is 64 trees of depth 64: seconds for 1 000 runs; a page needs a ranking fast
FANOVA_DEPTH = 6
FANOVA_RUNS = 500     # more runs are sampled down to this many (at random, by ``seed``) for the forest
MIN_RUNS = 3
UNSET = "(unset)"


def importance(ledger: Reader, script: str, metric: Optional[str] = None, search: Optional[str] = None,
               method: str = "auto", seed: int = 0) -> Dict[str, Any]:
    """The parameters of ``script``'s succeeded runs (one per version, of ``search`` or all) ranked by
    their importance for ``metric``: ``{"script", "search", "metric", "method", "runs", "note",
    "ranking": [{"param", "importance", "kind"}]}``, importances summing to 1, most important first.
    ``method``: ``fanova`` (Optuna), ``binned`` (the fallback) or ``auto`` (fANOVA, else the fallback,
    with ``note`` saying why)."""
    if method not in METHODS:
        raise UsageError(f"method {method!r}: one of {', '.join(METHODS)}")
    loaded = load_points(ledger, script, search)
    metric = choose_metric(loaded["points"], metric)
    done = [p for p in loaded["points"] if p["status"] == RunStatus.SUCCEEDED.value
            and _number(p["metrics"].get(metric))]
    where = f"{loaded['script']}" + (f" (search {loaded['search']})" if loaded["search"] else "")
    if len(done) < MIN_RUNS:
        raise UsageError(f"importance of {metric} in {where}: {len(done)} succeeded run(s) recorded it; "
                         f"it takes at least {MIN_RUNS}")
    keys = varying(done)
    if not keys:
        raise UsageError(f"importance of {metric} in {where}: no parameter varies across its {len(done)} "
                         f"succeeded runs")
    columns = {k: _column([p["params"].get(k, UNSET) for p in done]) for k in keys}
    values = [float(p["metrics"][metric]) for p in done]
    if min(values) == max(values):
        raise UsageError(f"importance of {metric} in {where}: it is {values[0]:g} in every one of its {len(done)} "
                         f"succeeded runs, so no parameter explains any of it")
    # shares of variance do not change with the metric's scale; a diverged run's 1e160 would overflow squares
    scale = max(abs(v) for v in values)
    values = [v / scale for v in values]
    note = None
    scores: Optional[Dict[str, float]] = None
    used = method
    if method in ("auto", "fanova"):
        try:
            rows = _sample(len(values), FANOVA_RUNS, seed)
            scores = fanova({k: (kind, [seen[i] for i in rows]) for k, (kind, seen) in columns.items()},
                            [values[i] for i in rows], lower_is_better(metric), seed)
            used = "fanova"
            if len(rows) < len(values):
                note = f"fANOVA fitted on {len(rows)} of the {len(values)} runs, drawn at random"
        except Exception as exc:  # noqa: BLE001 - optuna or scikit-learn missing, or fANOVA refused the data
            if method == "fanova":
                raise UsageError(f"importance --method fanova: {_why(exc)}") from None
            note = f"fANOVA unavailable ({_why(exc)}); binned variance used instead"
    if scores is None:
        scores, used = binned(columns, values), "binned"
    total = math.fsum(scores.values())
    ranking: List[Dict[str, Any]] = [{"param": k, "importance": scores[k] / total if total > 0 else 0.0,
                                      "kind": columns[k][0]} for k in keys]
    ranking.sort(key=lambda r: (-r["importance"], r["param"]))
    return {"script": loaded["script"], "search": loaded["search"] or ALL, "metric": metric, "method": used,
            "runs": len(done), "note": note, "ranking": ranking}


def _sample(count: int, most: int, seed: int) -> List[int]:
    """``most`` of the indexes below ``count`` drawn at random (all of them when there are no more), in order."""
    if count <= most:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), most))


def _why(exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return f"{exc.name or 'a package'} is not installed: pip install 'mlpipeline[optuna]'"
    return f"{type(exc).__name__}: {exc}".strip()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


Column = Tuple[str, List[Any]]  # ("number", floats) or ("category", texts)


def _column(values: Sequence[Any]) -> Column:
    """A parameter's values as numbers (when every run set a finite number) or as category texts."""
    if all(_number(v) for v in values):
        return "number", [float(v) for v in values]
    return "category", [v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for v in values]


# -- fANOVA (Optuna) ---------------------------------------------------------------------------------------------

def fanova(columns: Dict[str, Column], values: Sequence[float], minimize: bool = True,
           seed: int = 0) -> Dict[str, float]:
    """fANOVA importances (unnormalised) through ``optuna.importance.FanovaImportanceEvaluator``, on
    an in-memory study with a trial per run."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions: Dict[str, Any] = {}
    for key, (kind, seen) in columns.items():
        if kind == "category":
            distributions[key] = CategoricalDistribution(sorted(set(seen)))
            continue
        low, high = min(seen), max(seen)
        log = log_spread(seen)
        if all(v.is_integer() for v in seen):
            distributions[key] = IntDistribution(int(low), int(high), log=log and low >= 1)
        else:
            distributions[key] = FloatDistribution(low, high, log=log)
    trials = []
    for row, value in enumerate(values):
        params = {k: (int(c[1][row]) if isinstance(distributions[k], IntDistribution) else c[1][row])
                  for k, c in columns.items()}
        trials.append(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature notes: the ranking is the answer
        study = optuna.create_study(direction="minimize" if minimize else "maximize")
        study.add_trials(trials)
        evaluator = FanovaImportanceEvaluator(n_trees=FANOVA_TREES, max_depth=FANOVA_DEPTH, seed=seed)
        found = get_param_importances(study, evaluator=evaluator, normalize=False)
    return {k: float(found.get(k, 0.0)) for k in columns}


def log_spread(values: Sequence[float]) -> bool:
    """Whether positive ``values`` look drawn on a log scale (a learning rate from 1e-5 to 1e-1): over
    two decades, with their median in the lowest tenth of their range."""
    low, high = min(values), max(values)
    return low > 0 and high / low >= 100 and sorted(values)[len(values) // 2] < (low + high) / 10


# -- the fallback: binned variance ---------------------------------------------------------------------------------

def binned(columns: Dict[str, Column], values: Sequence[float]) -> Dict[str, float]:
    """Per parameter, epsilon squared of a one-way ANOVA of ``values`` over its groups: its
    categories, or for a number up to sqrt(n) (at most 10) bins of equal counts by rank. Pure
    Python: needs no optional package."""
    count = len(values)
    mean = math.fsum(values) / count
    total = math.fsum((v - mean) ** 2 for v in values)
    bins = max(2, min(10, int(round(math.sqrt(count)))))
    scores = {}
    for key, (kind, seen) in columns.items():
        groups = _groups(seen, bins) if kind == "number" else seen
        scores[key] = _epsilon_squared(groups, values, mean, total)
    return scores


def _groups(seen: Sequence[float], bins: int) -> List[int]:
    """Each value's bin: equal counts by rank, equal values always in one bin."""
    order = sorted(range(len(seen)), key=lambda i: seen[i])
    group = [0] * len(seen)
    first_rank: Dict[float, int] = {}
    for rank, i in enumerate(order):
        first_rank.setdefault(seen[i], rank)
        group[i] = first_rank[seen[i]] * bins // len(seen)
    return group


def _epsilon_squared(groups: Sequence[Any], values: Sequence[float], mean: float, total: float) -> float:
    members: Dict[Any, List[float]] = {}
    for group, value in zip(groups, values):
        members.setdefault(group, []).append(value)
    count, k = len(values), len(members)
    if total <= 0 or k < 2 or count <= k:
        return 0.0
    between = math.fsum(len(m) * (math.fsum(m) / len(m) - mean) ** 2 for m in members.values())
    within = (total - between) / (count - k)
    return max(0.0, (between - (k - 1) * within) / total)
