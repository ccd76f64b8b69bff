"""Versions: the named hyperparameter sets a model script declares."""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Dict, Iterator, List, Optional

from .errors import VersionError


class version_parameters:  # noqa: N801 - README-era name, kept importable
    """Keys every version carries (values are the dict keys of a version)."""

    NAME = "name"
    DATALOADER = "dataloader"
    BATCH_SIZE = "batch_size"
    EPOC_COUNT = "epoc_count"
    EPOCH_COUNT = EPOC_COUNT
    LEARNING_RATE = "learning_rate"
    MODEL_DIR_SUFFIX = "model_dir_suffix"
    ORDER = "order"


MANDATORY = (version_parameters.DATALOADER, version_parameters.BATCH_SIZE,
             version_parameters.EPOC_COUNT)


class Version(dict):
    """One version: a dict of its parameters that also allows attribute access."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"version {self.get(version_parameters.NAME)!r} has no parameter {key!r}"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __deepcopy__(self, memo: dict) -> Version:
        # The dataloader is shared on purpose (it may hold a whole dataset).
        return Version({k: (v if k == version_parameters.DATALOADER else copy.deepcopy(v, memo))
                        for k, v in self.items()})

    @property
    def name(self) -> str:
        return self[version_parameters.NAME]


def _looks_like_dataloader(obj: Any) -> bool:
    return hasattr(obj, "get_train_input") and hasattr(obj, "get_train_sample_count")


class Versions:
    """The versions of one model script, with defaults shared by all of them.

    ``Versions(dataloader, batch_size, epoc_count, **defaults)``. The oldest
    README form ``Versions(learning_rate, dataloader, batch_size, epoc_count)``
    is recognised too, so scripts written for it run unmodified.
    """

    def __init__(self, dataloader: Any = None, batch_size: Any = None,
                 epoc_count: Any = None, *legacy: Any, **defaults: Any):
        if legacy or (_looks_like_dataloader(batch_size) and not _looks_like_dataloader(dataloader)):
            defaults.setdefault(version_parameters.LEARNING_RATE, dataloader)
            dataloader, batch_size, epoc_count = batch_size, epoc_count, (legacy[0] if legacy else None)
        if "epoch_count" in defaults:
            epoc_count = defaults.pop("epoch_count")
        self._defaults: Dict[str, Any] = {
            version_parameters.DATALOADER: dataloader,
            version_parameters.BATCH_SIZE: batch_size,
            version_parameters.EPOC_COUNT: epoc_count,
            **defaults,
        }
        self._versions: Dict[str, Version] = {}

    def add_version(self, name: str, dataloader: Any = None, batch_size: Any = None,
                    epoc_count: Any = None, model_dir_suffix: Optional[str] = None,
                    order: Optional[int] = None, custom_paramters: Optional[dict] = None,
                    **params: Any) -> Version:
        """Declare a version. Parameters left as None take the defaults."""
        if not isinstance(name, str) or not name.strip():
            raise VersionError(f"version name must be a non-empty string, got {name!r}")
        if name in self._versions:
            raise VersionError(f"duplicate version name {name!r}: each add_version needs its own name")
        if "epoch_count" in params:
            epoc_count = params.pop("epoch_count")
        if "custom_parameters" in params:  # the correctly spelt keyword
            custom_paramters = {**(custom_paramters or {}), **params.pop("custom_parameters")}
        version = Version(copy.copy(self._defaults))
        given = {
            version_parameters.DATALOADER: dataloader,
            version_parameters.BATCH_SIZE: batch_size,
            version_parameters.EPOC_COUNT: epoc_count,
        }
        version.update({k: v for k, v in given.items() if v is not None})
        version[version_parameters.MODEL_DIR_SUFFIX] = model_dir_suffix
        version[version_parameters.ORDER] = order
        version.update(custom_paramters or {})
        version.update(params)
        version[version_parameters.NAME] = name
        self._versions[name] = version
        return version

    def get_version(self, name: str) -> Version:
        try:
            return self._versions[name]
        except KeyError:
            raise VersionError(f"no version named {name!r} (versions: {', '.join(self._versions) or 'none'})") from None

    def get_versions(self) -> List[Version]:
        """All versions in run order: ORDER ascending, then declaration order;
        versions without an ORDER run after those with one."""
        declared = list(self._versions.values())

        def key(item):
            index, version = item
            order = version.get(version_parameters.ORDER)
            return (order is None, order if order is not None else 0, index)

        return [v for _, v in sorted(enumerate(declared), key=key)]

    def filter_versions(self, whitelist_versions: Optional[List[str]] = None,
                        blacklist_versions: Optional[List[str]] = None) -> List[Version]:
        versions = self.get_versions()
        if whitelist_versions:
            versions = [v for v in versions if v.name in whitelist_versions]
        if blacklist_versions:
            versions = [v for v in versions if v.name not in blacklist_versions]
        return versions

    def __iter__(self) -> Iterator[Version]:
        return iter(self.get_versions())

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, name: object) -> bool:
        return name in self._versions


def _plain(value: Any) -> Any:
    """A JSON-able stand-in for a parameter value (objects become their class name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return _plain(value.item())
        except Exception:  # noqa: BLE001 - fall through to the class name
            pass
    return f"<{type(value).__qualname__}>"


def version_params(version: Version) -> Dict[str, Any]:
    """A version's parameters as plain JSON data (what the ledger stores)."""
    return {str(k): _plain(v) for k, v in version.items()}


def params_digest(params: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
