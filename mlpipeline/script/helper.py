"""``mlpipeline.helper``: the ``Model`` and ``DataLoader`` base classes model scripts subclass.

As the original 1.x: ``summery`` starts as None and ``add_to_summery`` appends
``"\\t\\t<text>\\n"``; ``log(message, log_to_file=False, **kwargs)`` prefixes
``Model- ``; the runner sets ``MODEL.name`` to the script's path. Hooks the
original left abstract have working defaults here (see the README).
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Optional

from . import report as _report
from ..core.errors import MLPipelineError
from .utils import ExecutionModeKeys, ModeKeys, Versions, console_colors
from .utils import copy_related_files as _copy_related_files
from .utils import log as _log

__all__ = ["Model", "DataLoader"]


class ModelError(MLPipelineError, ValueError):
    """A Model built with something other than a Versions object (a ValueError, as the original raised)."""


class _Summary:
    """``log`` and the summary text shared by Model and DataLoader.

    Defaults live on the class so subclasses that skip ``super().__init__``
    (common in scripts written for the original tool) still work.
    """

    summery: Optional[str] = None

    def log(self, message: Any, log_to_file: bool = False, **kwargs: Any) -> None:
        """Log a line from the model (terminal only unless ``log_to_file``)."""
        _log(f"{console_colors.CYAN_FG}Model- {console_colors.RESET}{message}",
             log_to_file=log_to_file, **kwargs)

    def add_to_summery(self, content: Any) -> None:
        """Add a line to the summary written to ``output-<host>`` after the version."""
        if self.summery is None:
            self.summery = ""
        self.summery += f"\t\t{content}\n"

    add_to_summary = add_to_summery

    @property
    def summary(self) -> str:
        return self.summery or ""


class Model(_Summary):
    """Base class of a script's ``MODEL``; the runner calls its hooks per version.

    Per version: ``clean_model_dir`` (fresh start with ``allow_delete_model_dir``)
    → ``pre_execution_hook`` → ``get_current_version``/``get_trained_step_count``
    → ``train_model`` (when steps are left) → ``evaluate_model`` on the train
    input, then on the test input.
    """

    versions = None
    allow_delete_model_dir = False
    reset_steps = False
    current_version = None

    def __init__(self, versions: Versions, allow_delete_model_dir: bool = False, reset_steps: bool = False):
        if not isinstance(versions, Versions):
            raise ModelError(f"{type(self).__name__}(versions=...): versions should be an instance of "
                             f"mlpipeline.utils.Versions, but received {type(versions).__name__}; "
                             f"build one with Versions(...) and add_version")
        self.versions = versions
        self.allow_delete_model_dir = allow_delete_model_dir
        self.reset_steps = reset_steps

    def pre_execution_hook(self, version, model_dir: str, exec_mode: str = ExecutionModeKeys.TEST) -> None:
        """Build the model for ``version``; ``model_dir`` is where it may keep checkpoints.
        Overrides may leave out ``exec_mode``."""
        self.current_version = version

    def get_current_version(self):
        """The version being run (what ``pre_execution_hook`` received)."""
        return self.current_version

    def get_trained_step_count(self) -> Optional[int]:
        """Steps already trained in the model dir (None: nothing to resume)."""
        return None

    def clean_model_dir(self, model_dir: str) -> None:
        """Empty ``model_dir`` (called on a version's fresh start when ``allow_delete_model_dir``)."""
        if os.path.isdir(model_dir):
            for entry in os.listdir(model_dir):
                path = os.path.join(model_dir, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    def train_model(self, input_fn, steps: int):
        raise NotImplementedError(f"{type(self).__name__}.train_model is not implemented; define "
                                  f"train_model(self, input_fn, steps) in the model script")

    def evaluate_model(self, input_fn, steps: int):
        raise NotImplementedError(f"{type(self).__name__}.evaluate_model is not implemented; define "
                                  f"evaluate_model(self, input_fn, steps) in the model script")

    def log_metric(self, name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
        """Record one point of a training curve (written to the ledger as it happens)."""
        _report.current().metric(name, value, step=step, split=split)

    def save_output(self, name: str, value: Any) -> str:
        """Keep ``value`` (a numpy array, a pandas DataFrame or Series, or plain JSON data) as this
        version's output ``name``, stored by content under ``outputs/cache/`` and indexed with the
        code, parameters and data that made it; ``mlpipeline.outputs.load(script, version, name)``
        reads it back. Returns its sha256. Test mode checks the value and stores nothing."""
        from .cached_outputs import save

        return save(self, name, value)

    def copy_related_files(self, dst_dir: str) -> None:
        """Copy the script and the modules it imported from its folder into ``dst_dir``
        (relative to the project folder, where mlpipeline runs)."""
        _copy_related_files(self, dst_dir)


class DataLoader(_Summary):
    """Base class of a version's dataloader: inputs and sample counts."""

    def __init__(self, **kwargs: Any):
        pass

    def get_train_input(self, mode: str = ModeKeys.TRAIN, **kwargs: Any):
        raise NotImplementedError(f"{type(self).__name__}.get_train_input is not implemented")

    def get_test_input(self, **kwargs: Any):
        raise NotImplementedError(f"{type(self).__name__}.get_test_input is not implemented")

    def get_train_sample_count(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.get_train_sample_count is not implemented")

    def get_test_sample_count(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.get_test_sample_count is not implemented")

    def get_dataloader_summery(self, **kwargs: Any) -> str:
        return self.summery or ""

    get_dataloader_summary = get_dataloader_summery




