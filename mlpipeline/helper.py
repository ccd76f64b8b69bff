"""The README-era ``Model`` and ``DataLoader`` base classes model scripts subclass."""
from __future__ import annotations

import logging
import os
import shutil
import sys
from typing import Any, List, Optional

from . import _report
from .utils import ExecutionModeKeys, ModeKeys

__all__ = ["Model", "DataLoader"]


class _Summary:
    """``log`` and the summary text shared by Model and DataLoader.

    Defaults live on the class so subclasses that skip ``super().__init__``
    (common in scripts written for the original tool) still work.
    """

    summery: str = ""

    def log(self, message: Any, level: int = logging.INFO) -> None:
        _report.current().log(str(message), level)

    def add_to_summery(self, content: Any) -> None:
        self.summery = f"{self.summery}{content}\n"

    add_to_summary = add_to_summery

    @property
    def summary(self) -> str:
        return self.summery


class Model(_Summary):
    """Base class of a script's ``MODEL``; the runner calls its hooks per version.

    Order per version: ``pre_execution_hook`` → ``get_trained_step_count`` →
    ``train_model`` → ``evaluate_model`` on the train input, then the test input.
    """

    versions = None
    allow_delete_model_dir = False
    reset_steps = False
    current_version = None

    def __init__(self, versions, allow_delete_model_dir: bool = False, reset_steps: bool = False):
        self.versions = versions
        self.allow_delete_model_dir = allow_delete_model_dir
        self.reset_steps = reset_steps
        self.summery = ""
        self.current_version = None

    def pre_execution_hook(self, version, model_dir: str, exec_mode: str = ExecutionModeKeys.TEST) -> None:
        """Build the model for ``version``; ``model_dir`` is where it may keep checkpoints."""
        self.current_version = version

    def get_current_version(self):
        return self.current_version

    def get_trained_step_count(self) -> Optional[int]:
        """Steps already trained in the model dir (None: nothing to resume)."""
        return None

    def clean_model_dir(self, model_dir: str) -> None:
        """Empty ``model_dir`` (called when it last held another version and
        ``allow_delete_model_dir`` is set)."""
        if os.path.isdir(model_dir):
            for entry in os.listdir(model_dir):
                path = os.path.join(model_dir, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

    def train_model(self, input_fn, steps: int):
        raise NotImplementedError(f"{type(self).__name__}.train_model is not implemented")

    def evaluate_model(self, input_fn, steps: int):
        raise NotImplementedError(f"{type(self).__name__}.evaluate_model is not implemented")

    def log_metric(self, name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
        """Record one point of a training curve (written to the ledger as it happens)."""
        _report.current().metric(name, value, step=step, split=split)

    def copy_related_files(self, dst: str) -> List[str]:
        """Copy the model script and the modules it imported from its own folder
        into ``dst`` (relative paths are taken inside the version's model dir)."""
        script = getattr(self, "_mlp_script_path", None)
        if not script:
            raise RuntimeError("copy_related_files works while mlpipeline runs this model")
        base = getattr(self, "_mlp_model_dir", None) or os.getcwd()
        dst = dst if os.path.isabs(dst) else os.path.join(base, dst)
        os.makedirs(dst, exist_ok=True)
        folder = os.path.dirname(os.path.abspath(script))
        sources = {os.path.abspath(script)}
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path and path.endswith(".py") and os.path.dirname(os.path.abspath(path)) == folder:
                sources.add(os.path.abspath(path))
        copied = []
        for source in sorted(sources):
            shutil.copy2(source, dst)
            copied.append(source)
            self.log(f"copied {source} to {dst}")
        return copied


class DataLoader(_Summary):
    """Base class of a version's dataloader: inputs and sample counts."""

    def __init__(self, **kwargs: Any):
        self.summery = ""

    def get_train_input(self, mode: str = ModeKeys.TRAIN, **kwargs: Any):
        raise NotImplementedError(f"{type(self).__name__}.get_train_input is not implemented")

    def get_test_input(self, **kwargs: Any):
        raise NotImplementedError(f"{type(self).__name__}.get_test_input is not implemented")

    def get_train_sample_count(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.get_train_sample_count is not implemented")

    def get_test_sample_count(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.get_test_sample_count is not implemented")

    def get_dataloader_summery(self, **kwargs: Any) -> str:
        return self.summery

    get_dataloader_summary = get_dataloader_summery
