"""Running one version of a model script: DESIGN §3, wherever it executes.

Both executors (in-process and child process) call ``run_version``; it knows
nothing of ledgers or terminals, only the script's hooks and a reporter.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import sys
from typing import Any, Dict, Optional, Tuple

from . import report as _report
from .metrics import Metric, MetricContainer
from ..core.lifecycle import to_number
from ..core.vocabulary import RunStatus
from .versions import Version, version_parameters
from .results import RICH_KEYS, has_rich
from .utils import ExecutionModeKeys, _collect_related_files, copy_related_files, log

MARKER = ".mlpipeline-version"


MARK_TRAINING, MARK_DONE = RunStatus.RUNNING.value, "done"  # a model dir's marker: a version trains there, or did


def marker_path(model_dir: str) -> str:
    """Where the runner notes which version last used a model dir and whether it
    finished: beside the dir (``.<dir name>.mlpipeline-version``), so the model dir
    holds only what the model puts there, as in the original."""
    model_dir = os.path.normpath(model_dir)
    return os.path.join(os.path.dirname(model_dir), f".{os.path.basename(model_dir)}{MARKER}")


class VersionResult:
    """What a finished version hands back to the runner (plain data, JSON-able).
    A plain class: dataclasses would cost every version's child an inspect import."""

    FIELDS = ("steps", "trained_before", "eval_train", "eval_test", "eval_train_text", "eval_test_text",
              "model_summary", "dataloader_summary", "data_fingerprint")

    def __init__(self, steps: int = 0, trained_before: int = 0, eval_train: Optional[Dict[str, Optional[float]]] = None,
                 eval_test: Optional[Dict[str, Optional[float]]] = None, eval_train_text: str = "",
                 eval_test_text: str = "", model_summary: str = "", dataloader_summary: str = "",
                 data_fingerprint: Optional[str] = None):
        self.steps, self.trained_before = steps, trained_before
        self.eval_train: Dict[str, Optional[float]] = eval_train or {}
        self.eval_test: Dict[str, Optional[float]] = eval_test or {}
        self.eval_train_text, self.eval_test_text = eval_train_text, eval_test_text
        self.model_summary, self.dataloader_summary = model_summary, dataloader_summary
        self.data_fingerprint = data_fingerprint  # what mlpipeline.data loaders read (None: none was used)

    def to_json(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}


def as_number(value: Any) -> Optional[float]:
    """``value`` as a metric (a float), or None when it is not a number."""
    if isinstance(value, Metric):
        return value.avg()
    return to_number(value)


def eval_metrics(value: Any, prefix: str = "") -> Tuple[Dict[str, Optional[float]], str]:
    """Normalise what ``evaluate_model`` returned: (numeric metrics, display text).

    A MetricContainer gives each metric's ``avg_epoc()`` (what the original
    logged for it, with ``complete_epoc=True``), a dict its numeric entries,
    a number itself as ``value``; a str is kept as text only. A dict's rich
    results (``data``, ``columns``, ``graphs``, ``text``: see ``results``) are
    neither metrics nor text.
    """
    if value is None:
        return {}, ""
    if isinstance(value, MetricContainer):
        metrics = {str(name): as_number(metric.avg_epoc()) for name, metric in value.items()
                   if isinstance(metric, Metric)}
        text = "    ".join(f"{prefix}{name}: {number:.4f}" for name, number in metrics.items())
        return metrics, text
    if isinstance(value, dict):
        metrics, other = {}, []
        for key, item in value.items():
            if key in RICH_KEYS:
                continue
            number = as_number(item)
            if number is None:
                other.append(f"{prefix}{key}: {item}")
            else:
                metrics[str(key)] = number
        text = "    ".join([f"{prefix}{k}: {v:.4f}" for k, v in metrics.items()] + other)
        return metrics, text
    number = as_number(value)
    if number is not None:
        return {"value": number}, f"{prefix}value: {number:.4f}"
    return {}, str(value)


