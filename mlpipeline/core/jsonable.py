"""Values as JSON, by one module's rules: ``jsonable`` for data shown or stored (results, API
answers: strict JSON, NaN and infinities null), ``plain_param`` for a version's parameters (what
its params sha256 is computed from: kept exactly, so ``-u`` compares with every earlier run)."""
from __future__ import annotations

import math
from typing import Any, Mapping


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as strict JSON data: numpy scalars and arrays become Python
    numbers and lists, NaN and infinities null, anything unknown its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _depth > 64:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    tolist = getattr(value, "tolist", None)  # numpy (and torch) scalars and arrays
    if callable(tolist):
        try:
            converted = tolist()
        except (TypeError, ValueError):
            converted = value
        if type(converted) is not type(value):
            return jsonable(converted, _depth + 1)
    isoformat = getattr(value, "isoformat", None)  # dates and times
    if callable(isoformat):
        try:
            return str(isoformat())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (int, float)):  # numbers.Number subclasses (Decimal, Fraction) without tolist
        try:
            return jsonable(float(value), _depth + 1)
        except (TypeError, ValueError, OverflowError):
            pass
    return str(value)


def plain_param(value: Any) -> Any:
    """A JSON-able stand-in for a parameter value (objects become their class name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_param(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_param(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return plain_param(value.item())
        except Exception:  # noqa: BLE001 - fall through to the class name
            pass
    return f"<{type(value).__qualname__}>"
