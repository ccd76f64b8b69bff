"""The README-era ``mlpipeline.utils`` names, kept importable for model scripts."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from . import _report
from ._metrics import Metric, MetricContainer
from ._versions import Version, Versions, version_parameters

__all__ = [
    "ExecutionModeKeys", "ModeKeys", "Metric", "MetricContainer", "Version", "Versions",
    "add_script_dir_to_PATH", "log", "version_parameters",
]


class ExecutionModeKeys:
    """How the runner is running a version: ``TEST`` (one step, temp dir) or ``TRAIN``."""

    TRAIN = "train"
    TEST = "test"


class ModeKeys:
    """What an input is for; passed as ``mode`` to ``DataLoader.get_train_input``."""

    TRAIN = "Train"
    TEST = "Test"
    PREDICT = "Predict"
    EVAL = "Evaluate"


def log(message: str, level: int = logging.INFO, log_to_file: bool = True, agent: Optional[str] = None) -> None:
    """Log a line from a model script: shown on the terminal and, in execution
    mode, written to ``outputs/log-<host>``."""
    text = f"{agent}: {message}" if agent else str(message)
    _report.current().log(text, level)


def add_script_dir_to_PATH(path: Optional[str] = None) -> str:  # noqa: N802 - README-era name
    """Put ``path`` (default: the calling script's folder) first on ``sys.path``."""
    if path is None:
        caller = sys._getframe(1).f_code.co_filename
        path = os.path.dirname(os.path.abspath(caller))
    path = os.path.abspath(path)
    if path not in sys.path:
        sys.path.insert(0, path)
    return path
