"""Versions: the named hyperparameter sets a model script declares.

Both 1.x generations of the original's API live on one ``Versions`` class:

- released (``mlpipeline==1.1a3.post7``): ``Versions(learning_rate, dataloader,
  batch_size, epoc_count, model_dir_suffix, order, hooks, use_all_classes,
  classes_count, classes_offset)``, ``addV``, ``getVersion``, ``.versions``;
  a version is a dict holding every one of those keys plus ``name``.
- README-era (commit c8e2ef6): ``Versions(dataloader, batch_size, epoc_count,
  **defaults)``, ``add_version``, ``get_version``; a version is an
  attribute-access dict (nested dicts too, as EasyDict) holding the given
  parameters, ``dataloader``, ``batch_size``, ``epoc_count``, ``order`` and
  ``model_dir_suffix``; its name is answered but is not one of its keys.

From 1.1a3.post9 on (2.x too), ``filter_versions(whitelist_versions=... |
blacklist_versions=...)`` drops versions for good.

Both give versions an ``order`` (declaration index unless given); the runner
runs them by ``order``, then declaration.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import random
import string
from typing import Any, Dict, Iterable, Iterator, List, Optional

from . import report as _report
from ..core.errors import VersionValueError
from ..core.resources import KEY as RESOURCES_KEY, ResourceError, resources_of
from ..core.jsonable import plain_param


class UnknownVersionError(VersionValueError):
    """``get_version``/``getVersion`` of a name that was never added."""


class version_parameters:  # noqa: N801 - the original's name, kept importable
    """Keys every version carries (values are the dict keys of a version)."""

    NAME = "name"
    DATALOADER = "dataloader"
    BATCH_SIZE = "batch_size"
    EPOC_COUNT = "epoc_count"
    EPOCH_COUNT = EPOC_COUNT
    LEARNING_RATE = "learning_rate"
    MODEL_DIR_SUFFIX = "model_dir_suffix"
    EPOCH_COUNT_2X = "epoch_count"  # 2.0a1 ... 2.0a7.post1's key (EPOCH_COUNT stays the 1.x one)
    EXPERIMENT_DIR_SUFFIX = "experiment_dir_suffix"  # 1.1a3.post8 ... post12's spelling: dir <script>-<suffix>
    ORDER = "order"
    # released-API keys (set on every addV version)
    HOOKS = "hooks"
    CLASSES_COUNT = "classes_count"
    CLASSES_OFFSET = "classes_offset"
    USE_ALL_CLASSES = "use_all_classes"


MANDATORY = (version_parameters.DATALOADER, version_parameters.BATCH_SIZE,
             version_parameters.EPOC_COUNT)

_MISSING = object()


def dir_suffix(params: Any, version: str) -> str:
    """What follows the script's stem in a version's model dir: ``model_dir_suffix`` as given,
    ``-`` and ``experiment_dir_suffix`` (as 1.1a3.post8 ... post12 joined it), else ``-<version>``."""
    experiment = params.get(version_parameters.EXPERIMENT_DIR_SUFFIX)
    if experiment is not None:
        return f"-{experiment}"
    return params.get(version_parameters.MODEL_DIR_SUFFIX) or f"-{version}"


class AttrDict(dict):
    """A dict whose items are also attributes; nested plain dicts (and dicts in
    lists/tuples) become AttrDicts when set, as EasyDict does."""

    def __init__(self, data: Any = None, **kwargs: Any):
        super().__init__()
        items = dict(data) if data is not None else {}
        items.update(kwargs)
        for key, value in items.items():
            self[key] = value

    @staticmethod
    def _convert(value: Any) -> Any:
        if type(value) in (list, tuple):
            return type(value)(AttrDict(x) if isinstance(x, dict) else x for x in value)
        if type(value) is dict:
            return AttrDict(value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._convert(value))

    def update(self, e: Any = None, **f: Any) -> None:  # type: ignore[override]
        items = dict(e) if e else {}
        items.update(f)
        for key, value in items.items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no attribute {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None


class Version(dict):
    """One version: a dict of its parameters that also allows attribute access.

    Its name is ``version['name']`` (a key in released-API versions; answered
    without being a key in README-era ones)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_mlp_name", dict.get(self, version_parameters.NAME))

    def __getitem__(self, key: Any) -> Any:
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            if key == version_parameters.NAME and self._mlp_name is not None:
                return self._mlp_name
            raise

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") or key == "_mlp_name":
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"version {self.get(version_parameters.NAME)!r} has no parameter {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __deepcopy__(self, memo: dict) -> Version:
        # The dataloader is shared on purpose (it may hold a whole dataset).
        clone = type(self)()
        for key, value in self.items():
            dict.__setitem__(clone, key, value if key == version_parameters.DATALOADER else copy.deepcopy(value, memo))
        object.__setattr__(clone, "_mlp_name", self._mlp_name)
        return clone

    def __reduce__(self):
        return (_rebuild, (type(self), dict(self), self._mlp_name))


