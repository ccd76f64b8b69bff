"""``mlpipeline.pytorch``: 2.0a1 … 2.0a7.post1's helpers for PyTorch scripts, under the original's names.

``BaseTorchExperimentABC`` (checkpoints in the experiment dir), ``BaseTorchDataLoader``, ``DatasetFactory`` and
``DatasetBasicABC``. Importing it imports no torch: a helper imports torch when it needs it, and
``DatasetBasicABC`` (a ``torch.utils.data.Dataset``) when it is first named."""
from typing import Any

from ._dataloader import BaseTorchDataLoader, DatasetFactory
from ._experiment import BaseTorchExperimentABC

__all__ = ["BaseTorchDataLoader", "BaseTorchExperimentABC", "DatasetFactory", "DatasetBasicABC"]


def __getattr__(name: str) -> Any:
    if name == "DatasetBasicABC":
        from ._dataset import DatasetBasicABC

        return DatasetBasicABC
    raise AttributeError(f"module 'mlpipeline.pytorch' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
