"""The ``Versions`` of 2.0a1 … 2.0a7.post1 (``from mlpipeline import Versions``): the README-era one with
2.x's spelling and semantics — versions carry ``name``, ``epoch_count`` and ``experiment_dir_suffix``;
``filter_versions`` drops versions for good; ``get_versions`` returns ``(name, version)`` pairs;
``add_versions`` takes another ``Versions``' versions."""
from __future__ import annotations

from typing import Any, Iterable, List, Optional, Tuple

from .versions import EasyVersion, Version, VersionValueError, version_parameters as _version_parameters
from .versions import Versions as _Versions
from .utils import log

__all__ = ["Versions", "version_parameters"]


class version_parameters(_version_parameters):  # noqa: N801 - the original's name
    """2.x's keys: ``EPOCH_COUNT`` is ``'epoch_count'`` there."""

    EPOCH_COUNT = _version_parameters.EPOCH_COUNT_2X


class Versions(_Versions):
    """A 2.x script's versions: ``Versions(dataloader, batch_size, epoch_count, **defaults)``."""

    def __init__(self, dataloader: Any = None, batch_size: Any = None, epoch_count: Any = None, **kwargs: Any):
        super().__init__(dataloader=dataloader, batch_size=batch_size, epoc_count=epoch_count, **kwargs)

    def add_version(self, name: Any, dataloader: Any = None, batch_size: Any = None,  # type: ignore[override]
                    epoch_count: Any = None, experiment_dir_suffix: Any = None, order: Any = None,
                    custom_paramters: Optional[dict] = None, **kwargs: Any) -> Version:
        """Add a version, its keys in 2.x's order: the parameters given, ``name``, ``dataloader``,
        ``batch_size``, ``epoch_count``, ``order``, ``experiment_dir_suffix``."""
        made = super().add_version(name, dataloader, batch_size, epoch_count, None, order, custom_paramters, **kwargs)
        version = EasyVersion()
        for key, value in made.items():
            if key not in (_version_parameters.EPOC_COUNT, _version_parameters.MODEL_DIR_SUFFIX,
                           _version_parameters.ORDER, _version_parameters.DATALOADER,
                           _version_parameters.BATCH_SIZE):
                version[key] = value
        version[_version_parameters.NAME] = name
        version[_version_parameters.DATALOADER] = made[_version_parameters.DATALOADER]
        version[_version_parameters.BATCH_SIZE] = made[_version_parameters.BATCH_SIZE]
        version[_version_parameters.EPOCH_COUNT_2X] = made[_version_parameters.EPOC_COUNT]
        version[_version_parameters.ORDER] = made[_version_parameters.ORDER]
        version[_version_parameters.EXPERIMENT_DIR_SUFFIX] = experiment_dir_suffix
        object.__setattr__(version, "_mlp_name", name)
        self._versions[name] = version
        return version

    def add_versions(self, versions: Any) -> None:
        """Take every version of another ``Versions`` (same names replace these)."""
        if not isinstance(versions, _Versions):
            log("Passed value is not a version object", 30)
            return
        self._versions.update(versions._versions)

    def get_version_names(self) -> List[str]:
        return list(self._versions)

    def get_versions(self) -> List[Tuple[str, Version]]:  # type: ignore[override]
        """``(name, version)`` pairs in run order, as 2.x returned them."""
        return [(version[_version_parameters.NAME], version) for version in _Versions.get_versions(self)]

    def filter_versions(self, *, blacklist_versions: Optional[Iterable[str]] = None,  # type: ignore[override]
                        whitelist_versions: Optional[Iterable[str]] = None) -> None:
        """Keep only ``whitelist_versions`` (in that order), or drop ``blacklist_versions``; one of the two."""
        if blacklist_versions is not None and whitelist_versions is not None:
            raise VersionValueError("filter_versions: pass whitelist_versions or blacklist_versions, not both")
        if blacklist_versions is None and whitelist_versions is None:
            return
        if blacklist_versions is not None:
            kept = {name: v for name, v in self._versions.items() if name not in set(blacklist_versions)}
        else:
            kept = {name: self.get_version(name) for name in whitelist_versions or ()}
        log(f"Versions before filter: {self.get_version_names()}")
        self._versions = kept
        log(f"Versions after filter: {self.get_version_names()}")
