"""How a child ended, decided in one place: an exception raised by user code (in a version,
a search's ``propose``, a prediction) becomes a ``Failure`` — its kind, one line, the user's
own traceback — and a child process's exit becomes an ``Outcome``."""
from __future__ import annotations

import os
import traceback
from typing import Any, Dict, NamedTuple, Optional, Tuple

from ..core.errors import ScriptError
from ..core.layout import PACKAGE_DIR
from ..core.lifecycle import OOM, Outcome, RunStatus
from .system import VersionTimeout, signal_name

# mlpipeline's own frames between the runner and user code: left out of a user's traceback
OWN_FILES = {os.path.join(PACKAGE_DIR, *name.split("/"))
             for name in ("script/child.py", "script/execute.py", "script/specs.py", "script/results.py",
                          "script/predict_child.py", "script/search_child.py", "script/runspec.py", "script/plain.py",
                          "execution/inprocess.py")}


def user_traceback(exc: BaseException) -> str:
    """The traceback of a failure inside user code, without mlpipeline's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in OWN_FILES]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


class Failure(NamedTuple):
    status: RunStatus
    kind: str          # "script" (it did not load), "version" (its code raised), "timeout"
    error: str         # one line
    traceback: str
    reason: Optional[str] = None  # OOM: it ran out of memory (host or GPU)


def failure(exc: BaseException, who: str = "the version", memory_limit: Optional[int] = None,
            timeout: Optional[float] = None) -> Failure:
    """What ``exc``, raised out of user code run as ``who``, means: the one table every child and
    the in-process executor use."""
    if isinstance(exc, ScriptError):
        return Failure(RunStatus.FAILED, "script", str(exc), exc.details)
    if isinstance(exc, VersionTimeout):
        return Failure(RunStatus.TIMEOUT, "timeout", f"timed out after {timeout:g} s (the version's timeout); it "
                                                     f"was stopped inside this process", user_traceback(exc))
    if getattr(exc, "exit_status", None) is not None:  # a plain script's own non-zero exit (script.plain)
        return Failure(RunStatus.FAILED, "version", str(exc), user_traceback(exc))
    if isinstance(exc, SystemExit):
        return Failure(RunStatus.FAILED, "version", f"{who} called sys.exit({exc.code!r}) before finishing",
                       user_traceback(exc))
    if isinstance(exc, MemoryError):
        what = f"{who} ran out of memory (host memory: {type(exc).__name__}"
        what += f"; its --memory-limit is {memory_limit // (1 << 20)} MiB)" if memory_limit else ")"
        return Failure(RunStatus.FAILED, "version", what, user_traceback(exc), OOM)
    gpu = _device_memory(exc)
    if gpu is not None:
        return Failure(RunStatus.FAILED, "version", f"{who} ran out of memory ({gpu})", user_traceback(exc), OOM)
    return Failure(RunStatus.FAILED, "version", f"{type(exc).__name__}: {exc}", user_traceback(exc))


DEVICE_OOM_CLASSES = ("OutOfMemoryError", "ResourceExhaustedError")  # torch.cuda's, TensorFlow's


def _device_memory(exc: BaseException) -> Optional[str]:
    """Which memory a framework's out-of-memory error says ran out, with its first line (None: it is
    no out-of-memory error): PyTorch's ``OutOfMemoryError``, TensorFlow's ``ResourceExhaustedError``,
    or a message that says "out of memory" (``CUDA error: out of memory``)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose str() fails says nothing of memory
        text = ""
    lower = text.lower()
    named = any(cls.__name__ in DEVICE_OOM_CLASSES for cls in type(exc).__mro__)
    if not named and "out of memory" not in lower:
        return None
    which = ("GPU memory" if "cuda" in lower or "gpu" in lower or type(exc).__name__ == "OutOfMemoryError"
             else "device memory" if named else "memory")
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first if len(first) <= 200 else first[:197] + "..."
    return f"{which}: {type(exc).__name__}" + (f": {first}" if first else "")


def exit_outcome(code: int, final: Dict[str, Any], reported: bool,
                 killed: Optional[Tuple[RunStatus, str]] = None) -> Outcome:
    """A version's child process that exited with ``code`` after sending ``final`` (its
    ``result`` or ``error`` event, or nothing; ``reported``: it arrived), unless the runner ended
    it (``killed``: the status and reason it was ended with)."""
    packages = final.get("packages") or {}
    exit_code, signum = (code, None) if code >= 0 else (None, -code)
    if killed is not None:
        status, reason = killed
        return Outcome(status, exit_code=exit_code, signal=signum, error=reason, packages=packages)
    if final.get("type") == "result" and (code == 0 or reported):
        return Outcome(RunStatus.SUCCEEDED, result=final["result"], exit_code=0, packages=packages)
    if final.get("type") == "error":
        return Outcome(RunStatus.FAILED, exit_code=exit_code, signal=signum, error=final["error"],
                       packages=packages, traceback=final.get("traceback") or "",
                       script_error=final.get("kind") == "script",
                       reason=OOM if final.get("reason") == OOM else None)  # (what a child sends is checked)
    if signum is not None:
        return Outcome(RunStatus.FAILED, signal=signum, error=f"the version's process was killed by "
                                                              f"{signal_name(signum)}")
    return Outcome(RunStatus.FAILED, exit_code=code,
                   error=f"the version's process exited with code {code} before reporting a result")
