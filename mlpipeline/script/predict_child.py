"""A prediction's child process (``run.predict`` starts it): import the script as the runner
does, prepare the run's version on its model dir and call its ``predict``; the outcome goes to
the file the caller named."""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Dict, List, Mapping

from ..core.errors import ScriptError, display
from ..core.lifecycle import RunStatus
from ..proc.outcome import failure
from ..proc.system import watch_parent
from ..core.jsonable import jsonable
from .results import RICH_KEYS, fit, rich_results, write_json


def prediction_results(value: Any, warn: Callable[[str], None]) -> Dict[str, Any]:
    """What ``predict`` returned, as results: the table, graphs and text, plus
    ``metrics`` (its numbers) and ``values`` (its other entries, JSON-safe)."""
    from .execute import as_number, eval_metrics

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        metrics, text = eval_metrics(value)
        return {"metrics": jsonable(metrics)} if metrics else ({"text": text} if text else {})
    out = rich_results(value, warn)
    metrics, values = {}, {}
    for key, item in value.items():
        if key in RICH_KEYS:
            continue
        converted = jsonable(item)
        if isinstance(converted, (int, float)) and not isinstance(converted, bool):
            metrics[str(key)] = converted  # an int stays an int (a count, an id)
        elif as_number(item) is not None:
            metrics[str(key)] = jsonable(as_number(item))
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
    from .loading import get_model, load_module
    from .modes import ExecutionModeKeys
    from .specs import version_for

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
    spec = json.loads(argv[0])
    if spec.get("parent_pid"):
        watch_parent(spec["parent_pid"])
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
        record = {"status": RunStatus.SUCCEEDED.value, "results": results}
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then the process exits non-zero
        failed = failure(exc, "predict")
        record = {"status": RunStatus.FAILED.value, "error": failed.error, "traceback": failed.traceback}
    if record.get("traceback"):
        print(record["traceback"].rstrip(), file=sys.stderr, flush=True)
    if record["status"] == RunStatus.FAILED.value:
        print(f"mlpipeline: predict failed: {record['error']}", file=sys.stderr, flush=True)
    record.update(warnings=warnings, duration=time.monotonic() - started)
    write_json(spec["output"], record)
    return 0 if record["status"] == RunStatus.SUCCEEDED.value else 1
