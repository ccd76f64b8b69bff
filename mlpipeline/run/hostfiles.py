"""The human-readable files of execution mode: ``log-<host>`` and ``output-<host>``.

Both are append-only text in UTF-8 with honest local ISO timestamps. Test
mode and ``-n`` use ``NullOutputs``, so callers never branch on it.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
from typing import Any, Dict, Optional

from ..core.errors import write_failed

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
RULE = "-------------------------------------------"


def now_iso() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def clean(text: Any) -> str:
    return _ANSI.sub("", str(text)).replace("\r", "")


class NullOutputs:
    """Writes nothing (test mode, ``-n``)."""

    log_path: Optional[str] = None
    output_path: Optional[str] = None

    def log(self, message: str, level: int = logging.INFO) -> None:
        pass

    def output_block(self, *, script: str, version: str, result: Dict[str, Any],
                     params: Dict[str, Any], epochs: Any) -> None:
        pass


class HostOutputs(NullOutputs):
    """Appends to ``outputs/log-<host>`` and ``outputs/output-<host>``."""

    def __init__(self, outputs_dir: str, host: str):
        os.makedirs(outputs_dir, exist_ok=True)
        self.log_path = self._log = os.path.join(outputs_dir, f"log-{host}")
        self.output_path = self._output = os.path.join(outputs_dir, f"output-{host}")

    _handles: Dict[str, Any] = {}  # path -> the open file (kept: a version logs a dozen lines)

    @classmethod
    def _append(cls, path: str, text: str) -> None:
        try:
            handle = cls._handles.get(path)
            if handle is not None and os.fstat(handle.fileno()).st_nlink == 0:  # deleted: start a new one
                handle.close()
                handle = None
            if handle is None:
                handle = cls._handles[path] = open(path, "a", encoding="utf-8", errors="backslashreplace")
            handle.write(text)
            handle.flush()
        except OSError as exc:
            cls._handles.pop(path, None)
            raise write_failed(path, exc, "write", "the ledger keeps what was recorded") from None

    def log(self, message: str, level: int = logging.INFO) -> None:
        stamp = f"[{now_iso()}]::{logging.getLevelName(level)} - "
        lines = clean(message).splitlines() or [""]
        self._append(self._log, "".join(stamp + line + "\n" for line in lines))

    def output_block(self, *, script: str, version: str, result: Dict[str, Any],
                     params: Dict[str, Any], epochs: Any) -> None:
        """One block per finished version, in the original tool's layout."""
        def indented(text: str) -> str:
            return "".join(f"\t\t{line}\n" for line in clean(text).splitlines())

        block = (
            f"\n[{now_iso()}]:ml-pipline: output: \n"
            f"\t\tModel: {script}\n"
            f"\t\tVersion: {version}\n"
            f"\t\tEval on train set: {clean(result.get('eval_train_text', ''))}\n"
            f"\t\tEval on test  set: {clean(result.get('eval_test_text', ''))}\n"
            f"\t\t{RULE}\n"
            f"\t\tEXECUTION SUMMERY:\n"
            f"\t\tNumber of epocs: {epochs}\n"
            f"\t\tSteps trained: {result.get('steps', 0)} (already trained before: {result.get('trained_before', 0)})\n"
            f"\t\tParameters for this version: {json.dumps(params, sort_keys=True)}\n"
            f"\t\t{RULE}\n"
            f"\t\tMODEL SUMMERY:\n{indented(result.get('model_summary', ''))}"
            f"\t\t{RULE}\n"
            f"\t\tDATALOADER SUMMERY:\n{indented(result.get('dataloader_summary', ''))}"
        )
        self._append(self._output, block)
