"""Listings as a table, CSV or JSON, from one row generator.

JSON keeps the ledger's values as they are (numbers, nested dicts); CSV
flattens nested values to JSON text; a table shortens and formats them for a
terminal, in colour only when stdout is a terminal and NO_COLOR is unset.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..core.jsonable import jsonable

FORMATS = ("table", "csv", "json")
STATUS_COLOURS = {"succeeded": "32", "failed": "31", "timeout": "31", "interrupted": "33",
                  "cancelled": "33", "running": "36", "queued": "36"}


def _json(data: Any) -> str:
    """Strict JSON (RFC 8259): non-finite numbers become null."""
    return json.dumps(jsonable(data), indent=2, default=str, allow_nan=False)


def render(rows: Iterable[Dict[str, Any]], columns: Sequence[str], fmt: str = "table",
           width: Optional[int] = None) -> str:
    """Rows as a table (fitting ``width`` characters, default the terminal's;
    0 for no limit), CSV or JSON."""
    rows = list(rows)
    if fmt == "json":
        return _json([{c: row.get(c) for c in columns} for row in rows])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        return buffer.getvalue().rstrip("\n")
    import tabulate as tabulate_module  # only when a table is drawn: keeps --help light

    tabulate_module.MIN_PADDING = 0  # columns exactly as wide as _fit made them (2 spaces between them)
    tabulate = tabulate_module.tabulate

    colour = use_colour()
    limit = (0 if WIDE else terminal_width()) if width is None else width
    texts = [[_cell(_human(c, row.get(c)), 10_000, False) for c in columns] for row in rows]
    widths = _fit([max([len(c)] + [len(r[i]) for r in texts]) for i, c in enumerate(columns)], columns, limit)
    table = [[_cut(text, widths[i], colour and columns[i] == "status") for i, text in enumerate(r)] for r in texts]
    return tabulate(table, headers=[_cut(c, widths[i], False) for i, c in enumerate(columns)], tablefmt="simple",
                    disable_numparse=True)


WIDE = False  # --wide: tables keep every character (set by the CLI)


def terminal_width() -> int:
    """How wide a table may be: $COLUMNS, else the terminal's width; 0 (no
    limit) when the output is not a terminal."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if _isatty():
        return shutil.get_terminal_size((120, 24)).columns
    return 0


def _fit(widths: List[int], columns: Sequence[str], limit: int) -> List[int]:
    """Column widths that fit ``limit`` characters (2 between columns): the
    widest columns give way first, none below its header or 6 characters."""
    if not limit:
        return widths
    widths = list(widths)
    floor = [min(w, max(6, len(c))) for w, c in zip(widths, columns)]
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        i = max(range(len(widths)), key=lambda k: widths[k] - floor[k])
        if widths[i] <= floor[i]:
            break  # as narrow as it goes; --wide or CSV shows everything
        widths[i] -= 1
    return widths


def _cut(text: str, width: int, colour: bool) -> str:
    if len(text) > width:
        text = text[: max(1, width - 1)] + "…"
    if colour and text in STATUS_COLOURS:
        text = f"\x1b[{STATUS_COLOURS[text]}m{text}\x1b[0m"
    return text


def render_record(record: Dict[str, Any], fmt: str = "table") -> str:
    """One object (``show``): JSON as is, CSV as field,value pairs, a table as
    aligned key/value lines."""
    if fmt == "json":
        return _json(record)
    flat = list(_flatten(record))
    if fmt == "csv":
        return render(({"field": k, "value": v} for k, v in flat), ("field", "value"), "csv")
    width = max((len(k) for k, _ in flat), default=0) + 1
    return "\n".join(f"{k + ':':{width}} {_cell(_human(k, v), 200, False)}" for k, v in flat)


def _human(column: str, value: Any) -> Any:
    """Table-only display of a few columns whose raw values read badly."""
    if column == "duration" and isinstance(value, (int, float)):
        seconds = float(value)
        if seconds < 60:
            return f"{seconds:.1f}s"
        minutes, secs = divmod(int(round(seconds)), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
    return value


def _flatten(value: Any, prefix: str = "") -> Iterable:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def use_colour() -> bool:
    return _isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _cell(value: Any, width: int, colour: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, dict):
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    text = " ".join(text.split()) if "\n" in text else text
    if len(text) > width:
        text = text[: width - 1] + "…"
    if colour and text in STATUS_COLOURS:
        text = f"\x1b[{STATUS_COLOURS[text]}m{text}\x1b[0m"
    return text


def _isatty() -> bool:
    try:
        return os.isatty(1)
    except (OSError, ValueError):
        return False
