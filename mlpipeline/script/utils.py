"""``mlpipeline.utils``: the original 1.x names model scripts import, kept importable.

``log`` sends a script's lines to the running version (terminal, and the
``log-<host>`` file in execution mode); outside a runner it behaves as the
original's: the ``mlp`` logger on stdout, and the file given to ``set_logger``.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from datetime import datetime
from typing import Any, FrozenSet, List, Optional

from . import report as _report
from .modes import ExecutionModeKeys, ModeKeys
from .versions import AttrDict, Version, Versions, version_parameters

__all__ = [
    "ExecutionModeKeys", "ModeKeys", "Version", "VersionLog", "Versions",
    "add_script_dir_to_PATH", "console_colors", "copy_related_files", "log", "log_special_tokens",
    "set_logger", "use_mlflow", "version_parameters", "is_no_log",
]

LOGGER: Optional[logging.Logger] = None

# 1.x's flag (True there when mlflow imported; its runner logged to outputs/mlruns). Here the runner logs a
# run to MLflow itself, from outside the version's process, when [MLFLOW] tracking_uri is set (2.x's way), so a
# script's own mlflow calls would find no active run: scripts that check this flag keep skipping them.
use_mlflow = False


class console_colors:  # noqa: N801 - the original's name
    RESET = "\033[0m"
    BOLD = "\033[1m"
    BLACK_FG = "\033[30m"
    RED_FG = "\033[31m"
    GREEN_FG = "\033[32m"
    YELLOW_FG = "\033[33m"
    BLUE_FG = "\033[34m"
    MEGENTA_FG = "\033[35m"
    CYAN_FG = "\033[36m"
    WHITE_FG = "\033[37m"
    BLACK_BG = "\033[40m"
    RED_BG = "\033[41m"
    GREEN_BG = "\033[42m"
    YELLOW_BG = "\033[43m"
    BLUE_BG = "\033[44m"
    MEGENTA_BG = "\033[45m"
    CYAN_BG = "\033[46m"
    WHITE_BG = "\033[47m"


log_special_tokens = AttrDict(
    MODE_RUNNING="RUNNING MODEL TRAINING",
    MODE_TESTING="TESTING",
    MODEL_TRAINED="Model trained",
    MODEL_EVALED="Model evaluation complete",
    SESSION_STARTED="=====================ML-Pipeline session started",
    SESSION_ENDED="=====================ML-Pipeline Session ended",
)


class VersionLog:
    """Which versions of a script ran (the original's history bookkeeping, kept for scripts that use it)."""

    EXECUTED = 0
    EXECUTING = 1
    NOT_EXECUTED = 2

    def __init__(self) -> None:
        self.executed_versions: List[Any] = []
        self.executing_version: Any = None
        self.executing_v_time = 0.0

    def executed(self, version: Any) -> int:
        if version is self.executing_version:
            return self.EXECUTING
        return self.EXECUTED if version in self.executed_versions else self.NOT_EXECUTED

    def addExecutedVersion(self, version_name: Any) -> None:  # noqa: N802
        self.executed_versions.append(version_name)

    def moveExecutingToExecuted(self) -> None:  # noqa: N802
        self.addExecutedVersion(self.executing_version)
        self.executing_version = None
        self.executing_v_time = 0.0

    def addExecutingVersion(self, version_name: Any, train_start_time: float) -> None:  # noqa: N802
        self.executing_version = version_name
        self.executing_v_time = train_start_time

    def clean(self) -> None:
        self.executed_versions = []
        self.executing_version = None
        self.executing_v_time = 0.0


def set_logger(test_mode: bool = True, no_log: bool = True, log_file: Optional[str] = None) -> logging.Logger:
    """Set up the ``mlp`` logger ``log`` uses outside a runner: stdout, plus
    ``log_file`` when neither ``test_mode`` nor ``no_log``. Returns it."""
    global LOGGER
    formatter = logging.Formatter(
        fmt=(f"%(asctime)s:{console_colors.BOLD}{console_colors.BLUE_FG}%(levelname)s:{console_colors.GREEN_FG}"
             f"%(name)s{console_colors.RESET}- %(message)s"),
        datefmt="%Y-%m-%d %H:%M:%S")
    logger = logging.getLogger("mlp")
    logger.handlers = []
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.TEST_MODE = test_mode  # type: ignore[attr-defined]
    logger.NO_LOG = no_log  # type: ignore[attr-defined]
    logger.LOG_FILE = log_file  # type: ignore[attr-defined]
    LOGGER = logger
    return logger


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _under_runner() -> bool:
    """True while mlpipeline runs or loads a script (a version's reporter is
    installed, or this is the runner or a version's child process)."""
    return (type(_report.current()) is not _report.Reporter
            or "mlpipeline.run.runner" in sys.modules or "mlpipeline.script.child" in sys.modules)


def is_no_log() -> bool:
    """2.0a3 … 2.0a4.post8's: whether ``log`` keeps lines off the log file — in test mode, or set so with
    ``set_logger(no_log=True)`` outside a runner."""
    if _under_runner():
        return os.environ.get("MLPIPELINE_TEST_MODE") == "1"  # (plain.test_mode, without importing it here)
    logger = LOGGER
    return logger is None or bool(getattr(logger, "TEST_MODE", True) or getattr(logger, "NO_LOG", True))


def log(message: Any, level: int = logging.INFO, log_to_file: bool = True,
        modifier_1: Optional[str] = None, modifier_2: Optional[str] = None) -> None:
    """Log a line from a model script. ``modifier_1``/``modifier_2`` are
    ``console_colors`` put before the message; ``log_to_file=False`` keeps the
    line on the terminal only."""
    reset = "" if modifier_1 is None and modifier_2 is None else console_colors.RESET
    text = "{0}{1}{2}{3}".format(modifier_1 or "", modifier_2 or "", message, reset)
    if _under_runner():
        plain = _ANSI.sub("", text)
        if log_to_file:
            _report.current().log(plain, level)
        else:
            _report.echo(plain, level)
        return
    logger = LOGGER
    if logger is None:
        logger = set_logger()
        logger.log(logging.WARNING, f"{console_colors.RED_FG}'set_logger' not called. Setting up Logger with default "
                   f"settings. To override, call 'set_logger' before any calls to 'log'{console_colors.RESET}")
    logger.log(level, text)
    if not getattr(logger, "TEST_MODE", True) and not getattr(logger, "NO_LOG", True) and log_to_file:
        with open(logger.LOG_FILE, "a", encoding="utf-8") as handle:  # type: ignore[attr-defined]
            label = "INFO" if level is logging.INFO else "ERROR"
            # The original's colour stripping, kept byte for byte in this file it owns.
            cleaned = re.sub(r"\[[0-9;m]*", "", text.translate({0x1b: None}))
            handle.write(f"[{datetime.now().isoformat()}]::{label} - {cleaned}\n")


def add_script_dir_to_PATH(current_dir: Optional[str] = None) -> None:  # noqa: N802 - the original's name
    """Put ``current_dir`` (default: the calling script's folder) first on ``sys.path``."""
    if current_dir is None:
        caller = sys._getframe(1).f_code.co_filename
        current_dir = os.path.dirname(os.path.abspath(caller))
    if current_dir not in sys.path:
        sys.path = [current_dir] + sys.path
    log(f"Added dir `{current_dir}` to PYTHOAPATH. New PYTHONPATH: {sys.path}")


# Modules a fork server imported before it forked this process (never the project's: it imports none).
PRELOADED: FrozenSet[str] = frozenset()


def _collect_related_files(model: Any, root: str, additional_files: Optional[List[str]] = None) -> List[str]:
    """Remember, on ``model``, the files ``copy_related_files`` copies: ``additional_files``
    plus every imported module whose file lies under ``root``."""
    files = list(additional_files or [])
    root = os.path.abspath(root)
    for name in list(sys.modules):
        if name in PRELOADED:
            continue  # the fork server's (a warm parent's torch: 1 000 modules a version would touch, and copy)
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        if getattr(module, "__mlpipeline_script__", False) and os.path.abspath(path) not in files:
            continue  # another model script loaded in this process
        path = os.path.abspath(path)
        if root in path and path not in files:
            files.append(path)
    object.__setattr__(model, "_mlp_related_files", files)
    return files


def copy_related_files(model: Any, dst_dir: str) -> None:
    """Copy the model's script and the modules it imported from its folder into ``dst_dir``."""
    files = getattr(model, "_mlp_related_files", None)
    if files is None:
        script = getattr(model, "_mlp_script_path", None) or getattr(model, "name", None)
        if not isinstance(script, str) or not os.path.isfile(script):
            raise RuntimeError(f"copy_related_files({dst_dir!r}): {type(model).__name__} was not loaded by "
                               f"mlpipeline, so its script is unknown; run it with mlpipeline")
        script = os.path.abspath(script)
        files = _collect_related_files(model, os.path.dirname(script), [script])
    try:
        os.makedirs(dst_dir)
        log(f"Created directories(s): {dst_dir}")
    except OSError:
        pass
    if not os.path.isdir(dst_dir):
        raise NotADirectoryError(f"copy_related_files: {dst_dir} is not a folder; pass a folder to copy into")
    log(f"Copying imported custom scripts to {dst_dir}")
    for path in files:
        shutil.copy(path, dst_dir)
        log(f"\tCopied {path}")



