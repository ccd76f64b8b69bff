"""The ``Versions`` of 2.0a1 … 2.0a7.post1 (``from mlpipeline import Versions``): the README-era one with
2.x's spelling and semantics — versions carry ``name``, ``epoch_count`` and ``experiment_dir_suffix``;
``filter_versions`` drops versions for good (the base class's, as post9 … post12's); ``get_versions`` returns
``(name, version)`` pairs; ``add_versions`` takes another ``Versions``' versions."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

from .versions import EasyVersion, Version, built_when_used, version_parameters as _version_parameters
from .versions import Versions as _Versions
from .utils import log

__all__ = ["Versions", "version_parameters"]


class version_parameters(_version_parameters):  # noqa: N801 - the original's name
    """2.x's keys: ``EPOCH_COUNT`` is ``'epoch_count'`` there."""

    EPOCH_COUNT = _version_parameters.EPOCH_COUNT_2X


class Versions(_Versions):
    """A 2.x script's versions: ``Versions(dataloader, batch_size, epoch_count, **defaults)``."""

    def __init__(self, dataloader: Any = None, batch_size: Any = None, epoch_count: Any = None, **kwargs: Any):
        super().__init__(dataloader=built_when_used(dataloader), batch_size=batch_size, epoc_count=epoch_count,
                         **kwargs)

    def add_version(self, name: Any, dataloader: Any = None, batch_size: Any = None,  # type: ignore[override]
                    epoch_count: Any = None, experiment_dir_suffix: Any = None, order: Any = None,
                    custom_paramters: Optional[dict] = None, **kwargs: Any) -> Version:
        """Add a version, its keys in 2.x's order: the parameters given, ``name``, ``dataloader``,
        ``batch_size``, ``epoch_count``, ``order``, ``experiment_dir_suffix``."""
        made = super().add_version(name, built_when_used(dataloader), batch_size, epoch_count, None, order,
                                   custom_paramters, **kwargs)
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

    def get_versions(self) -> List[Tuple[str, Version]]:  # type: ignore[override]
        """``(name, version)`` pairs in run order, as 2.x returned them."""
        return [(version[_version_parameters.NAME], version) for version in _Versions.get_versions(self)]
