"""Running one version of a model script: DESIGN §3, wherever it executes.

Both executors (in-process and child process) call ``run_version``; it knows
nothing of ledgers or terminals, only the script's hooks and a reporter.
"""
from __future__ import annotations

import logging
import math
import numbers
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from . import _report
from ._metrics import Metric, MetricContainer
from ._versions import Version, version_parameters
from .utils import ExecutionModeKeys, ModeKeys

MARKER = ".mlpipeline-version"


@dataclass
class VersionResult:
    """What a finished version hands back to the runner (plain data, JSON-able)."""

    steps: int = 0
    trained_before: int = 0
    eval_train: Dict[str, float] = field(default_factory=dict)
    eval_test: Dict[str, float] = field(default_factory=dict)
    eval_train_text: str = ""
    eval_test_text: str = ""
    model_summary: str = ""
    dataloader_summary: str = ""

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, Metric):
        return value.avg()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Number):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:  # numpy / tensor scalars
        try:
            return float(value.item())
        except (TypeError, ValueError):
            return None
    return None


def eval_metrics(value: Any, prefix: str = "") -> Tuple[Dict[str, float], str]:
    """Normalise what ``evaluate_model`` returned: (numeric metrics, display text).

    A MetricContainer gives its averages, a dict its numeric entries, a number
    itself as ``value``; a str is kept as text only.
    """
    if value is None:
        return {}, ""
    if isinstance(value, MetricContainer):
        return value.averages(), value.format(name_prefix=prefix)
    if isinstance(value, dict):
        metrics, other = {}, []
        for key, item in value.items():
            number = _number(item)
            if number is None:
                other.append(f"{prefix}{key}: {item}")
            else:
                metrics[str(key)] = number
        text = "    ".join([f"{prefix}{k}: {v:.4f}" for k, v in metrics.items()] + other)
        return metrics, text
    number = _number(value)
    if number is not None:
        return {"value": number}, f"{prefix}value: {number:.4f}"
    return {}, str(value)


def prepare_model_dir(model: Any, model_dir: str, version_name: str) -> None:
    """Create the model dir; if it last held another version, clean it when the
    model allows that, else warn (the versions then share checkpoints)."""
    os.makedirs(model_dir, exist_ok=True)
    marker = os.path.join(model_dir, MARKER)
    previous = None
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            previous = handle.read().strip() or None
    reporter = _report.current()
    if previous and previous != version_name:
        if getattr(model, "allow_delete_model_dir", False):
            reporter.log(f"model dir {model_dir} last held version {previous!r}; cleaning it for {version_name!r}")
            model.clean_model_dir(model_dir)
            os.makedirs(model_dir, exist_ok=True)
        else:
            reporter.log(f"model dir {model_dir} last held version {previous!r}; {version_name!r} starts from what "
                         f"it left (set allow_delete_model_dir=True on the Model to clean it)", logging.WARNING)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(version_name + "\n")


def _keep_script(script_path: str, model_dir: str, source: Optional[bytes]) -> None:
    os.makedirs(model_dir, exist_ok=True)
    target = os.path.join(model_dir, os.path.basename(script_path))
    if source is None:
        shutil.copy2(script_path, target)
    else:
        with open(target, "wb") as handle:
            handle.write(source)


def count_steps(model: Any, version: Version, exec_mode: str) -> Tuple[int, int]:
    """(steps to train, steps already trained). Test mode trains one step."""
    if exec_mode == ExecutionModeKeys.TEST:
        return 1, 0
    loader = version[version_parameters.DATALOADER]
    total = math.ceil(version[version_parameters.EPOC_COUNT] * loader.get_train_sample_count()
                      / version[version_parameters.BATCH_SIZE])
    trained = 0 if getattr(model, "reset_steps", False) else int(model.get_trained_step_count() or 0)
    return max(0, total - trained), trained


def run_version(model: Any, version: Version, script_path: str, model_dir: str, exec_mode: str,
                source: Optional[bytes] = None) -> VersionResult:
    """Run one version through the model's hooks (DESIGN §3 steps 2–6).

    ``source`` is the script text that was imported; execution mode keeps it in
    the model dir before training starts, so the copy is exactly what ran."""
    reporter = _report.current()
    name = version[version_parameters.NAME]
    model._mlp_script_path = os.path.abspath(script_path)
    model._mlp_model_dir = model_dir
    model.summery = ""
    loader = version[version_parameters.DATALOADER]
    if exec_mode == ExecutionModeKeys.TRAIN:
        prepare_model_dir(model, model_dir, name)
        _keep_script(script_path, model_dir, source)
    else:
        os.makedirs(model_dir, exist_ok=True)
    model.pre_execution_hook(version, model_dir, exec_mode)
    steps, trained = count_steps(model, version, exec_mode)
    reporter.log(f"version {name}: training {steps} step{'' if steps == 1 else 's'} (already trained: {trained})")
    model.train_model(loader.get_train_input(mode=ModeKeys.TRAIN), steps)
    batch = version[version_parameters.BATCH_SIZE]
    if exec_mode == ExecutionModeKeys.TEST:
        train_eval_steps = test_eval_steps = 1
    else:
        train_eval_steps = max(1, math.ceil(loader.get_train_sample_count() / batch))
        test_eval_steps = max(1, math.ceil(loader.get_test_sample_count() / batch))
    train_value = model.evaluate_model(loader.get_train_input(mode=ModeKeys.TEST), train_eval_steps)
    test_value = model.evaluate_model(loader.get_test_input(), test_eval_steps)
    eval_train, train_text = eval_metrics(train_value, "TRAIN_" if isinstance(train_value, MetricContainer) else "")
    eval_test, test_text = eval_metrics(test_value, "TEST_" if isinstance(test_value, MetricContainer) else "")
    reporter.log(f"version {name}: eval on train set: {train_text}")
    reporter.log(f"version {name}: eval on test set: {test_text}")
    if exec_mode == ExecutionModeKeys.TRAIN and not os.path.isdir(model_dir):
        reporter.log(f"version {name}: its model dir {model_dir} was deleted while it ran; recreated it to keep "
                     f"a copy of the script", logging.WARNING)
        _keep_script(script_path, model_dir, source)
    try:
        loader_summary = str(loader.get_dataloader_summery() or "")
    except Exception as exc:  # noqa: BLE001 - a summary must not fail a trained version
        loader_summary = f"(get_dataloader_summery failed: {type(exc).__name__}: {exc})"
    return VersionResult(steps, trained, eval_train, eval_test, train_text, test_text,
                         str(getattr(model, "summery", "") or ""), loader_summary)
