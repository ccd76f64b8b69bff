"""This machine's GPUs as NVML sees them (the nvidia-ml-py package, ``import pynvml``): ids, names, UUIDs,
memory, utilisation and the compute processes on each — read when the local executor places a version.

No pynvml, no driver, or an NVML error: ``read_gpus`` raises ``NoNvml`` and the executor falls back to the
plain ``--gpus`` behaviour with one warning. Ids are NVML's indices, which are PCI bus order: versions get
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA counts them the same way.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


class NoNvml(Exception):
    """NVML cannot be asked (the message says why, in one line). ``missing``: no nvidia-ml-py at all (a machine
    without GPUs, most likely: nothing to warn about where nobody asked for GPUs)."""

    def __init__(self, message: str, missing: bool = False):
        super().__init__(message)
        self.missing = missing


NOT_AVAILABLE = (1 << 64) - 1  # NVML's usedGpuMemory when the driver cannot say (NVML_VALUE_NOT_AVAILABLE)


@dataclass
class Gpu:
    index: int
    uuid: str
    name: str
    total: int                   # bytes
    used: int                    # bytes, every process's
    util: Optional[int] = None   # percent (None: the board does not say)
    processes: Optional[List[Tuple[int, int]]] = field(default_factory=list)  # (pid, bytes); None: not listed


_lock = threading.Lock()
_started: List[Any] = []  # the pynvml module once nvmlInit succeeded


def _nvml() -> Any:
    with _lock:
        if _started:
            return _started[0]
        try:
            import pynvml
        except ImportError:
            raise NoNvml("the nvidia-ml-py package is not installed (pip install 'mlpipeline[gpu]')",
                         missing=True) from None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            raise NoNvml(f"NVML did not start ({_said(exc)})") from None
        _started.append(pynvml)
        return pynvml


def _said(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_gpus() -> List[Gpu]:
    """Every GPU NVML counts, in its order; NoNvml when it cannot be asked. A query a GPU does not support
    (utilisation on some boards, the process list) leaves that field None instead of failing the reading."""
    nvml = _nvml()
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpu = Gpu(index, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)),
                      int(memory.total), int(memory.used))
            try:
                gpu.util = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:  # noqa: BLE001 - not supported here: no figure
                pass
            try:
                gpu.processes = [(int(p.pid), int(used) if isinstance(used, int) and 0 <= used < NOT_AVAILABLE else 0)
                                 for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                                 for used in [getattr(p, "usedGpuMemory", None)]]
            except Exception:  # noqa: BLE001 - not supported here: nobody is known to hold it
                gpu.processes = None
            found.append(gpu)
        return found
    except NoNvml:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever NVML raised, this reading is lost
        raise NoNvml(f"an NVML query failed ({_said(exc)})") from None


def driver_info() -> Dict[str, Any]:
    """The NVIDIA driver, the CUDA version it supports and the GPUs' names, for a run's environment; empty
    where NVML cannot say (no nvidia-ml-py, no driver: nothing to record)."""
    try:
        nvml = _nvml()
    except NoNvml:
        return {}
    found: Dict[str, Any] = {}
    try:
        found["driver"] = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = int(nvml.nvmlSystemGetCudaDriverVersion())
        found["cuda_driver"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
    except Exception:  # noqa: BLE001 - an older driver, or a fake: what was read is kept
        pass
    try:
        found["devices"] = ", ".join(gpu.name for gpu in read_gpus())
    except NoNvml:
        pass
    return found
