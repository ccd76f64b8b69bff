"""``mlpipeline.utils``: the original 1.x names model scripts import, kept importable (they live
in ``mlpipeline.script``)."""
import sys

from .script.metrics import Metric, MetricContainer  # noqa: F401
from .script.utils import (ExecutionModeKeys, ModeKeys, VersionLog, _collect_related_files,  # noqa: F401
                           add_script_dir_to_PATH, console_colors, copy_related_files, log, log_special_tokens,
                           set_logger, use_mlflow)
from .script.versions import Version, Versions, version_parameters  # noqa: F401
from .script.modes import ExperimentModeKeys  # noqa: F401 - post9 … 2.0a4.post8
from .script.iterate import iterator  # noqa: F401 - 2.0a4.post6 … post8
from .script.utils import is_no_log  # noqa: F401 - 2.0a3 … 2.0a4.post8

__all__ = [
    "ExecutionModeKeys", "ExperimentModeKeys", "Metric", "MetricContainer", "ModeKeys", "Version", "VersionLog",
    "Versions", "add_script_dir_to_PATH", "console_colors", "copy_related_files", "is_no_log", "iterator", "log",
    "log_special_tokens", "set_logger", "use_mlflow", "version_parameters",
]

# The original kept these names in mlpipeline/utils/_utils.py; scripts that imported them from
# there (``from mlpipeline.utils._utils import Metric``) find them here.
sys.modules.setdefault(__name__ + "._utils", sys.modules[__name__])
