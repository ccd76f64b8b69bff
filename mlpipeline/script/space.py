"""Sweeps: many versions from a grid of values or from random draws.

``Versions.add_grid`` and ``Versions.add_random`` expand into ordinary
versions (each one goes through ``add_version``); this module holds the
distributions random search draws from and the rules that name the points.

A point's name is stable: the same point always gets the same name, so a
re-run, ``-u`` and ``compare`` see the same versions. A grid names a point with
its template (``"lr{lr}_bs{batch_size}"`` gives ``lr0.1_bs32``); a random point
is named ``r-`` plus 8 hex digits of the sha256 of the point as canonical JSON.
Random draws use only ``random.Random(seed).random()``, whose sequence Python
guarantees across versions, and are taken in order, so a larger ``n`` keeps
the first points.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import string
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..core.errors import VersionValueError
from ..core.jsonable import plain_param

Point = Dict[str, Any]

HASH_LEN = 8
NAME_LIMIT = 100  # characters: a longer formatted name is cut and given its hash (a model dir name has 255 bytes)


class Distribution:
    """Where one parameter of a random search draws its values from."""

    def sample(self, rng: random.Random) -> Any:
        """One value, drawn with ``rng.random()`` only (reproducible across Python versions)."""
        raise NotImplementedError


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(kind: str, low: Any, high: Any, example: str) -> None:
    for arg, value in (("low", low), ("high", high)):
        if not _number(value):
            raise VersionValueError(f"{kind}({low!r}, {high!r}): {arg} must be a finite number, got {value!r}; "
                                    f"e.g. {example}")
    if not low < high:
        raise VersionValueError(f"{kind}({low!r}, {high!r}): low must be less than high; swap them, or use a fixed "
                                f"value in common= for a single value")


class uniform(Distribution):  # noqa: N801 - lower case reads like the functions it stands for
    """A float drawn evenly from [low, high)."""

    def __init__(self, low: float, high: float):
        _check_range("uniform", low, high, "uniform(0.0, 0.5)")
        self.low, self.high = low, high

    def sample(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    def __repr__(self) -> str:
        return f"uniform({self.low!r}, {self.high!r})"


class loguniform(Distribution):  # noqa: N801
    """A float whose logarithm is drawn evenly: as likely in [1e-4, 1e-3) as in [1e-2, 1e-1)."""

    def __init__(self, low: float, high: float):
        _check_range("loguniform", low, high, "loguniform(1e-5, 1e-1)")
        if low <= 0:
            raise VersionValueError(f"loguniform({low!r}, {high!r}): low must be greater than 0 (a logarithm needs a "
                                    f"positive number); e.g. loguniform(1e-5, {high!r})")
        self.low, self.high = low, high

    def sample(self, rng: random.Random) -> float:
        log_low, log_high = math.log(self.low), math.log(self.high)
        # exp(log(x)) can round a hair outside [low, high); clamp so the bounds hold exactly
        return min(max(math.exp(log_low + (log_high - log_low) * rng.random()), self.low), self.high)

    def __repr__(self) -> str:
        return f"loguniform({self.low!r}, {self.high!r})"


class randint(Distribution):  # noqa: N801
    """An int drawn evenly from low to high, both included (as ``random.randint``)."""

    def __init__(self, low: int, high: int):
        for arg, value in (("low", low), ("high", high)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise VersionValueError(f"randint({low!r}, {high!r}): {arg} must be an int, got {value!r}; "
                                        f"e.g. randint(1, 8) (both ends included)")
        if low > high:
            raise VersionValueError(f"randint({low!r}, {high!r}): low must not be greater than high; swap them")
        self.low, self.high = low, high

    def sample(self, rng: random.Random) -> int:
        span = self.high - self.low + 1
        return self.low + min(int(rng.random() * span), span - 1)

    def __repr__(self) -> str:
        return f"randint({self.low!r}, {self.high!r})"


class choice(Distribution):  # noqa: N801
    """One of ``options``, each as likely."""

    def __init__(self, options: Sequence[Any]):
        if isinstance(options, (str, bytes)) or not isinstance(options, (list, tuple, range)):
            raise VersionValueError(f"choice({options!r}): options must be a list, e.g. choice(['adam', 'sgd'])")
        if not options:
            raise VersionValueError("choice([]): options is empty; give at least one, e.g. choice(['adam', 'sgd'])")
        self.options = list(options)

    def sample(self, rng: random.Random) -> Any:
        count = len(self.options)
        return self.options[min(int(rng.random() * count), count - 1)]

    def __repr__(self) -> str:
        return f"choice({self.options!r})"


# --- names -------------------------------------------------------------------------------------------------

def point_hash(point: Mapping[str, Any]) -> str:
    """8 hex digits of the sha256 of ``point`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(plain_param(dict(point)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LEN]


def valid_name(name: str) -> bool:
    """Whether ``name`` can name a version (its model dir): the rule the script check applies."""
    return (name not in ("", ".", "..") and not name.startswith("-") and len(name) <= NAME_LIMIT
            and not any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name))


def _tidy(text: str) -> str:
    """``text`` made safe to start a version name: bad characters become '_', long text is cut."""
    text = "".join("_" if c in "/\\" or ord(c) < 32 or ord(c) == 127 else c for c in text)[:NAME_LIMIT - HASH_LEN - 2]
    return "_" + text if text.startswith("-") or text in ("", ".", "..") else text


def _template_fields(template: str) -> List[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise VersionValueError(f"add_grid: name_template {template!r} is not a format string ({exc}); write fields "
                                f"as {{name}}, e.g. 'lr{{lr}}_bs{{batch_size}}'") from None
    fields = []
    for literal, field, _spec, _conv in parsed:
        if any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in literal):
            raise VersionValueError(f"add_grid: name_template {template!r} puts {literal!r} into every version name; "
                                    f"a version name names its model dir, so it cannot hold '/', '\\' or control "
                                    f"characters; use '_' instead (e.g. 'lr{{lr}}_bs{{batch_size}}')")
        if field is not None:
            root = field.split(".", 1)[0].split("[", 1)[0]
            if not root or root.isdigit():
                raise VersionValueError(f"add_grid: name_template {template!r} has a field {{{field}}} without a "
                                        f"parameter name; name the parameter, e.g. {{lr}}")
            fields.append(root)
    return fields


def grid_points(template: str, params: Mapping[str, Any], common: Mapping[str, Any]) -> List[Tuple[str, Point]]:
    """(name, point) for every combination of ``params``' values, in ``itertools.product`` order."""
    if not isinstance(template, str):
        raise VersionValueError(f"add_grid: name_template must be a string, got {template!r}; e.g. 'lr{{lr}}'")
    if not params:
        raise VersionValueError("add_grid: no parameters to sweep; pass lists of values, e.g. add_grid('lr{lr}', "
                                "lr=[0.1, 0.01])")
    values: Dict[str, List[Any]] = {}
    for key, given in params.items():
        if isinstance(given, (str, bytes, dict, set, frozenset, Distribution)) or not hasattr(given, "__iter__"):
            raise VersionValueError(f"add_grid: {key}={given!r} is not a list of values; write {key}=[...], or pass a "
                                    f"value every version shares in common={{{key!r}: ...}}")
        values[key] = list(given)
        if not values[key]:
            raise VersionValueError(f"add_grid: {key}=[] has no values; give at least one, or leave {key} out")
    fields = _template_fields(template)
    unknown = [f for f in fields if f not in values and f not in common]
    if unknown:
        raise VersionValueError(f"add_grid: name_template {template!r} names {{{unknown[0]}}}, which is neither swept "
                                f"nor in common= (swept: {', '.join(values)}); fix the field's name")
    complete = all(key in fields for key in values)
    points = []
    for combination in itertools.product(*values.values()):
        point = dict(zip(values, combination))
        try:
            text = template.format(**{**common, **point})
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise VersionValueError(f"add_grid: name_template {template!r} cannot format {point!r} "
                                    f"({type(exc).__name__}: {exc}); fix its format spec") from None
        if complete and valid_name(text):
            name = text
        else:  # the template leaves a swept value out, or a value made the name unusable
            name = f"{_tidy(text)}-{point_hash(point)}"
        points.append((name, point))
    return _unique(points, "add_grid", "use a template that tells them apart (e.g. {lr:g} rather than {lr:.1f})")


def random_points(n: int, seed: int, distributions: Mapping[str, Any], prefix: str = "r") -> List[Tuple[str, Point]]:
    """(name, point) for the first ``n`` distinct points drawn from ``distributions`` with ``seed``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise VersionValueError(f"add_random: n must be a whole number of versions (0 or more), got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise VersionValueError(f"add_random: seed must be an int, got {seed!r}; fix it (e.g. seed=0) so a re-run "
                                f"draws the same points")
    if not isinstance(prefix, str) or not valid_name(prefix + "-"):
        raise VersionValueError(f"add_random: prefix {prefix!r} cannot start a version name; use letters, digits, "
                                f"'_' or '.', e.g. prefix='r'")
    if not distributions:
        raise VersionValueError("add_random: no parameters to draw; pass distributions, e.g. add_random(8, seed=0, "
                                "lr=loguniform(1e-4, 1e-1))")
    for key, dist in distributions.items():
        if not isinstance(dist, Distribution):
            raise VersionValueError(f"add_random: {key}={dist!r} is not a distribution; use uniform, loguniform, "
                                    f"randint or choice from mlpipeline.sweeps, or pass a fixed value in "
                                    f"common={{{key!r}: ...}}")
    rng = random.Random(seed)
    points: Dict[str, Point] = {}
    draws = 0
    while len(points) < n:
        if draws >= 100 * n + 1000:
            raise VersionValueError(f"add_random: {len(points)} distinct points in {draws} draws, fewer than n={n}; "
                                    f"the distributions hold fewer points than that: lower n or widen them")
        draws += 1
        point = {key: dist.sample(rng) for key, dist in distributions.items()}
        points.setdefault(f"{prefix}-{point_hash(point)}", point)  # a point drawn again is not a new version
    return list(points.items())


def _unique(points: List[Tuple[str, Point]], caller: str, fix: str) -> List[Tuple[str, Point]]:
    seen: Dict[str, Point] = {}
    for name, point in points:
        if name in seen:
            raise VersionValueError(f"{caller}: points {seen[name]!r} and {point!r} both get the name {name!r}; {fix}")
        seen[name] = point
    return points


# --- searches that learn -----------------------------------------------------------------------------------

class Asha:
    """Asynchronous successive halving (Li et al., 2018): a version that reaches a
    rung (step ``grace``, ``grace * reduction``, ``grace * reduction**2``, ... up to
    ``max_t``) goes on only while its ``metric`` there is among the best
    ``1/reduction`` of the values the search's versions had at that rung; else it
    is stopped (status ``pruned``). The runner applies it to the per-step metrics it
    records, so it needs nothing from the script but ``log_metric(..., step=...)``."""

    def __init__(self, metric: str, grace: int = 1, reduction: float = 3, max_t: Any = None, mode: str = "min"):
        if not isinstance(metric, str) or not metric.strip("/"):
            raise VersionValueError(f"asha: metric must name a metric the versions log with a step, e.g. "
                                    f"asha('loss') or asha('test/loss'), got {metric!r}")
        if not _number(grace) or grace < 1:
            raise VersionValueError(f"asha: grace={grace!r} must be a step number >= 1 (the first rung)")
        if not _number(reduction) or reduction <= 1:
            raise VersionValueError(f"asha: reduction={reduction!r} must be a number > 1 (3 keeps the best third)")
        if max_t is not None and (not _number(max_t) or max_t < grace):
            raise VersionValueError(f"asha: max_t={max_t!r} must be a step number >= grace ({grace!r}), or None")
        if mode not in ("min", "max"):
            raise VersionValueError(f"asha: mode={mode!r} must be 'min' (lower is better, a loss) or 'max' "
                                    f"(higher is better, an accuracy)")
        self.metric, self.grace, self.reduction, self.max_t, self.mode = metric, grace, reduction, max_t, mode

    def to_json(self) -> Dict[str, Any]:
        return {"kind": "asha", "metric": self.metric, "grace": self.grace, "reduction": self.reduction,
                "max_t": self.max_t, "mode": self.mode}

    def __repr__(self) -> str:
        return (f"asha({self.metric!r}, grace={self.grace!r}, reduction={self.reduction!r}, max_t={self.max_t!r}, "
                f"mode={self.mode!r})")


def asha(metric: str, grace: int = 1, reduction: float = 3, max_t: Any = None, mode: str = "min") -> Asha:
    """An ASHA stopper for ``Versions.add_search(..., stopper=asha(...))`` (see ``Asha``)."""
    return Asha(metric, grace, reduction, max_t, mode)


class Search:
    """A search ``Versions.add_search`` declared: checked here, run by the runner."""

    def __init__(self, propose: Any, budget: Any, parallel: Any, name: Any, common: Dict[str, Any], stopper: Any):
        if not callable(propose):
            raise VersionValueError(f"add_search: propose must be a function propose(history) -> params or None, "
                                    f"got {propose!r}")
        for arg, value in (("budget", budget), ("parallel", parallel)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise VersionValueError(f"add_search: {arg} must be a whole number >= 1, got {value!r}")
        if not isinstance(name, str) or not valid_name(name + "-" + "0" * HASH_LEN) or "-" in name:
            raise VersionValueError(f"add_search: name {name!r} cannot start a version name; use letters, digits, "
                                    f"'_' or '.' without '-', e.g. name='lr_search'")
        if stopper is not None and not isinstance(stopper, Asha) and not callable(stopper):
            raise VersionValueError(f"add_search: stopper must be mlpipeline.sweeps.asha(...) or a function "
                                    f"stop(version, step, history) -> bool, got {stopper!r}")
        self.propose, self.budget, self.parallel, self.name = propose, budget, parallel, name
        self.common, self.stopper = common, stopper

    def describe(self) -> Dict[str, Any]:
        """What the runner needs to know without importing the script."""
        stopper: Any = None
        if isinstance(self.stopper, Asha):
            stopper = self.stopper.to_json()
        elif self.stopper is not None:
            stopper = {"kind": "function", "name": getattr(self.stopper, "__name__", type(self.stopper).__name__)}
        return {"name": self.name, "budget": self.budget, "parallel": self.parallel, "stopper": stopper}


def search_point_hash(point: Mapping[str, Any]) -> str:
    """The hash that names a search's point (``<search>-<hash>``): integral floats count as ints."""
    return point_hash(canonical(point))


def point_version(search: str, point_id: str) -> str:
    """The version name of a search's point: ``<search>-<point id>``."""
    return f"{search}-{point_id}"


def point_of(version: str) -> str:
    """The point id in a search point's version name (for runs read back from the ledger: a
    point carries its id everywhere else)."""
    return version.rsplit("-", 1)[-1]


def is_point_name(search: str, version: str) -> bool:
    """Is ``version`` named like a point of search ``search`` (``<search>-<8 hex>``)?"""
    rest = version[len(search) + 1:]
    return version.startswith(search + "-") and len(rest) == HASH_LEN and all(c in "0123456789abcdef" for c in rest)


def canonical(value: Any) -> Any:
    """``value`` with integral floats as ints: ``{"x": 1}`` and ``{"x": 1.0}`` are one point (one name)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def check_point(point: Any, search: Search) -> Point:
    """A proposal checked: a dict of plain JSON values that names no reserved or shared key."""
    if not isinstance(point, dict):
        raise VersionValueError(f"propose returned {type(point).__name__} {point!r:.80}; return a dict of parameters "
                                f"(e.g. {{'lr': 0.01}}), or None to end the search")
    for key, value in point.items():
        if not isinstance(key, str):
            raise VersionValueError(f"propose returned a parameter named {key!r}; parameter names are strings")
        if key in ("name", "custom_paramters", "model_dir_suffix", "order"):
            raise VersionValueError(f"propose returned {key!r}, which a search sets itself; leave it out")
        if key in search.common:
            raise VersionValueError(f"propose returned {key!r}, which is in the search's common=; keep it in one "
                                    f"of them")
        if plain_param(value) != value or (isinstance(value, float) and not math.isfinite(value)):
            raise VersionValueError(f"propose returned {key}={value!r:.80}, not plain data; return numbers, strings, "
                                    f"booleans, None or lists and dicts of them (e.g. float(x) for a numpy number)")
    return {key: plain_param(value) for key, value in point.items()}  # numpy numbers as Python's


def metric_value(metrics: Mapping[str, Any], metric: str) -> Any:
    """``metric`` from a history item's ``metrics``: ``"split/name"`` as written, or a bare
    name from the test split first, then any other; None when the version has none."""
    if metric in metrics:
        return metrics[metric]
    for key in [f"test/{metric}"] + sorted(k for k in metrics if k.endswith("/" + metric)):
        if key in metrics:
            return metrics[key]
    return None
