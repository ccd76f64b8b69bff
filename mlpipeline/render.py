"""Listings as a table, CSV or JSON, from one row generator."""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Dict, Iterable, List, Sequence

FORMATS = ("table", "csv", "json")


def render(rows: Iterable[Dict[str, Any]], columns: Sequence[str], fmt: str = "table") -> str:
    rows = list(rows)
    if fmt == "json":
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return buffer.getvalue().rstrip("\n")
    from tabulate import tabulate  # heavy-ish: only when a table is drawn

    table = [[_cell(row.get(c)) for c in columns] for row in rows]
    return tabulate(table, headers=list(columns), tablefmt="simple", disable_numparse=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    width = max(20, min(60, os.get_terminal_size(1).columns // 3)) if _isatty() else 60
    return text if len(text) <= width else text[: width - 1] + "…"


def _isatty() -> bool:
    try:
        return os.isatty(1)
    except (OSError, ValueError):
        return False
