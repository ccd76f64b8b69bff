"""How times and durations read in messages and listings."""
from __future__ import annotations

import datetime
from typing import Optional


def elapsed_text(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def iso(timestamp: Optional[float]) -> Optional[str]:
    """A moment as local ISO time, to the second (None stays None)."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")