def _rebuild(cls, items, name):
    version = cls()
    dict.update(version, items)
    object.__setattr__(version, "_mlp_name", name)
    return version


class EasyVersion(Version, AttrDict):
    """A README-era version: nested dicts become attribute dicts, as the original's EasyDict."""

    __setitem__ = AttrDict.__setitem__
    update = AttrDict.update
    setdefault = AttrDict.setdefault


class DataLoaderCallableWrapper:
    """A 2.x version's dataloader, built on first use: ``DataLoaderCallableWrapper(cls, *args, **kwargs)()``
    returns the one ``cls(*args, **kwargs)``. The runner uses it as the dataloader itself (its attributes
    are the built one's), so a version's process builds only its own."""

    _mlp_dataloader = True  # Versions(...) takes it for a dataloader without building it

    def __init__(self, dataloader_class: Any, *args: Any, **kwargs: Any):
        self.dataloader_class = dataloader_class
        self.args = args
        self.kwargs = kwargs
        self._dataloader: Any = None

    def __call__(self) -> Any:
        if self._dataloader is None:
            self._dataloader = self.dataloader_class(*self.args, **self.kwargs)
        return self._dataloader

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataloader_class", "args", "kwargs", "_dataloader"):
            raise AttributeError(name)
        return getattr(self(), name)

    def __repr__(self) -> str:
        return f"DataLoaderCallableWrapper({getattr(self.dataloader_class, '__name__', self.dataloader_class)})"


def built_when_used(loader: Any) -> Any:
    """A dataloader given as a class or a function (2.0a1 … 2.0a7.post1 called a version's dataloader to build
    it: ``Versions(MyData, ...)``, ``dataloader=lambda: MyData()``), wrapped as a ``DataLoaderCallableWrapper``:
    built once, when first used. A dataloader object and a wrapper stay as they are."""
    if loader is None or getattr(type(loader), "_mlp_dataloader", False):
        return loader
    if isinstance(loader, type) or (callable(loader) and not hasattr(loader, "get_train_input")):
        return DataLoaderCallableWrapper(loader)
    return loader


def _looks_like_dataloader(obj: Any) -> bool:
    if getattr(type(obj), "_mlp_dataloader", False):  # a 2.x DataLoaderCallableWrapper: not built to ask
        return True
    return hasattr(obj, "get_train_input") and hasattr(obj, "get_train_sample_count")


_RELEASED_ARGS = ("learning_rate", "dataloader", "batch_size", "epoc_count", "model_dir_suffix", "order",
                  "hooks", "use_all_classes", "classes_count", "classes_offset")


_RELEASED_ONLY = ("hooks", "use_all_classes", "classes_count", "classes_offset")


def _released_form(args: tuple, kwargs: dict) -> bool:
    """``Versions(learning_rate, dataloader, ...)`` (released) rather than ``Versions(dataloader, ...)``."""
    if not args or _looks_like_dataloader(args[0]):
        return False
    if len(args) > 3 or "dataloader" in kwargs or any(k in kwargs for k in _RELEASED_ONLY):
        return True
    if len(args) < 2:
        return False
    number = isinstance(args[0], (int, float)) and not isinstance(args[0], bool)
    return _looks_like_dataloader(args[1]) or (number and not isinstance(args[1], (int, float)))


