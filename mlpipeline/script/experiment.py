"""The original's Experiment generations, over ``Model``: the runner drives them through the same hooks.

- 1.1a3.post8 (``mlpipeline.helper.Experiment``): ``Model`` renamed — ``train_loop``/``evaluate_loop``
  for ``train_model``/``evaluate_model``, ``clean_experiment_dir``, ``allow_delete_experiment_dir``, an
  ``EXPERIMENT`` global, ``log`` prefixed ``Exp- ``.
- 1.1a3.post9 … post12 (``mlpipeline.base.ExperimentABC``/``DataLoaderABC``): ``setup_model(version,
  experiment_dir)`` before ``pre_execution_hook``, the loops take the version as a third argument, no
  ``get_current_version`` to write, ``export_model(version)``, ``log(..., agent=None)``.
- 2.0a3.post1 … 2.0a4.post6: as 2.x below, but ``train_loop(input_fn, steps)`` and ``evaluate_loop(input_fn,
  steps)`` keep their steps.
- 2.0a1 … 2.0a7.post1 (the same ``mlpipeline.base.ExperimentABC``): the hooks lose their arguments —
  ``setup_model()``, ``pre_execution_hook(mode)``, ``train_loop(input_fn)``, ``evaluate_loop(input_fn)``,
  ``post_execution_hook(mode)``, ``export_model()`` — and read ``self.current_version``,
  ``self.experiment_dir`` and ``self.dataloader``; no steps (``mlpipeline.iterator`` cuts loops in test
  mode); a version's dataloader may be a ``DataLoaderCallableWrapper``, built when first used.
  Which form a hook has is read from its signature, so one class serves both generations.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

from .helper import DataLoader, Model
from .modes import ExecutionModeKeys, ExperimentModeKeys
from .plain import test_mode
from .utils import console_colors
from .versions import DataLoaderCallableWrapper, version_parameters
from .utils import log as _log

__all__ = ["Experiment", "ExperimentABC", "DataLoaderABC", "DataLoaderCallableWrapper"]

# The mode a 2.x pre_execution_hook/post_execution_hook receives (ExperimentModeKeys) for the runner's own.
_MODE_2X = {ExecutionModeKeys.TRAIN: ExperimentModeKeys.RUN, ExecutionModeKeys.TEST: ExperimentModeKeys.TEST}


def _accepts(function: Any, count: int) -> bool:
    """Whether ``function`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(function).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature to read: assume it can
        return True
    return True


def _takes_input_alone(loop: Any) -> bool:
    """Whether a loop is written in 2.x's form, ``loop(input_fn)``, rather than post12's with steps and version."""
    return _accepts(loop, 1) and not _accepts(loop, 2)


def _call_loop(loop: Any, input_fn: Any, steps: int, version: Any) -> Any:
    """A loop called in the form it is written in: post9 … post12's ``(input_fn, steps, version)``,
    2.0a3.post1 … 2.0a4.post6's ``(input_fn, steps)`` or 2.x's ``(input_fn)``."""
    if _accepts(loop, 3):
        return loop(input_fn, steps, version)
    if _accepts(loop, 2):
        return loop(input_fn, steps)
    return loop(input_fn)


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
    """Base class of a 1.1a3.post9 … post12 or 2.0a1 … 2.0a7.post1 script's ``EXPERIMENT``."""

    _mlp_version: Any = None
    experiment_dir: Optional[str] = None
    dataloader: Any = None
    # False for a 2.x experiment (train_loop(input_fn)): it has no steps, so none are counted for it.
    _mlp_steps = True
    # post9 … 2.x asked for the training input with get_train_input(mode=ExecutionModeKeys.TRAIN) (2.x's
    # BaseTorchDataLoader requires the mode); 1.1a3 … post8 called get_train_input().
    _mlp_train_input_mode = True

    def _mlp_before_hooks(self, version: Any, experiment_dir: str, exec_mode: str = ExecutionModeKeys.TEST) -> bool:
        """Called by the runner in place of ``pre_execution_hook``: ``setup_model`` then
        ``pre_execution_hook``, each called in the form it is written in — post12's
        ``(version, experiment_dir[, exec_mode])`` (a ``setup_model(self, version)`` gets the version alone,
        as post12's own example wrote it) or 2.x's ``setup_model()`` and ``pre_execution_hook(mode)``.
        Returns True: both are called."""
        self._mlp_version = self.current_version = version
        self.experiment_dir = experiment_dir
        loader = version.get("dataloader") if isinstance(version, dict) else None
        self.dataloader = loader() if isinstance(loader, DataLoaderCallableWrapper) else loader
        self._mlp_steps = not _takes_input_alone(self.train_loop)
        for count in (2, 1, 0):
            if _accepts(self.setup_model, count):
                self.setup_model(*(version, experiment_dir)[:count])
                break
        hook: Any = self.pre_execution_hook  # written in either generation's form
        if _accepts(hook, 3):
            hook(version, experiment_dir, exec_mode)
        elif _accepts(hook, 2):
            hook(version, experiment_dir)
        else:
            hook(mode=_MODE_2X.get(exec_mode, exec_mode))
        return True

    def _mlp_after_hooks(self, exec_mode: str) -> None:
        """Called by the runner after the evaluation: 2.x's ``post_execution_hook(mode)``."""
        self.post_execution_hook(mode=_MODE_2X.get(exec_mode, exec_mode))

    def post_execution_hook(self, mode: str = ExperimentModeKeys.TEST) -> None:
        """Called after a version's evaluation (2.x; the default does nothing)."""

    def setup_model(self, version: Any, experiment_dir: Optional[str] = None) -> None:
        """Build ``self.model`` for ``version`` (the default does nothing)."""

    def pre_execution_hook(self, version: Any, experiment_dir: str, exec_mode: str = "Test") -> None:
        """Called after ``setup_model`` for each version (the default does nothing)."""

    def get_current_version(self) -> Any:
        return self._mlp_version

    def train_model(self, input_fn: Any, steps: int) -> Any:
        return _call_loop(self.train_loop, input_fn, steps, self._mlp_version)

    def evaluate_model(self, input_fn: Any, steps: int) -> Any:
        return _call_loop(self.evaluate_loop, input_fn, steps, self._mlp_version)

    def export_model(self, *version: Any) -> None:
        """Save the trained model for use elsewhere (post12: ``export_model(version)``, 2.x:
        ``export_model()``); not run by this project (see the README)."""
        raise NotImplementedError(f"{type(self).__name__}.export_model is not implemented")

    def copy_related_files(self, dst_dir: str) -> None:
        """As ``Model.copy_related_files``; a 2.x experiment copies nothing in test mode, as 2.x did."""
        if not self._mlp_steps and test_mode():
            _log(f"Not copying in TEST mode: {dst_dir}")
            return
        super().copy_related_files(dst_dir)

    def _export_model(self, *version: Any) -> None:
        """2.x's internal spelling of ``export_model``, kept for scripts that override it."""
        self.export_model(*version)

    def log(self, message: Any, log_to_file: bool = False, agent: Any = None, **kwargs: Any) -> None:
        """Log a line from the experiment; ``agent`` names who speaks (``agent: message``)."""
        text = f"{agent}: {message}" if agent is not None else message
        _log(f"{console_colors.CYAN_FG}Expriment- {console_colors.RESET}{text}", log_to_file=log_to_file, **kwargs)


class DataLoaderABC(DataLoader):
    """Base class of a 1.1a3.post9 … post12 version's dataloader."""

    def log(self, message: Any, log_to_file: bool = False, agent: Any = None, **kwargs: Any) -> None:
        text = f"{agent}: {message}" if agent is not None else message
        _log(f"{console_colors.CYAN_FG}DataLoader- {console_colors.RESET}{text}", log_to_file=log_to_file, **kwargs)
