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
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .errors import MLPipelineError, ScriptError, UsageError, display
from .procs import MARK_PROJECT, MARK_RUN, MARK_VERSION, kill_marked, pid_alive
from .results import RESULTS_FILE, RICH_KEYS, fit, plain, read_json, rich_results, write_json

DEFAULT_TIMEOUT = 300.0  # seconds a prediction may take unless the caller says otherwise
PREDICTIONS = "predictions"
REQUEST_FILE = "request.json"
# As the runner's children: the current folder (the project root) leaves sys.path, so a json.py there cannot
# shadow the standard library; load_module puts the script's own folder first.
CHILD_MAIN = "import sys; del sys.path[0]; from mlpipeline.predict import main; sys.exit(main(sys.argv[1:]))"


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
    log_path, result_path = os.path.join(folder, "output.log"), os.path.join(folder, RESULTS_FILE)
    local_input = os.path.join(folder, "input" + os.path.splitext(input_path)[1])
    shutil.copyfile(input_path, local_input)
    request = {"run": row["id"], "script": row["script"], "version": row["version"],
               "source": os.path.basename(input_path), "input": os.path.basename(local_input),
               "requested_at": time.time(), "timeout": timeout}
    spec = {"script": script, "version": row["version"], "params": json.loads(row["params"] or "{}"),
            "model_dir": model_dir, "input": local_input, "output": result_path, "parent_pid": os.getpid()}
    mark = f"predict-{row['uid']}-{number}"
    env = {k: v for k, v in os.environ.items() if k not in (MARK_PROJECT, MARK_VERSION)}
    env.update({MARK_RUN: mark, "PYTHONUNBUFFERED": "1"})
    started = time.monotonic()
    with open(log_path, "ab") as log:
        for warning in warnings:
            log.write(f"mlpipeline: warning: {warning}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-c", CHILD_MAIN, json.dumps(spec)], cwd=project.root,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    timed_out = False
    try:
        write_json(os.path.join(folder, REQUEST_FILE), {**request, "pid": proc.pid})
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
    finally:
        if proc.returncode is None:  # timed out, or the caller was interrupted: the whole group goes
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group id is still ours
            except OSError:
                pass
            proc.wait()
        kill_marked(MARK_RUN, mark, wait=2.0)  # what it started outside its group ends with it
    label = f"run {row['id']} ({row['script']} {row['version']})"
    where = display(log_path)
    if timed_out:
        error = f"predict ran longer than {timeout:g} s (the timeout); its processes were killed"
        write_json(result_path, {"status": "timeout", "error": error, "duration": time.monotonic() - started})
        raise PredictError(f"{label}: {error}; see {where}, or give it longer (--timeout)")
    record = read_json(result_path)
    if not isinstance(record, dict) or record.get("status") not in ("succeeded", "failed"):
        code = proc.returncode
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        error = f"the predict process {how} before it saved a result"
        write_json(result_path, {"status": "failed", "error": error, "duration": time.monotonic() - started})
        raise PredictError(f"{label}: {error}; see {where}")
    if record["status"] == "failed":
        raise PredictError(f"{label}: predict failed: {record.get('error')}; see {where}",
                           details=str(record.get("traceback") or ""))
    return {"results": record.get("results") or {}, "prediction": number, "dir": folder, "log": log_path,
            "run": row["id"], "warnings": warnings + list(record.get("warnings") or [])}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _find(project: Any, run: Union[str, int, Mapping[str, Any]]) -> Tuple[Dict[str, Any], List[str]]:
    """(the run's row as a dict, warnings): resolved through a read-only reader."""
    from .queries import resolve_run
    from .reader import open_reader

    reader = open_reader(project.outputs_dir)
    if reader is None:
        raise UsageError("predict: no runs recorded yet in this project; train one with mlpipeline -r first")
    try:
        row = dict(run) if isinstance(run, Mapping) else resolve_run(reader, str(run))
        warnings: List[str] = []
        if row.get("model_dir"):
            later = reader.conn.execute("SELECT id, status FROM runs WHERE model_dir = ? AND id > ? "
                                        "ORDER BY id DESC LIMIT 1", (row["model_dir"], row["id"])).fetchone()
            if later is not None:
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
    if row.get("status") != "succeeded" or not row.get("version"):
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
    from .scripts import file_sha256

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
        status = record.get("status") if record else ("running" if pid_alive(request.get("pid")) else "interrupted")
        listed.append({"prediction": number, "dir": folder, "status": status, "source": request.get("source"),
                       "input": os.path.join(folder, request["input"]) if request.get("input") else None,
                       "requested_at": request.get("requested_at"), "duration": record.get("duration"),
                       "error": record.get("error"), "log": os.path.join(folder, "output.log")})
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


