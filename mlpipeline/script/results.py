"""Rich results: the table, graphs and text a version's ``evaluate_model`` (or
a script's ``predict``) may return beside its metrics.

``{"data": rows, "columns": names, "graphs": [plotly figure dicts], "text": str}``
(any subset, mixed with numeric metrics or not). Metrics go to the ledger; these
go to a JSON file next to the run's output (``<run_dir>/results.json``), made
JSON-safe here and capped in size. Plain Python only: every version's child
may import this module.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..core.jsonable import jsonable

RICH_KEYS = ("data", "columns", "graphs", "text")
RESULTS_FILE = "results.json"
MAX_BYTES = 20 * 1024 * 1024  # one results file at most; beyond, the table is cut


def has_rich(value: Any) -> bool:
    """Does ``value`` (what a hook returned) carry a table, graphs or text?"""
    return isinstance(value, Mapping) and any(key in value for key in RICH_KEYS)


def _table(data: Any, columns: Any, warn: Callable[[str], None]) -> Tuple[Optional[List[str]], List[List[Any]]]:
    """(columns, rows as lists) from rows as lists or dicts (a DataFrame and a
    2-D array are taken too)."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a pandas DataFrame, without importing pandas
        if columns is None:
            columns = [str(c) for c in data.columns]
        data = data.to_numpy().tolist()
    elif hasattr(data, "tolist") and not isinstance(data, (list, tuple)):
        data = data.tolist()
    if isinstance(columns, str) or (columns is not None and not isinstance(columns, (list, tuple))):
        columns = jsonable(columns)
        columns = columns if isinstance(columns, list) else [columns]
    if isinstance(data, Mapping):  # {column: [values]}: one column per key
        cells = [jsonable(v) for v in data.values()]
        cells = [v if isinstance(v, list) else [v] for v in cells]
        length = max((len(c) for c in cells), default=0)
        rows = [[c[i] if i < len(c) else None for c in cells] for i in range(length)]
        return [str(c) for c in (data if columns is None else columns)], rows
    if not isinstance(data, (list, tuple)):
        warn(f"'data' ({type(data).__name__}) is not a list of rows; the table is left out")
        return None, []
    names: Optional[List[str]] = None if columns is None else [str(c) for c in jsonable(list(columns))]
    if data and all(isinstance(row, Mapping) for row in data):
        if names is None:
            seen: Dict[str, None] = {}
            for row in data:
                seen.update((str(k), None) for k in row)
            names = list(seen)
        keyed = [{str(k): v for k, v in row.items()} for row in data]
        return names, [[jsonable(row.get(name)) for name in names] for row in keyed]
    rows = [jsonable(list(row)) if isinstance(row, (list, tuple)) else [jsonable(row)] for row in data]
    if names is None and rows:
        names = [str(i) for i in range(max(len(r) for r in rows))]
    return names, rows


def _graph(graph: Any) -> Optional[Dict[str, Any]]:
    for method in ("to_plotly_json", "to_dict"):  # a plotly Figure
        convert = getattr(graph, method, None)
        if callable(convert) and not isinstance(graph, Mapping):
            graph = convert()
            break
    return jsonable(graph) if isinstance(graph, Mapping) else None


def rich_results(value: Mapping, warn: Callable[[str], None]) -> Dict[str, Any]:
    """The table, graphs and text of ``value``, JSON-safe. What cannot be kept
    is left out and ``warn`` is told why (one line each)."""
    out: Dict[str, Any] = {}
    if value.get("data") is not None:
        columns, rows = _table(value["data"], value.get("columns"), warn)
        if columns is not None:
            out["columns"] = columns
            out["data"] = rows
    elif value.get("columns") is not None:
        out["columns"] = [str(c) for c in jsonable(list(value["columns"]))]
    graphs = value.get("graphs")
    if graphs is not None:
        listed = graphs if isinstance(graphs, (list, tuple)) else [graphs]
        kept = []
        for i, graph in enumerate(listed):
            converted = _graph(graph)
            if converted is None:
                warn(f"graphs[{i}] ({type(graph).__name__}) is not a plotly figure or its dict; left out")
            else:
                kept.append(converted)
        if kept:
            out["graphs"] = kept
    if value.get("text") is not None:
        out["text"] = str(value["text"])
    return out


def describe(results: Mapping[str, Any]) -> str:
    """One split's results in a few words: ``table 3×2, 1 graph, text``."""
    parts = []
    if "data" in results:
        parts.append(f"table {len(results['data'])}×{len(results.get('columns') or [])}")
    if results.get("graphs"):
        count = len(results["graphs"])
        parts.append(f"{count} graph{'' if count == 1 else 's'}")
    if "text" in results:
        parts.append("text")
    return ", ".join(parts) or "nothing"


def _size(data: Any) -> int:
    return len(json.dumps(data, allow_nan=False, separators=(",", ":")))


def fit(results: Dict[str, Dict[str, Any]], limit: int = MAX_BYTES) -> List[str]:
    """Cut ``results`` (``{split: results}``, changed in place) to at most
    ``limit`` bytes of JSON: the tables' last rows go first, then graphs, then
    text. Returns what was cut, one line each; a cut table records
    ``rows_total`` (its length as returned)."""
    size = _size(results)
    for _ in range(30):
        tables = [part for part in results.values() if part.get("data")]
        if size <= limit or not tables:
            break
        part = max(tables, key=lambda p: _size(p["data"]))
        rows = part["data"]
        part.setdefault("rows_total", len(rows))
        part["data"] = rows[:max(0, min(len(rows) - 1, int(len(rows) * limit / size * 0.9)))]
        size = _size(results)
    why = f"the results would exceed {limit >> 20} MB" if limit >= 1 << 20 else f"the results would exceed {limit} bytes"
    notes = [f"{split}: table cut to its first {len(part['data'])} of {part['rows_total']} rows: {why}"
             for split, part in results.items() if "rows_total" in part]
    for what in ("graphs", "text"):
        for split, part in results.items():
            if size > limit and what in part:
                del part[what]
                size = _size(results)
                notes.append(f"{split}: its {what} left out: {why}")
    return notes


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as strict JSON to ``path`` at once (a temp file, then
    ``os.replace``): a reader sees the old file or the new one, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, allow_nan=False, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise


def read_json(path: str) -> Optional[Any]:
    """A JSON file written by ``write_json``; None when it is not there."""
    from ..core.errors import MLPipelineError

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MLPipelineError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise MLPipelineError(f"{path}: not valid JSON ({exc}); delete it or run the version again") from None


def save_results(run_dir: str, results: Dict[str, Dict[str, Any]], limit: int = MAX_BYTES) -> List[str]:
    """Write a run's ``{"train": ..., "test": ...}`` to ``<run_dir>/results.json``,
    cut to ``limit`` bytes; returns what was cut (see ``fit``)."""
    notes = fit(results, limit)
    write_json(os.path.join(run_dir, RESULTS_FILE), results)
    return notes


def load_results(run_dir: Optional[str]) -> Optional[Dict[str, Any]]:
    """A run's rich results, ``{"train": {...}, "test": {...}}`` (only the splits
    whose ``evaluate_model`` returned some); None when it saved none."""
    if not run_dir:
        return None
    data = read_json(os.path.join(run_dir, RESULTS_FILE))
    return data if isinstance(data, dict) else None
