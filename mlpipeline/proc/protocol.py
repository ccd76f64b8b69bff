"""The events a version's child sends the runner, one JSON object a line, and how the runner
takes them: every field checked where it enters (``deliver``, ``check_result``), so one
version's bad event fails that version alone — never the runner.

Events: ``metrics`` (``packed``: the rows ``pack_rows`` packed, or ``rows``:
[name, value, step, split] lists), ``log`` (``message``, ``level``),
``output`` (``record``: a value ``save_output`` stored), ``data`` (``fingerprint``: what its
data loaders read), and the last one, ``result`` (``result``, ``packages``) or ``error``
(``error``, ``traceback``, ``kind``, ``packages``)."""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, Mapping, Optional

from ..core.layout import CACHE_DIR, OUTPUT_EXTENSIONS
from ..core.lifecycle import STEP_RANGE, Sink, metric_row, unpack_rows

MAX_PARAMS = 1 << 20  # characters of the parameters a version adds to its record
MAX_EVENT_LINE = 64 << 20  # bytes of one event line (log messages are cut to 1 MiB where they are sent)
RECIPE = ("script_sha256", "code_fingerprint", "params_sha256", "data_fingerprint")  # what produced an output


class BadEvent(ValueError):
    """An event from a version's child that the runner cannot use."""


def deliver(event: Dict[str, Any], sink: Sink) -> None:
    """Hand one event of a version's child to its sink, every field checked
    where it enters the runner: BadEvent (or BadMetric) names what is wrong,
    and the caller fails that version alone."""
    kind = event.get("type")
    if kind == "metrics":
        if "packed" in event:  # what a child's reporter sends (pack_rows)
            sink.metrics(unpack_rows(event["packed"]))
            return
        rows = event.get("rows")
        if not isinstance(rows, list):
            raise BadEvent("a metrics event without a list of rows")
        checked = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 4:
                raise BadEvent(f"a metric row {shown(row)} is not [name, value, step, split]")
            checked.append(metric_row(*row))
        sink.metrics(checked)
    elif kind == "log":
        message, level = event.get("message"), event.get("level", logging.INFO)
        if type(message) is not str or type(level) is not int:
            raise BadEvent("a log event needs a text message and a whole-number level")
        sink.log(message, level)
    elif kind == "output":
        record = event.get("record")
        row = output_row(record) if isinstance(record, dict) else None
        if row is None:
            raise BadEvent(f"an output event whose record {shown(record)} is not one save_output sends")
        sink.output(row)
    elif kind == "data":
        if type(event.get("fingerprint")) is not str or len(event["fingerprint"]) > 200:
            raise BadEvent("a data event without a fingerprint")
        sink.data(event["fingerprint"])
    elif kind == "params":
        params = event.get("params")
        if not isinstance(params, dict) or len(json.dumps(params)) > MAX_PARAMS:
            raise BadEvent(f"a params event whose params {shown(params)} are not an object of at most "
                           f"{MAX_PARAMS} characters")
        sink.params(params)
    elif kind not in ("result", "error"):  # those two end the version: ChildRun keeps them
        raise BadEvent(f"an event of unknown type {shown(kind)}")


def check_result(result: Any) -> Dict[str, Any]:
    """A child's reported result, checked as ``deliver`` checks events."""
    if not isinstance(result, dict):
        raise BadEvent(f"a result {shown(result)} that is not an object")
    for split in ("eval_train", "eval_test"):
        values = result.get(split) or {}
        if not isinstance(values, dict):
            raise BadEvent(f"a result whose {split} is not an object")
        for name, value in values.items():
            metric_row(name, value)
    steps = result.get("steps")
    if steps is not None and (type(steps) is not int or not STEP_RANGE[0] <= steps <= STEP_RANGE[1]):
        raise BadEvent(f"a result whose steps {shown(steps)} is not a whole number")
    for key in ("eval_train_text", "eval_test_text", "data_fingerprint"):
        if result.get(key) is not None and type(result[key]) is not str:
            raise BadEvent(f"a result whose {key} is not text")
    return result


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def output_row(record: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``outputs`` fields of an ``output`` event's record (script and version are the run's);
    None for a malformed one."""
    sha, path, kind = record.get("sha256"), record.get("path"), record.get("kind")
    if not (isinstance(sha, str) and len(sha) == 64 and isinstance(record.get("name"), str)
            and kind in OUTPUT_EXTENSIONS and path == f"{CACHE_DIR}/{sha[:2]}/{sha}.{OUTPUT_EXTENSIONS[kind]}"):
        return None
    return {key: record.get(key) for key in ("name", "sha256", "path", "kind", "summary", "size") + RECIPE}
