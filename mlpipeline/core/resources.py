"""What a version needs to run: GPUs (none, a fraction of one, or several), free GPU memory, CPUs and
memory — declared with ``resources={...}`` on ``Versions`` or ``add_version``, defaulted from the command
line, and read by every backend (the local GPU placement, Ray's ``num_gpus``/``num_cpus``/``memory``)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

KEY = "resources"  # the version parameter that holds a declaration (not compared by -u: it is not what trains)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_EXAMPLE = "e.g. resources={'gpus': 0.5, 'gpu_memory': '10G', 'cpus': 2, 'memory': '16G'}"


@dataclass(frozen=True)
class Wait:
    """Why a version cannot start now (``never``: nor ever, where it would run)."""

    reason: str
    never: bool = False


class ResourceError(ValueError):
    """A declaration that cannot be read: the message names the field and the fix."""


def parse_size(value: Any) -> Optional[int]:
    """Bytes from ``20G``, ``512M``, ``1.5GiB``, ``4096`` (bytes) — None when it is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value >= 0 and math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
    try:
        size = float(number) * _UNITS[unit]
    except ValueError:
        return None
    return int(size) if size >= 0 and math.isfinite(size) else None


def shown_size(size: float) -> str:
    """``size`` bytes as people read it: 512 MiB, 20 GiB, 1.5 GiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{int(size)} B"


@dataclass(frozen=True)
class Resources:
    """A version's needs. ``gpus``: 0, a fraction below 1 (shares a GPU) or a whole number; ``gpu_memory``:
    bytes each of its GPUs must have free; ``cpus``; ``memory``: bytes of RAM."""

    gpus: float = 0.0
    gpu_memory: int = 0
    cpus: float = 0.0
    memory: int = 0

    @property
    def whole_gpus(self) -> int:
        """How many GPUs it gets ids of: a fraction shares one."""
        return int(self.gpus) if self.gpus >= 1 else (1 if self.gpus > 0 else 0)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v})

    def shown(self) -> str:
        parts = []
        if self.gpus:
            parts.append(f"{self.gpus:g} GPU" + ("s" if self.gpus > 1 else ""))
        if self.gpu_memory:
            parts.append(f"{shown_size(self.gpu_memory)} free GPU memory")
        if self.cpus:
            parts.append(f"{self.cpus:g} CPU" + ("s" if self.cpus > 1 else ""))
        if self.memory:
            parts.append(f"{shown_size(self.memory)} memory")
        return ", ".join(parts) or "nothing"


def resources_of(declared: Any, gpus: Optional[float] = None, cpus: Optional[float] = None) -> Resources:
    """A version's ``resources`` parameter read and checked (ResourceError names what is wrong), with the
    command line's ``--gpus-per-version``/``--cpus-per-version`` (``gpus``, ``cpus``) where it is silent."""
    if declared is None:
        declared = {}
    if not isinstance(declared, Mapping):
        raise ResourceError(f"resources={declared!r} is not a dict; {_EXAMPLE}")
    unknown = sorted(set(declared) - {"gpus", "gpu_memory", "cpus", "memory"})
    if unknown:
        raise ResourceError(f"resources has no field {unknown[0]!r} (fields: gpus, gpu_memory, cpus, memory); {_EXAMPLE}")
    want_gpus = declared.get("gpus", gpus if gpus is not None else 0)
    if isinstance(want_gpus, bool) or not isinstance(want_gpus, (int, float)) or not math.isfinite(want_gpus) \
            or want_gpus < 0 or (want_gpus > 1 and want_gpus != int(want_gpus)):
        raise ResourceError(f"resources gpus={want_gpus!r}: give 0, a fraction below 1 (0.5 shares a GPU) or a "
                            f"whole number of GPUs")
    want_cpus = declared.get("cpus", cpus if cpus is not None else 0)
    if isinstance(want_cpus, bool) or not isinstance(want_cpus, (int, float)) or not math.isfinite(want_cpus) \
            or want_cpus < 0:
        raise ResourceError(f"resources cpus={want_cpus!r}: give a number of CPUs, e.g. 2")
    sizes = {}
    for field in ("gpu_memory", "memory"):
        raw = declared.get(field, 0)
        size = parse_size(raw)
        if size is None:
            raise ResourceError(f"resources {field}={raw!r}: give a size such as '20G' or '512M'")
        sizes[field] = size
    if sizes["gpu_memory"] and not want_gpus:
        raise ResourceError("resources gpu_memory without gpus: add gpus (e.g. 'gpus': 1) or drop gpu_memory")
    return Resources(float(want_gpus), sizes["gpu_memory"], float(want_cpus), sizes["memory"])
