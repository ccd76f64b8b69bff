"""Predictions from a finished run's trained model, always in a child process.

A model script may define ``predict(input_path, model_dir)``: a method of its
``MODEL`` (looked for first) or a module-level function. It returns what
``evaluate_model`` may return: a results dict (``data``/``columns``/``graphs``/
``text``), numbers, or both. ``run_predict`` checks the run, copies the input
into ``<run_dir>/predictions/<n>/``, runs the script's ``predict`` in a child
process (its own process group, a time limit, its output in ``<n>/output.log``)
and returns what the child saved in ``<n>/results.json``. The calling process
never imports the script: the CLI and the web page share ``run_predict``.

Files of prediction ``n`` under the run's dir::

    predictions/<n>/request.json   the run, the input's original name, when, the child's pid
    predictions/<n>/input<ext>     a copy of the input
    predictions/<n>/output.log     the child's stdout and stderr
    predictions/<n>/results.json   {"status": "succeeded", "results": {...}} or
                                   {"status": "failed" | "timeout", "error": ..., "traceback": ...}
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..core.layout import run_log
from ..core.errors import MLPipelineError, UsageError, display
from ..core.lifecycle import RunStatus
from ..proc.spawn import spawn
from ..proc.system import MARK_PROJECT, MARK_RUN, MARK_VERSION, pid_alive, signal_name
from ..script.results import RESULTS_FILE, read_json, write_json

DEFAULT_TIMEOUT = 300.0  # seconds a prediction may take unless the caller says otherwise
PREDICTIONS = "predictions"
REQUEST_FILE = "request.json"
# As the runner's children: the current folder (the project root) leaves sys.path, so a json.py there cannot
# shadow the standard library; load_module puts the script's own folder first.
CHILD_MAIN = "import sys; del sys.path[0]; from mlpipeline.script.predict_child import main; sys.exit(main(sys.argv[1:]))"


class PredictError(MLPipelineError):
    """A prediction that did not give results: the script's ``predict`` failed,
    timed out, or its process died. ``details`` holds the user's traceback."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


# -- the caller's side -------------------------------------------------------------------------------------

def run_predict(project: Any, run: Union[str, int, Mapping[str, Any]], input_path: str,
                timeout: Optional[float] = DEFAULT_TIMEOUT) -> Dict[str, Any]:
    """Run the script's ``predict`` for ``run`` (an id, a uid prefix, or its
    ledger row) on ``input_path``, in a child process in ``project``'s root.

    Returns ``{"results", "prediction", "dir", "log", "run", "warnings"}``:
    the normalised results, the prediction's number and folder, its log, the
    run's id and warnings for the person asking (the script changed since the
    run, the model dir was trained again since). ``timeout`` None: no limit.
    Raises ``UsageError`` when the run cannot predict, ``PredictError`` when
    the prediction fails."""
    row, warnings = _find(project, run)
    script, model_dir, run_dir = _check(project, row, warnings)
    if not os.path.isfile(input_path):
        raise UsageError(f"{display(input_path)}: no such file; give the file to predict on")
    folder, number = _new_folder(run_dir)
    log_path, result_path = run_log(folder), os.path.join(folder, RESULTS_FILE)
    local_input = os.path.join(folder, "input" + os.path.splitext(input_path)[1])
    shutil.copyfile(input_path, local_input)
    request = {"run": row["id"], "script": row["script"], "version": row["version"],
               "source": os.path.basename(input_path), "input": os.path.basename(local_input),
               "requested_at": time.time(), "timeout": timeout}
    spec = {"script": script, "version": row["version"], "params": json.loads(row["params"] or "{}"),
            "model_dir": model_dir, "input": local_input, "output": result_path, "parent_pid": os.getpid()}
    mark = (MARK_RUN, f"predict-{row['uid']}-{number}")  # a version's other marks are not its own
    started = time.monotonic()
    with open(log_path, "ab") as log:
        for warning in warnings:
            log.write(f"mlpipeline: warning: {warning}\n".encode())
        log.flush()
        child = spawn(CHILD_MAIN, [json.dumps(spec)], cwd=project.root, mark=mark, stdout=log,
                      env={MARK_PROJECT: None, MARK_VERSION: None})
    try:
        write_json(os.path.join(folder, REQUEST_FILE), {**request, "pid": child.pid})
        code = child.wait(timeout)
    finally:  # timed out, or the caller was interrupted: the whole group and what it started go
        child.end(wait=2.0)
    timed_out = code is None
    label = f"run {row['id']} ({row['script']} {row['version']})"
    where = display(log_path)
    if timed_out:
        error = f"predict ran longer than {timeout:g} s (the timeout); its processes were killed"
        write_json(result_path, {"status": RunStatus.TIMEOUT.value, "error": error,
                                 "duration": time.monotonic() - started})
        raise PredictError(f"{label}: {error}; see {where}, or give it longer (--timeout)")
    record = read_json(result_path)
    if not isinstance(record, dict) or record.get("status") not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        code = child.returncode if child.returncode is not None else -9  # (ended: it is set)
        how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with code {code}"
        error = f"the predict process {how} before it saved a result"
        write_json(result_path, {"status": RunStatus.FAILED.value, "error": error,
                                 "duration": time.monotonic() - started})
        raise PredictError(f"{label}: {error}; see {where}")
    if record["status"] == RunStatus.FAILED.value:
        raise PredictError(f"{label}: predict failed: {record.get('error')}; see {where}",
                           details=str(record.get("traceback") or ""))
    return {"results": record.get("results") or {}, "prediction": number, "dir": folder, "log": log_path,
            "run": row["id"], "warnings": warnings + list(record.get("warnings") or [])}


