"""2.x's ``DatasetBasicABC``: the base of the datasets a ``DatasetFactory`` makes (imports torch)."""
from typing import Any

import torch.utils.data

__all__ = ["DatasetBasicABC"]


class DatasetBasicABC(torch.utils.data.Dataset):
    """The base dataset class: ``current_data``, ``transform`` and ``mode`` (an ``ExecutionModeKeys``) are set
    by the ``DatasetFactory`` that makes it; ``__getitem__`` is the script's to write."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._current_data: Any = None
        self._transform: Any = None
        self._mode: Any = None

    def _set_mode(self, value: Any) -> None:
        self._mode = value

    def _get_mode(self) -> Any:
        return self._mode

    def _set_transform(self, value: Any) -> None:
        self._transform = value

    def _get_transform(self) -> Any:
        return self._transform

    def _set_current_data(self, value: Any) -> None:
        self._current_data = value

    def _get_current_data(self) -> Any:
        return self._current_data

    current_data = property(fget=_get_current_data, fset=_set_current_data,
                            doc="The data currently being used by the dataset")
    transform = property(fget=_get_transform, fset=_set_transform, doc="The transforms to be applied")
    mode = property(fget=_get_mode, fset=_set_mode, doc="The current mode of the experiment (ExecutionModeKeys)")

    def _inject_params(self, current_data: Any, mode: Any, transform: Any = None) -> None:
        self._set_current_data(current_data)
        self._set_transform(transform)
        self._set_mode(mode)

    def __len__(self) -> int:
        if self.current_data is None:
            return 0
        return len(self.current_data)

    def __getitem__(self, idx: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.__getitem__ is not implemented; define "
                                  f"__getitem__(self, idx) to return a sample of self.current_data")