def _read_marker(model_dir: str) -> Tuple[Optional[str], str, str]:
    """(version, state, script sha256) the model dir's marker records; state is
    ``running`` while a version trains there and ``done`` once it finished."""
    try:
        with open(marker_path(model_dir), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None, "", ""
    lines += ["", "", ""]
    return (lines[0].strip() or None), lines[1].strip() or MARK_DONE, lines[2].strip()


def _write_marker(model_dir: str, version_name: str, state: str, digest: str) -> None:
    with open(marker_path(model_dir), "w", encoding="utf-8") as handle:
        handle.write(f"{version_name}\n{state}\n{digest}\n")


def _digest(script_path: str, source: Optional[bytes]) -> str:
    if source is None:
        try:
            with open(script_path, "rb") as handle:
                source = handle.read()
        except OSError:
            source = b""
    return hashlib.sha256(source).hexdigest()


def prepare_model_dir(model: Any, model_dir: str, version_name: str, resuming: bool = False) -> None:
    """Before the hooks run: on a fresh start (not resuming an interrupted or failed
    run of the same script) ``clean_model_dir`` when the model allows it, as the
    original did; else warn when the dir last held another version. An empty
    model dir is removed: the hook sees a fresh dir as not existing yet."""
    previous, _, _ = _read_marker(model_dir)
    reporter = _report.current()
    if not resuming and getattr(model, "allow_delete_model_dir", False):
        model.clean_model_dir(model_dir)
        log("Cleaned model dir")
    elif previous and previous != version_name and not getattr(model, "allow_delete_model_dir", False):
        reporter.log(f"model dir {model_dir} last held version {previous!r}; {version_name!r} starts from what "
                     f"it left (set allow_delete_model_dir=True on the Model to clean it)", logging.WARNING)
    # As the original, a fresh model dir does not exist yet when pre_execution_hook runs
    # (scripts test os.path.exists(model_dir) to decide whether to restore a checkpoint).
    if os.path.isdir(model_dir) and not os.listdir(model_dir):
        os.rmdir(model_dir)
    os.makedirs(os.path.dirname(os.path.normpath(model_dir)) or ".", exist_ok=True)


def _keep_script(script_path: str, model_dir: str, source: Optional[bytes]) -> None:
    os.makedirs(model_dir, exist_ok=True)
    target = os.path.join(model_dir, os.path.basename(script_path))
    if source is None:
        shutil.copy2(script_path, target)
    else:
        with open(target, "wb") as handle:
            handle.write(source)


def _display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _check_call(function: Any, *args: Any) -> None:
    """Raise TypeError if ``function`` cannot take ``args`` positionally. Reads
    the code object of a plain function or method (no ``inspect`` import in
    every version's child); anything else goes through ``inspect``."""
    target = getattr(function, "__func__", function)
    code = getattr(target, "__code__", None)
    if code is not None and type(target).__name__ == "function":
        given = len(args) + (1 if hasattr(function, "__self__") else 0)
        takes_varargs = bool(code.co_flags & 0x04)
        required = code.co_argcount - len(target.__defaults__ or ())
        if given > code.co_argcount and not takes_varargs:
            raise TypeError("too many positional arguments")
        if given < required:
            raise TypeError("missing positional arguments")
        return
    import inspect

    inspect.signature(function).bind(*args)


def call_pre_execution_hook(model: Any, version: Version, model_dir: str, exec_mode: str) -> None:
    """``pre_execution_hook(version, model_dir, exec_mode)``; overrides written
    without ``exec_mode`` (as the original called them) get two arguments. An ``ExperimentABC``
    (1.1a3.post9 ... post12) has its ``setup_model`` called first, as the original did."""
    before = getattr(model, "_mlp_before_hooks", None)
    if before is not None and before(version, model_dir, exec_mode):
        return
    hook = model.pre_execution_hook
    try:
        _check_call(hook, version, model_dir, exec_mode)
    except TypeError:
        hook(version, model_dir)
        return
    except ValueError:  # no signature to read: call it as documented
        pass
    hook(version, model_dir, exec_mode)


def count_steps(model: Any, version: Version, exec_mode: str) -> Tuple[int, int]:
    """(steps to train, steps already trained). Test mode trains one step.

    Execution mode: ``epoc_count × train samples / batch_size`` of the model's
    current version (rounded up), less ``get_trained_step_count()`` unless
    ``reset_steps``; never negative.
    """
    if exec_mode == ExecutionModeKeys.TEST or not getattr(model, "_mlp_steps", True):
        return 1, 0  # (a 2.x Experiment counts no steps: its train_loop runs its own loops)
    current = model.get_current_version() if hasattr(model, "get_current_version") else None
    if not isinstance(current, dict):
        current = version
    loader = current[version_parameters.DATALOADER]
    total = math.ceil(current[version_parameters.EPOC_COUNT] * loader.get_train_sample_count()
                      / current[version_parameters.BATCH_SIZE])
    trained = model.get_trained_step_count()
    if trained is None or getattr(model, "reset_steps", False):
        return int(total), 0
    trained = int(trained)
    return int(max(0, total - trained)), trained


def _snapshot_summary(obj: Any) -> None:
    """Each version starts from the summary the object had once its script was
    imported (the original imported the script afresh for every version)."""
    try:
        state = vars(obj)
    except TypeError:  # no __dict__: nothing to keep
        return
    if "_mlp_initial_summery" not in state:
        object.__setattr__(obj, "_mlp_initial_summery", getattr(obj, "summery", None))
    else:
        obj.summery = state["_mlp_initial_summery"]


def _log_eval(value: Any, prefix: str) -> str:
    """Log a MetricContainer result's rows as c8e2ef6 did (``complete_epoc``,
    prefixed names); returns the text kept for the run."""
    if isinstance(value, MetricContainer):
        text, _ = value.log_rows(complete_epoc=True, name_prefix=prefix)
        return text.rstrip()
    return eval_metrics(value)[1]


def _keep_results(name: str, run_dir: Optional[str], values: Dict[str, Any]) -> None:
    """Save the table, graphs and text ``evaluate_model`` returned per split
    (``values``: split → what it returned) to ``<run_dir>/results.json``. Test
    mode (no run dir) checks them and saves nothing. A failed write is a
    warning: the run's metrics are what the ledger needs."""
    if not any(has_rich(value) for value in values.values()):
        return
    from . import results

    reporter = _report.current()

    def warn(split: str) -> Any:
        return lambda message: reporter.log(f"version {name}: {split} results: {message}", logging.WARNING)

    try:
        kept = {split: results.rich_results(value, warn(split)) for split, value in values.items()
                if has_rich(value)}
    except Exception as exc:  # noqa: BLE001 - a figure that fails to convert costs the results, not the run
        reporter.log(f"version {name}: results not saved: {type(exc).__name__}: {exc}", logging.WARNING)
        return
    kept = {split: part for split, part in kept.items() if part}
    if not kept:
        return
    shown = "; ".join(f"{split}: {results.describe(part)}" for split, part in kept.items())
    if not run_dir:
        reporter.log(f"version {name}: results ({shown}) not saved in test mode")
        return
    path = os.path.join(run_dir, results.RESULTS_FILE)
    try:
        notes = results.save_results(run_dir, kept)
    except (OSError, ValueError) as exc:
        reporter.log(f"version {name}: results ({shown}) not saved: cannot write {_display(path)}: {exc}",
                     logging.WARNING)
        return
    for note in notes:
        reporter.log(f"version {name}: results: {note}", logging.WARNING)
    reporter.log(f"version {name}: results ({shown}) saved to {_display(path)}")


def run_version(model: Any, version: Version, script_path: str, model_dir: str, exec_mode: str,
                source: Optional[bytes] = None, run_dir: Optional[str] = None) -> VersionResult:
    """Run one version through the model's hooks (DESIGN §3 steps 2–6), in the
    original's order; ``source`` is the script text that was imported, kept in
    the model dir (execution mode) so the copy is exactly what ran. Rich
    results from ``evaluate_model`` are saved in ``run_dir`` (if given)."""
    reporter = _report.current()
    name = version[version_parameters.NAME]
    script_path = os.path.abspath(script_path)
    model._mlp_script_path = script_path
    model._mlp_model_dir = model_dir
    model.name = _display(script_path)
    loader = version[version_parameters.DATALOADER]
    data = sys.modules.get("mlpipeline.data")  # imported only by scripts that use its loaders
    data_mark = data.registry_size() if data else 0
    # for save_output: the version's data as its script loaded it, before the hooks (what outputs.load compares)
    model._mlp_saving = {"script": script_path, "version": version, "run_dir": run_dir,
                         "data_fingerprint": data.version_fingerprint(loader, script_path, data_mark) if data else None}
    _snapshot_summary(model)
    _snapshot_summary(loader)
    if "_mlp_related_files" not in vars(model):
        _collect_related_files(model, os.path.dirname(script_path), [script_path])
    train_mode = exec_mode == ExecutionModeKeys.TRAIN
    digest = _digest(script_path, source)
    previous, state, previous_digest = _read_marker(model_dir) if train_mode else (None, "", "")
    resuming = previous == name and state == MARK_TRAINING and previous_digest == digest
    if resuming:
        log(f"version {name}: resuming in {model_dir}, where its last run stopped before finishing")
    prepare_model_dir(model, model_dir, name, resuming)
    if train_mode:
        _write_marker(model_dir, name, MARK_TRAINING, digest)
    call_pre_execution_hook(model, version, model_dir, exec_mode)
    os.makedirs(model_dir, exist_ok=True)
    copy_related_files(model, model_dir)
    if train_mode:
        _keep_script(script_path, model_dir, source)
    if train_mode and getattr(model, "_mlp_steps", True):
        test_eval_steps = loader.get_test_sample_count()
        train_eval_steps = loader.get_train_sample_count()
    else:
        train_eval_steps = test_eval_steps = 1
    steps, trained = count_steps(model, version, exec_mode)
    if data is None:
        data = sys.modules.get("mlpipeline.data")  # the hook may have imported it
    fingerprint = data.version_fingerprint(loader, script_path, data_mark) if data is not None else None
    if fingerprint:  # now, not only with the result: a version ended early (pruned, cancelled) keeps it too
        reporter.data(fingerprint)
    reporter.log(f"version {name}: training {steps} step{'' if steps == 1 else 's'} (already trained: {trained})")
    if steps > 0:
        given = {"mode": ExecutionModeKeys.TRAIN} if getattr(model, "_mlp_train_input_mode", False) else {}
        output = model.train_model(loader.get_train_input(**given), steps)
        if isinstance(output, MetricContainer):
            output.log_rows(log_to_file=False, complete_epoc=True)
        elif output is not None:
            log(f"Model traning output: {output}")
        log("Model trained")
    else:
        log("no training: already trained")
    log(f"Training evaluation started: {train_eval_steps} steps")
    train_value = model.evaluate_model(loader.get_train_input(mode=ExecutionModeKeys.TEST), steps=train_eval_steps)
    train_text = _log_eval(train_value, "TRAIN_")
    log(f"Testing evaluation started: {test_eval_steps} steps")
    test_value = model.evaluate_model(loader.get_test_input(), steps=test_eval_steps)
    test_text = _log_eval(test_value, "TEST_")
    log("Model evaluation complete")
    after = getattr(model, "_mlp_after_hooks", None)  # 2.x's post_execution_hook
    if after is not None:
        after(exec_mode)
    reporter.log(f"version {name}: eval on train set: {train_text}")
    reporter.log(f"version {name}: eval on test set: {test_text}")
    eval_train, _ = eval_metrics(train_value)
    eval_test, _ = eval_metrics(test_value)
    _keep_results(name, run_dir, {"train": train_value, "test": test_value})
    if train_mode and not os.path.isdir(model_dir):
        reporter.log(f"version {name}: its model dir {model_dir} was deleted while it ran; recreated it to keep "
                     f"a copy of the script", logging.WARNING)
        _keep_script(script_path, model_dir, source)
    if train_mode:
        _write_marker(model_dir, name, MARK_DONE, digest)
    data = sys.modules.get("mlpipeline.data")
    return VersionResult(steps, trained, eval_train, eval_test, train_text, test_text,
                         str(getattr(model, "summery", "") or ""), str(getattr(loader, "summery", "") or ""),
                         data.version_fingerprint(loader, script_path, data_mark) if data else None)

