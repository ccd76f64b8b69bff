"""What every request of the dashboard shares: the project, the token, and a
small pool of read-only ledger connections (SQLite connections are not shared
between two threads at once; each request borrows one)."""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator, List, Optional, Tuple

from ..plan.config import Project
from ..store.reader import Reader

MAX_UPLOAD = 1 << 20          # a model script; a bigger one is refused with a clear message
MAX_INPUT = 64 << 20          # an input file for predict

Signature = Optional[Tuple[int, ...]]


def ledger_signature(path: str, immutable: bool = False) -> Signature:
    """What must not change for an open reader of ``path`` to still see the
    ledger: the file itself (one deleted and made again is another file), and
    for a reader that cannot see later writes (``immutable``, or a private copy
    of a read-only folder's WAL) the size and time of the file and its WAL."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    signature: Tuple[int, ...] = (st.st_dev, st.st_ino)
    if immutable:
        signature += (st.st_mtime_ns, st.st_size)
        try:
            wal = os.stat(path + "-wal")
            signature += (wal.st_mtime_ns, wal.st_size)
        except OSError:
            pass
    return signature


class Dashboard:
    """The state behind one ``mlpipeline serve``."""

    def __init__(self, project: Project, token: str, hosts: set, max_upload: int = MAX_UPLOAD,
                 max_input: int = MAX_INPUT, predict_timeout: float = 600.0, probe_timeout: float = 60.0):
        self.project = project
        self.token = token
        self.hosts = hosts
        self.max_upload, self.max_input = max_upload, max_input
        self.predict_timeout, self.probe_timeout = predict_timeout, probe_timeout
        self.ledger_path = project.ledger_path
        self._idle: List[Tuple[Reader, Signature]] = []
        self._all: List[Reader] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Optional[Reader]]:
        """A read-only connection for this request; None while the project has
        no ledger yet (no run recorded). A pooled connection to a ledger that
        was since deleted or replaced (``rm -rf outputs`` and a new runner) is
        closed rather than lent: it would show the old file for good."""
        stale: List[Reader] = []
        found: Optional[Tuple[Reader, Signature]] = None
        with self._lock:
            while self._idle and found is None:
                reader, signature = self._idle.pop()
                if ledger_signature(self.ledger_path, reader.immutable) == signature:
                    found = (reader, signature)
                else:
                    stale.append(reader)
                    self._all.remove(reader)
        for reader in stale:
            reader.close()
        if found is None:
            if not os.path.exists(self.ledger_path):
                yield None
                return
            reader = Reader(self.ledger_path)
            found = (reader, ledger_signature(self.ledger_path, reader.immutable))
            with self._lock:
                self._all.append(reader)
        try:
            yield found[0]
        finally:
            with self._lock:
                self._idle.append(found)

    def close(self) -> None:
        with self._lock:
            readers, self._all, self._idle = self._all, [], []
        for reader in readers:
            reader.close()
