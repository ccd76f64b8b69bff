"""``mlpipeline.base``: the ``ExperimentABC`` and ``DataLoaderABC`` base classes of the original's
1.1a3.post9 … post12 and 2.0a1 … 2.0a7.post1 scripts, and 2.x's ``DataLoaderCallableWrapper`` (the classes
live in ``mlpipeline.script.experiment``)."""
import sys

from .script.experiment import DataLoaderABC, DataLoaderCallableWrapper, ExperimentABC  # noqa: F401

__all__ = ["ExperimentABC", "DataLoaderABC", "DataLoaderCallableWrapper"]

# The original kept them in mlpipeline/base/_base.py.
sys.modules.setdefault(__name__ + "._base", sys.modules[__name__])
sys.modules.setdefault(__name__ + "._utils", sys.modules[__name__])  # 2.x: DataLoaderCallableWrapper
