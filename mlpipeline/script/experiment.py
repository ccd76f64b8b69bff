"""The original's Experiment generations, over ``Model``: the runner drives them through the same hooks.

- 1.1a3.post8 (``mlpipeline.helper.Experiment``): ``Model`` renamed — ``train_loop``/``evaluate_loop``
  for ``train_model``/``evaluate_model``, ``clean_experiment_dir``, ``allow_delete_experiment_dir``, an
  ``EXPERIMENT`` global, ``log`` prefixed ``Exp- ``.
- 1.1a3.post9 … post12 (``mlpipeline.base.ExperimentABC``/``DataLoaderABC``): ``setup_model(version,
  experiment_dir)`` before ``pre_execution_hook``, the loops take the version as a third argument, no
  ``get_current_version`` to write, ``export_model(version)``, ``log(..., agent=None)``.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

from .helper import DataLoader, Model
from .utils import console_colors
from .versions import version_parameters
from .utils import log as _log

__all__ = ["Experiment", "ExperimentABC", "DataLoaderABC"]


def _accepts(function: Any, count: int) -> bool:
    """Whether ``function`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(function).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature to read: assume it can
        return True
    return True


def _respell(versions: Any) -> None:
    """Give the versions of an Experiment the key its generation's ``add_version`` gave them:
    ``experiment_dir_suffix`` (last, as there) for ``model_dir_suffix``."""
    for version in getattr(versions, "_versions", {}).values():
        if isinstance(version, dict) and version_parameters.MODEL_DIR_SUFFIX in version:
            suffix = dict.pop(version, version_parameters.EXPERIMENT_DIR_SUFFIX, None)
            given = dict.pop(version, version_parameters.MODEL_DIR_SUFFIX)
            dict.__setitem__(version, version_parameters.EXPERIMENT_DIR_SUFFIX, given if suffix is None else suffix)


class Experiment(Model):
    """Base class of a 1.1a3.post8 script's ``EXPERIMENT``."""

    allow_delete_experiment_dir = False

    def __init__(self, versions: Any, allow_delete_experiment_dir: bool = False, reset_steps: bool = False):
        super().__init__(versions, allow_delete_experiment_dir, reset_steps)
        _respell(versions)

    # The runner reads the Model spelling; the script reads and sets the Experiment one.
    @property
    def allow_delete_model_dir(self) -> bool:
        return bool(self.allow_delete_experiment_dir)

    @allow_delete_model_dir.setter
    def allow_delete_model_dir(self, value: bool) -> None:
        self.allow_delete_experiment_dir = value

    def log(self, message: Any, log_to_file: bool = False, **kwargs: Any) -> None:
        """Log a line from the experiment (terminal only unless ``log_to_file``)."""
        _log(f"{console_colors.CYAN_FG}Exp- {console_colors.RESET}{message}", log_to_file=log_to_file, **kwargs)

    def train_model(self, input_fn: Any, steps: int) -> Any:
        return self.train_loop(input_fn, steps)

    def evaluate_model(self, input_fn: Any, steps: int) -> Any:
        return self.evaluate_loop(input_fn, steps)

    def clean_model_dir(self, model_dir: str) -> None:
        self.clean_experiment_dir(model_dir)

    def clean_experiment_dir(self, experiment_dir: str) -> None:
        """Empty ``experiment_dir`` (a fresh start with ``allow_delete_experiment_dir``)."""
        Model.clean_model_dir(self, experiment_dir)

    def train_loop(self, input_fn: Any, steps: int, *version: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.train_loop is not implemented; define "
                                  f"train_loop(self, input_fn, steps) in the experiment script")

    def evaluate_loop(self, input_fn: Any, steps: int, *version: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.evaluate_loop is not implemented; define "
                                  f"evaluate_loop(self, input_fn, steps) in the experiment script")


class ExperimentABC(Experiment):
    """Base class of a 1.1a3.post9 … post12 script's ``EXPERIMENT``."""

    _mlp_version: Any = None

    def _mlp_before_hooks(self, version: Any, experiment_dir: str) -> None:
        """Called by the runner before ``pre_execution_hook``: the original called
        ``setup_model(version, experiment_dir)`` there (one written ``setup_model(self, version)``
        gets the version alone)."""
        self._mlp_version = version
        if _accepts(self.setup_model, 2):
            self.setup_model(version, experiment_dir)
        else:
            self.setup_model(version)

    def setup_model(self, version: Any, experiment_dir: Optional[str] = None) -> None:
        """Build ``self.model`` for ``version`` (the default does nothing)."""

    def pre_execution_hook(self, version: Any, experiment_dir: str, exec_mode: str = "Test") -> None:
        """Called after ``setup_model`` for each version (the default does nothing)."""

    def get_current_version(self) -> Any:
        return self._mlp_version

    def train_model(self, input_fn: Any, steps: int) -> Any:
        return self.train_loop(input_fn, steps, self._mlp_version)

    def evaluate_model(self, input_fn: Any, steps: int) -> Any:
        return self.evaluate_loop(input_fn, steps, self._mlp_version)

    def export_model(self, version: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__}.export_model is not implemented")

    def log(self, message: Any, log_to_file: bool = False, agent: Any = None, **kwargs: Any) -> None:
        """Log a line from the experiment; ``agent`` names who speaks (``agent: message``)."""
        text = f"{agent}: {message}" if agent is not None else message
        _log(f"{console_colors.CYAN_FG}Expriment- {console_colors.RESET}{text}", log_to_file=log_to_file, **kwargs)


class DataLoaderABC(DataLoader):
    """Base class of a 1.1a3.post9 … post12 version's dataloader."""

    def log(self, message: Any, log_to_file: bool = False, agent: Any = None, **kwargs: Any) -> None:
        text = f"{agent}: {message}" if agent is not None else message
        _log(f"{console_colors.CYAN_FG}DataLoader- {console_colors.RESET}{text}", log_to_file=log_to_file, **kwargs)