# -- the child's side --------------------------------------------------------------------------------------

def prediction_results(value: Any, warn: Callable[[str], None]) -> Dict[str, Any]:
    """What ``predict`` returned, as results: the table, graphs and text, plus
    ``metrics`` (its numbers) and ``values`` (its other entries, JSON-safe)."""
    from .execute import as_number, eval_metrics

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        metrics, text = eval_metrics(value)
        return {"metrics": plain(metrics)} if metrics else ({"text": text} if text else {})
    out = rich_results(value, warn)
    metrics, values = {}, {}
    for key, item in value.items():
        if key in RICH_KEYS:
            continue
        converted = plain(item)
        if isinstance(converted, (int, float)) and not isinstance(converted, bool):
            metrics[str(key)] = converted  # an int stays an int (a count, an id)
        elif as_number(item) is not None:
            metrics[str(key)] = plain(as_number(item))
        else:
            values[str(key)] = converted
    if metrics:
        out["metrics"] = metrics
    if values:
        out["values"] = values
    return out


def _predict(spec: Mapping[str, Any], warn: Callable[[str], None]) -> Dict[str, Any]:
    """Import the script as the runner does, prepare the run's version on its
    model dir (``pre_execution_hook`` in execution mode: no cleaning, no
    training) and call its ``predict``."""
    from .execute import call_pre_execution_hook
    from .scripts import get_model, load_module
    from .specs import version_for
    from .utils import ExecutionModeKeys

    script, model_dir = spec["script"], spec["model_dir"]
    module = load_module(script)
    model = get_model(module, script, only=spec["version"])
    predict = getattr(model, "predict", None)
    if not callable(predict):
        predict = getattr(module, "predict", None)
    if not callable(predict):
        raise ScriptError(f"{display(script)}: defines no predict(input_path, model_dir); add it to the MODEL's "
                          f"class or to the script, returning a results dict or numbers")
    version = version_for(model, spec["version"], spec["params"])
    model._mlp_script_path, model._mlp_model_dir, model.name = script, model_dir, display(script)
    call_pre_execution_hook(model, version, model_dir, ExecutionModeKeys.TRAIN)
    return prediction_results(predict(spec["input"], model_dir), warn)


def main(argv: List[str]) -> int:
    """Child process entry (``CHILD_MAIN``): predict, save the outcome in the
    spec's output file, exit 0 only on success."""
    from .child import _die_with_parent, _exit_with_parent, user_traceback

    spec = json.loads(argv[0])
    parent = spec.get("parent_pid")
    if parent:
        import threading

        _die_with_parent(parent)
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    warnings: List[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        print(f"mlpipeline: warning: {message}", file=sys.stderr, flush=True)

    started = time.monotonic()
    record: Dict[str, Any]
    try:
        results = _predict(spec, warn)
        for note in fit({"prediction": results}):
            warn(note)
        record = {"status": "succeeded", "results": results}
    except ScriptError as exc:
        record = {"status": "failed", "error": str(exc), "traceback": exc.details}
    except SystemExit as exc:
        record = {"status": "failed", "error": f"predict called sys.exit({exc.code!r})",
                  "traceback": user_traceback(exc)}
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then the process exits non-zero
        record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": user_traceback(exc)}
    if record.get("traceback"):
        print(record["traceback"].rstrip(), file=sys.stderr, flush=True)
    if record["status"] == "failed":
        print(f"mlpipeline: predict failed: {record['error']}", file=sys.stderr, flush=True)
    record.update(warnings=warnings, duration=time.monotonic() - started)
    write_json(spec["output"], record)
    return 0 if record["status"] == "succeeded" else 1