def _find(project: Any, run: Union[str, int, Mapping[str, Any]]) -> Tuple[Dict[str, Any], List[str]]:
    """(the run's row as a dict, warnings): resolved through a read-only reader."""
    from ..read.queries import resolve_run
    from ..store.reader import open_reader

    reader = open_reader(project.outputs_dir)
    if reader is None:
        raise UsageError("predict: no runs recorded yet in this project; train one with mlpipeline -r first")
    try:
        row = dict(run) if isinstance(run, Mapping) else resolve_run(reader, str(run))
        warnings: List[str] = []
        if row.get("model_dir"):
            used = reader.later_runs_in(row["model_dir"], row["id"])
            if used:
                later = used[-1]
                warnings.append(f"run {row['id']}: its model dir was used again by run {later['id']} "
                                f"({later['status']}); predict uses what the model dir holds now")
        return row, warnings
    finally:
        reader.close()


def _check(project: Any, row: Mapping[str, Any], warnings: List[str]) -> Tuple[str, str, str]:
    """(script, model dir, run dir) of a run that can predict; else a UsageError saying why."""
    label = f"run {row['id']}"
    if row.get("mode") == "test":
        raise UsageError(f"{label} is a test-mode run: its model dir was temporary and is gone; predict with an "
                         f"execution-mode run (mlpipeline -r; see mlpipeline runs --mode run)")
    if row.get("status") != RunStatus.SUCCEEDED.value or not row.get("version"):
        raise UsageError(f"{label} did not succeed (status {row.get('status')}): predict needs a run whose "
                         f"training succeeded; pick one with mlpipeline runs --status succeeded")
    model_dir, run_dir = row.get("model_dir"), row.get("run_dir")
    if not model_dir or not run_dir:
        raise UsageError(f"{label} recorded no model dir or run dir (an imported run?); predict needs a run "
                         f"trained by mlpipeline -r")
    model_dir = os.path.join(project.root, model_dir)
    run_dir = os.path.join(project.root, run_dir)
    if not os.path.isdir(model_dir):
        raise UsageError(f"{label}: its model dir {display(model_dir)} is gone; train the version again "
                         f"(mlpipeline -r --version {row['version']})")
    script = os.path.join(project.root, row["script"])
    if not os.path.isfile(script):
        kept = os.path.join(model_dir, os.path.basename(script))
        hint = f" (the model dir keeps the copy that ran: {display(kept)})" if os.path.isfile(kept) else ""
        raise UsageError(f"{label}: its script {row['script']} no longer exists; restore it{hint}")
    from ..script.loading import file_sha256

    if row.get("script_sha256") and file_sha256(script) != row["script_sha256"]:
        warnings.append(f"{row['script']} changed since run {row['id']}; predict uses the script as it is now")
    return script, model_dir, run_dir


def _numbers(folder: str) -> List[int]:
    try:
        return sorted(int(name) for name in os.listdir(folder) if name.isdigit())
    except FileNotFoundError:
        return []


def _new_folder(run_dir: str) -> Tuple[str, int]:
    """A new ``predictions/<n>`` (n one more than the last), claimed by mkdir so
    that two callers at once get two folders."""
    base = os.path.join(run_dir, PREDICTIONS)
    os.makedirs(base, exist_ok=True)
    number = (_numbers(base) or [0])[-1] + 1
    while True:
        folder = os.path.join(base, str(number))
        try:
            os.mkdir(folder)
            return folder, number
        except FileExistsError:
            number += 1


def list_predictions(run_dir: Optional[str]) -> List[Dict[str, Any]]:
    """The run's predictions, oldest first, without their results: number,
    folder, status (``running`` while its process lives, ``interrupted`` if it
    died unrecorded), the input's original name, when, how long, error, log."""
    if not run_dir:
        return []
    base = os.path.join(run_dir, PREDICTIONS)
    listed = []
    for number in _numbers(base):
        folder = os.path.join(base, str(number))
        request = _read_quietly(os.path.join(folder, REQUEST_FILE))
        record = _read_quietly(os.path.join(folder, RESULTS_FILE))
        status = record.get("status") if record else \
            (RunStatus.RUNNING if pid_alive(request.get("pid")) else RunStatus.INTERRUPTED).value
        listed.append({"prediction": number, "dir": folder, "status": status, "source": request.get("source"),
                       "input": os.path.join(folder, request["input"]) if request.get("input") else None,
                       "requested_at": request.get("requested_at"), "duration": record.get("duration"),
                       "error": record.get("error"), "log": run_log(folder)})
    return listed


def load_prediction(run_dir: str, number: int) -> Optional[Dict[str, Any]]:
    """Prediction ``number`` of the run in full (its request and its
    ``results.json``); None when there is no such prediction."""
    folder = os.path.join(run_dir, PREDICTIONS, str(int(number)))
    if not os.path.isdir(folder):
        return None
    request = _read_quietly(os.path.join(folder, REQUEST_FILE))
    return {**request, **(read_json(os.path.join(folder, RESULTS_FILE)) or {}), "prediction": int(number)}


def _read_quietly(path: str) -> Dict[str, Any]:
    try:
        data = read_json(path)
    except MLPipelineError:
        return {}
    return data if isinstance(data, dict) else {}