class Versions:
    """The versions of one model script, with defaults shared by all of them."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._released_api = _released_form(args, kwargs)  # sweeps add addV-shaped versions to these
        if self._released_api:
            if len(args) > len(_RELEASED_ARGS):
                raise VersionValueError(f"Versions() takes at most {len(_RELEASED_ARGS)} positional arguments "
                                   f"({', '.join(_RELEASED_ARGS)}), got {len(args)}")
            given = dict(zip(_RELEASED_ARGS, args))
            for key in kwargs:
                if key in given:
                    raise VersionValueError(f"Versions() got {key!r} both by position and by name; pass it once")
                if key not in _RELEASED_ARGS:
                    raise VersionValueError(f"Versions(learning_rate, dataloader, ...) has no parameter {key!r} "
                                       f"(parameters: {', '.join(_RELEASED_ARGS)}); use add_version(..., "
                                       f"{key}=...) or addV(..., custom_paramters={{{key!r}: ...}})")
            given.update(kwargs)
            extra = {k: v for k, v in given.items()
                     if k not in MANDATORY and v is not None}
        else:
            names = ("dataloader", "batch_size", "epoc_count")
            if len(args) > 3:
                raise VersionValueError(f"Versions(dataloader, batch_size, epoc_count, **defaults) takes 3 positional "
                                   f"arguments, got {len(args)}; pass the rest by name")
            given = dict(zip(names, args))
            for key in kwargs:
                if key in given:
                    raise VersionValueError(f"Versions() got {key!r} both by position and by name; pass it once")
            given.update(kwargs)
            extra = {k: v for k, v in given.items() if k not in MANDATORY}
        if given.get("dataloader") is not None:
            given["dataloader"] = built_when_used(given["dataloader"])
        # released-API defaults (addV): each of its keys, None when not given
        self.versions_defaults: Dict[str, Any] = {key: given.get(key) for key in _RELEASED_ARGS}
        # README-era defaults (add_version): the three mandatory ones plus any others given
        self._default_values = AttrDict(dataloader=given.get("dataloader"), batch_size=given.get("batch_size"),
                                        epoc_count=given.get("epoc_count"), **extra)
        self._versions: Dict[str, Version] = {}
        self._order_index = 0
        self._searches: Dict[str, Any] = {}  # name -> sweeps.Search, in the order they were added

    # -- both generations -------------------------------------------------------------------------

    @property
    def versions(self) -> Dict[str, Version]:
        """name -> version, in the order names were first added (the released API's attribute)."""
        return self._versions

    @versions.setter
    def versions(self, value: Dict[str, Version]) -> None:
        self._versions = value

    @property
    def order_index(self) -> int:
        """The order the next version added without one gets."""
        return self._order_index

    @order_index.setter
    def order_index(self, value: int) -> None:
        self._order_index = value

    def _next_order(self) -> int:
        order = self._order_index
        self._order_index += 1
        return order

    def _store(self, name: Any, version: Version) -> Version:
        if version.get(RESOURCES_KEY) is not None:
            try:
                resources_of(version[RESOURCES_KEY])
            except ResourceError as exc:
                raise VersionValueError(f"version {name!r}: {exc}") from None
        if name in self._versions:
            _report.current().log(f"Versions: a second version named {name!r} replaces the first one; give each "
                                  f"version its own name to keep both", logging.WARNING)
        self._versions[name] = version
        return version

    # -- released API (1.1a3.post7) ---------------------------------------------------------------

    def addV(self, name: Any, dataloader: Any = None, batch_size: Any = None, epoc_count: Any = None,  # noqa: N802
             learning_rate: Any = None, model_dir_suffix: Any = None, order: Any = None,
             custom_paramters: Optional[dict] = None, hooks: Any = None, use_all_classes: Any = None,
             classes_count: Any = None, classes_offset: Any = None) -> Version:
        """Add a version (released API): parameters left None take the Versions defaults."""
        d = self.versions_defaults
        p = version_parameters

        def pick(value: Any, key: str) -> Any:
            return d[key] if value is None else value

        version = Version()
        dict.update(version, {
            p.NAME: name,
            p.DATALOADER: pick(built_when_used(dataloader), p.DATALOADER),
            p.BATCH_SIZE: pick(batch_size, p.BATCH_SIZE),
            p.EPOC_COUNT: pick(epoc_count, p.EPOC_COUNT),
            p.LEARNING_RATE: pick(learning_rate, p.LEARNING_RATE),
            p.MODEL_DIR_SUFFIX: pick(model_dir_suffix, p.MODEL_DIR_SUFFIX),
            p.HOOKS: pick(hooks, p.HOOKS),
            p.USE_ALL_CLASSES: pick(use_all_classes, p.USE_ALL_CLASSES),
            p.CLASSES_COUNT: pick(classes_count, p.CLASSES_COUNT),
            p.CLASSES_OFFSET: pick(classes_offset, p.CLASSES_OFFSET),
        })
        order = pick(order, p.ORDER)
        dict.__setitem__(version, p.ORDER, self._next_order() if order is None else order)
        dict.update(version, custom_paramters or {})
        object.__setattr__(version, "_mlp_name", name)
        return self._store(name, version)

    def getVersion(self, version_name: Any) -> Version:  # noqa: N802
        return self.get_version(version_name)

    # -- README-era API (c8e2ef6) -----------------------------------------------------------------

    def add_version(self, name: Any, dataloader: Any = None, batch_size: Any = None, epoc_count: Any = None,
                    model_dir_suffix: Any = None, order: Any = None, custom_paramters: Optional[dict] = None,
                    **kwargs: Any) -> Version:
        """Add a version (README-era API). ``dataloader``/``batch_size``/``epoc_count`` left None
        take the Versions defaults, and so do the other defaults given to ``Versions(...)``."""
        if not isinstance(name, str) or not name.strip():
            raise VersionValueError(f"add_version: the version name must be a non-empty string, got {name!r}")
        version = EasyVersion()
        for key, value in self._default_values.items():
            if key not in MANDATORY:
                version[key] = value
        version.update(kwargs)
        version.update(custom_paramters or {})
        defaults = self._default_values
        declared, shared = version.get(RESOURCES_KEY), defaults.get(RESOURCES_KEY)
        if isinstance(declared, dict) and isinstance(shared, dict) and declared is not shared:
            version[RESOURCES_KEY] = {**shared, **declared}  # a version's own fields over the Versions defaults
        version.dataloader = defaults.dataloader if dataloader is None else built_when_used(dataloader)
        version.batch_size = defaults.batch_size if batch_size is None else batch_size
        version.epoc_count = defaults.epoc_count if epoc_count is None else epoc_count
        version.order = self._next_order() if order is None else order
        version.model_dir_suffix = model_dir_suffix
        object.__setattr__(version, "_mlp_name", name)
        return self._store(name, version)

    def get_version(self, version_name: Any) -> Version:
        try:
            return self._versions[version_name]
        except (KeyError, TypeError):
            raise UnknownVersionError(f"Version name {version_name!r} not found (versions: "
                                      f"{', '.join(map(str, self._versions)) or 'none'}); "
                                      f"add it with add_version first") from None

    def rangeOnParameters(self, names: Optional[List[str]] = None,  # noqa: N802
                          combining_parameters: Optional[List[str]] = None,
                          parameters: Optional[Dict[str, Any]] = None) -> None:
        """One version per combination of the values listed for ``combining_parameters``;
        the other entries of ``parameters`` are set on every one of them."""
        combining_parameters = list(combining_parameters or [])
        parameters = dict(parameters or {})
        for key in combining_parameters:
            if key not in parameters:
                raise VersionValueError(f"rangeOnParameters: {key!r} is in combining_parameters but has no values "
                                   f"in parameters; add parameters[{key!r}] = [values]")
        values = [parameters[k] if isinstance(parameters[k], list) else [parameters[k]] for k in combining_parameters]
        combinations = list(itertools.product(*values))
        if names is None:
            names = ["".join(random.SystemRandom().choice(string.ascii_uppercase + string.digits) for _ in range(5))
                     for _ in combinations]
        elif len(names) != len(combinations):
            raise VersionValueError(f"rangeOnParameters: {len(names)} names for {len(combinations)} combinations; "
                               f"pass one name per combination")
        for name, combination in zip(names, combinations):
            version = self.add_version(name)
            fixed = {k: v for k, v in parameters.items() if k not in combining_parameters}
            version.update(fixed)
            version.update(dict(zip(combining_parameters, combination)))

    # -- sweeps (mlpipeline.sweeps) ----------------------------------------------------------------

    def add_grid(self, name_template: str, common: Optional[Dict[str, Any]] = None,
                 **param_lists: Any) -> List[str]:
        """One version per combination of the listed values, in ``itertools.product`` order
        (the order the parameters are given). Each is named by ``name_template`` formatted
        with its values (``"lr{lr}_bs{batch_size}"`` gives ``lr0.1_bs32``); a template that
        leaves a swept parameter out, or a value that cannot be in a name, adds ``-`` and 8
        hex digits of the point's hash. ``common`` holds parameters every version shares.
        Returns the names added."""
        from .space import grid_points

        common = self._sweep_common("add_grid", common, param_lists)
        return self._add_points("add_grid", grid_points(name_template, param_lists, common), common)

    def add_random(self, n: int, seed: int, common: Optional[Dict[str, Any]] = None, prefix: str = "r",
                   **distributions: Any) -> List[str]:
        """``n`` versions drawn from ``distributions`` (``uniform``, ``loguniform``, ``randint``,
        ``choice`` from ``mlpipeline.sweeps``) with ``random.Random(seed)``, each named
        ``<prefix>-<8 hex of the point's hash>``: the same seed gives the same versions, and a
        larger ``n`` keeps the first ones. ``common`` holds parameters every version shares.
        Returns the names added."""
        from .space import random_points

        common = self._sweep_common("add_random", common, distributions)
        return self._add_points("add_random", random_points(n, seed, distributions, prefix), common)

    def _sweep_common(self, caller: str, common: Optional[Dict[str, Any]], swept: Dict[str, Any]) -> Dict[str, Any]:
        if common is None:
            return {}
        if not isinstance(common, dict):
            raise VersionValueError(f"{caller}: common must be a dict of the parameters every version shares, "
                                    f"got {common!r}; e.g. common={{'epoc_count': 10}}")
        for key in (version_parameters.NAME, "custom_paramters"):
            if key in common or key in swept:
                raise VersionValueError(f"{caller}: {key!r} cannot be swept or shared; versions are named by the "
                                        f"sweep and take their parameters directly (e.g. layers=[2, 4])")
        both = sorted(set(common) & set(swept))
        if both:
            raise VersionValueError(f"{caller}: {both[0]!r} is both swept and in common=; keep it in one of them")
        if common.get(version_parameters.MODEL_DIR_SUFFIX) is not None:
            raise VersionValueError(f"{caller}: common model_dir_suffix would give every version one model dir; "
                                    f"leave it out (each version gets <script>-<name>)")
        return dict(common)

    def _add_points(self, caller: str, points: List[Any], common: Dict[str, Any]) -> List[str]:
        for name, _ in points:
            if name in self._versions:
                raise VersionValueError(f"{caller}: a version named {name!r} is already declared; give this sweep "
                                        f"other names (another name_template, or prefix= for add_random)")
        for name, point in points:
            params = {**common, **point}
            if self._released_api:
                named = {k: params.pop(k) for k in list(params) if k in _RELEASED_ARGS}
                self.addV(name, custom_paramters=params, **named)
            else:
                self.add_version(name, **params)
        return [name for name, _ in points]

    def add_search(self, propose: Any, budget: int, parallel: int = 1, name: str = "s",
                   common: Optional[Dict[str, Any]] = None, stopper: Any = None) -> str:
        """A search: the runner asks ``propose(history)`` for the next point (a dict of
        parameters, or None when the search has no more to try) as results arrive, up to
        ``parallel`` versions at once and ``budget`` points in all. ``history`` is the list
        of the search's finished versions, read from the ledger, so a search survives a
        crash and goes on under ``-u``. Each point runs as a version named
        ``<name>-<8 hex of the point's hash>``; a point already tried is refused and
        ``propose`` asked again. ``stopper`` ends hopeless versions early (status
        ``pruned``): ``mlpipeline.sweeps.asha(...)`` or ``stop(version, step, history) -> bool``.
        Returns the search's name."""
        from .space import Search

        searches = self.__dict__.setdefault("_searches", {})
        common = self._sweep_common("add_search", common, {})
        search = Search(propose, budget, parallel, name, common, stopper)
        if name in searches or name in self._versions:
            raise VersionValueError(f"add_search: the name {name!r} is taken by another "
                                    f"{'search' if name in searches else 'version'}; pass name='...' to tell them apart")
        searches[name] = search
        return name

    @property
    def searches(self) -> Dict[str, Any]:
        """name -> the searches ``add_search`` declared."""
        return self.__dict__.get("_searches", {})

    def search_version(self, name: str, point: Dict[str, Any]) -> Version:
        """The version a search's point runs as: the defaults, the search's ``common``
        and the point, named ``name`` (not declared: the script's versions stay as they are)."""
        search = self.searches[name.rsplit("-", 1)[0]]
        saved = (self._versions, self._order_index)
        self._versions = {}
        try:
            self._add_points("add_search", [(name, dict(point))], search.common)
            return self._versions[name]
        finally:
            self._versions, self._order_index = saved

    # -- what the runner uses ---------------------------------------------------------------------

    def get_versions(self) -> List[Version]:
        """All versions in run order: ``order`` ascending, then declaration order."""
        declared = list(self._versions.values())

        def key(item):
            index, version = item
            order = version.get(version_parameters.ORDER)
            return (order is None, order if order is not None else 0, index)

        return [v for _, v in sorted(enumerate(declared), key=key)]

    def get_version_names(self) -> List[str]:
        """The versions' names, in the order they were first added (post9 … 2.x)."""
        return list(self._versions)

    def filter_versions(self, *, blacklist_versions: Optional[Iterable[str]] = None,
                        whitelist_versions: Optional[Iterable[str]] = None) -> None:
        """Keep only ``whitelist_versions`` (in that order), or drop ``blacklist_versions``; one of the two.
        The versions left out are gone for good, as in 1.1a3.post9 … 2.0a7.post1 (a version added later
        is kept)."""
        if blacklist_versions is not None and whitelist_versions is not None:
            raise VersionValueError("filter_versions: pass whitelist_versions or blacklist_versions, not both")
        if blacklist_versions is None and whitelist_versions is None:
            return
        if blacklist_versions is not None:
            dropped = set(blacklist_versions)
            kept = {name: v for name, v in self._versions.items() if name not in dropped}
        else:
            kept = {name: self.get_version(name) for name in whitelist_versions or ()}
        _report.current().log(f"Versions before filter: {self.get_version_names()}")
        self._versions = kept
        _report.current().log(f"Versions after filter: {self.get_version_names()}")

    def __iter__(self) -> Iterator[Version]:
        return iter(self.get_versions())

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, name: object) -> bool:
        return name in self._versions


def ordered(versions: Any) -> List[Version]:
    """A script's versions in run order, whatever its ``get_versions`` returns to the script (2.x's gives
    ``(name, version)`` pairs)."""
    if isinstance(versions, Versions):
        return Versions.get_versions(versions)
    return versions.get_versions()


def version_params(version: Version) -> Dict[str, Any]:
    """A version's parameters as plain JSON data (what the ledger stores and ``-u``
    compares): its name and every key but ``order``, which only schedules it."""
    params = {version_parameters.NAME: plain_param(version.get(version_parameters.NAME))}
    params.update({str(k): plain_param(v) for k, v in version.items() if k != version_parameters.ORDER})
    return params


def params_digest(params: Dict[str, Any]) -> str:
    """What ``-u`` compares of a version's parameters: all of them but the resources it asks for (a version
    given a GPU more or less is not another version)."""
    if RESOURCES_KEY in params:
        params = {k: v for k, v in params.items() if k != RESOURCES_KEY}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
