"""``mlpipeline.base``: the ``ExperimentABC`` and ``DataLoaderABC`` base classes of the original's
1.1a3.post9 … post12 scripts (the classes live in ``mlpipeline.script.experiment``)."""
import sys

from .script.experiment import DataLoaderABC, ExperimentABC  # noqa: F401

__all__ = ["ExperimentABC", "DataLoaderABC"]

# The original kept them in mlpipeline/base/_base.py.
sys.modules.setdefault(__name__ + "._base", sys.modules[__name__])
