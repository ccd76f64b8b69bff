"""``mlpipeline.entities``: the names 2.0a1 … 2.0a7.post1 scripts import from there (they live in
``mlpipeline.script``)."""
from .script.modes import ExecutionModeKeys, ExperimentModeKeys  # noqa: F401
from .script.utils import console_colors  # noqa: F401
from .script.versions2x import version_parameters  # noqa: F401

__all__ = ["ExperimentModeKeys", "ExecutionModeKeys", "console_colors", "version_parameters"]
