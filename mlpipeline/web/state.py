"""What every request of the dashboard shares: the project, the token, and a
small pool of read-only ledger connections (SQLite connections are not shared
between two threads at once; each request borrows one)."""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator, List, Optional

from ..config import Project
from ..ledger import DB_NAME
from ..reader import Reader

MAX_UPLOAD = 1 << 20          # a model script; a bigger one is refused with a clear message
MAX_INPUT = 64 << 20          # an input file for predict


class Dashboard:
    """The state behind one ``mlpipeline serve``."""

    def __init__(self, project: Project, token: str, hosts: set, max_upload: int = MAX_UPLOAD,
                 max_input: int = MAX_INPUT, predict_timeout: float = 600.0, probe_timeout: float = 60.0):
        self.project = project
        self.token = token
        self.hosts = hosts
        self.max_upload, self.max_input = max_upload, max_input
        self.predict_timeout, self.probe_timeout = predict_timeout, probe_timeout
        self.ledger_path = os.path.join(project.outputs_dir, DB_NAME)
        self._idle: List[Reader] = []
        self._all: List[Reader] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Optional[Reader]]:
        """A read-only connection for this request; None while the project has
        no ledger yet (no run recorded)."""
        with self._lock:
            reader = self._idle.pop() if self._idle else None
        if reader is None:
            if not os.path.exists(self.ledger_path):
                yield None
                return
            reader = Reader(self.ledger_path)
            with self._lock:
                self._all.append(reader)
        try:
            yield reader
        finally:
            with self._lock:
                self._idle.append(reader)

    def close(self) -> None:
        with self._lock:
            readers, self._all, self._idle = self._all, [], []
        for reader in readers:
            reader.close()
