"""Data fingerprints: what each loader read, and the registry of the loaders this process created.

A loader registers ``<kind>:<sha256>`` when it is created, with the model
script whose code created it; ``execute.run_version`` asks for the version's
fingerprint (``_table.version_fingerprint``) and the runner records it on the run
(``runs.data_fingerprint``).
"""
from __future__ import annotations

import hashlib
import sys
from typing import Any, Iterable, List, Optional, Tuple

import numpy as np

_REGISTRY: List[Tuple[str, Optional[str]]] = []  # (fingerprint, the model script that created the loader)


def _creating_script() -> Optional[str]:
    """The model script (as the runner loaded it) whose code is creating a loader, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__mlpipeline_script__"):
            return frame.f_globals.get("__file__")
        frame = frame.f_back  # type: ignore[assignment]
    return None


def combine_fingerprints(fingerprints: Iterable[Optional[str]]) -> Optional[str]:
    """One stable fingerprint for several: a single one as it is (``csv:<sha256>``);
    several as ``<kinds>:<sha256 of the sorted fingerprints>`` (``array+csv:...``); None for none."""
    unique = sorted({f for f in fingerprints if f})
    if len(unique) <= 1:
        return unique[0] if unique else None
    kinds = "+".join(sorted({f.split(":", 1)[0] for f in unique}))
    return f"{kinds}:{hashlib.sha256(chr(10).join(unique).encode()).hexdigest()}"


def run_fingerprint() -> Optional[str]:
    """The combined fingerprint of every loader created in this process (None when there was none)."""
    return combine_fingerprints(f for f, _ in _REGISTRY)


def hash_array(digest: Any, name: str, values: np.ndarray) -> None:
    digest.update(f"{name}\0{values.dtype.str}\0{values.shape}\0".encode())
    if values.dtype.kind == "O":
        digest.update("\x1f".join(map(repr, values.tolist())).encode())
    else:
        digest.update(np.ascontiguousarray(values).tobytes())


def register(fingerprint: str) -> None:
    """Note a loader's fingerprint, with the model script creating it."""
    _REGISTRY.append((fingerprint, _creating_script()))


def registered(since: int = 0, script: Optional[str] = None) -> List[str]:
    """The fingerprints registered from entry ``since`` on (of loaders ``script`` created, if given)."""
    return [f for f, owner in _REGISTRY[since:] if script is None or owner == script]


def registry_size() -> int:
    """A mark for ``registered(since=...)``."""
    return len(_REGISTRY)
