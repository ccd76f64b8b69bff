"""``mlpipeline.helper``: the ``Model`` and ``DataLoader`` base classes model scripts subclass
(the original's import path; the classes live in ``mlpipeline.script.helper``)."""
import sys

from .script.experiment import Experiment  # noqa: F401  (1.1a3.post8's name)
from .script.helper import DataLoader, Model, ModelError  # noqa: F401

__all__ = ["Model", "DataLoader", "Experiment"]

# The original kept Model and DataLoader in mlpipeline/helper/_helper.py.
sys.modules.setdefault(__name__ + "._helper", sys.modules[__name__])
