"""Fault injection for the reliability suite: ``MLPIPELINE_FAULT=<name>`` makes the runner SIGKILL
itself at the point of that name, as a power cut would (``planned``, ``started``, ``record``)."""
from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("MLPIPELINE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
