"""Helpers shared by the reliability tests: processes, the ledger, in-process CLI calls."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers import Project, pid_alive, queue_config, tracer, wait_for  # noqa: E402,F401  (re-exported)


def processes_mentioning(text: str) -> List[Tuple[int, str]]:
    """Live processes (not zombies) whose command line contains ``text``:
    the runner's children carry the script's path in their arguments."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry)):
            found.append((int(entry), cmdline[:200]))
    return found


def integrity(db_path: Path) -> str:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def model_script(train_body: str, versions: Tuple[str, ...] = ("v",), imports: str = "") -> str:
    """A minimal model script whose ``train_model`` runs ``train_body``
    (``self.model_dir``, ``ROOT`` and ``os``/``sys``/``time`` are at hand)."""
    body = textwrap.indent(textwrap.dedent(train_body).strip("\n"), " " * 8)
    adds = "\n".join(f"versions.add_version({name!r})" for name in versions)
    header = textwrap.dedent('''\
        import os, sys, time
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions

        ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

        class Loader(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1

        class M(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode="test"):
                self.model_dir = model_dir

            def evaluate_model(self, input_fn, steps):
                return {"acc": 0.5}

            def train_model(self, input_fn, steps):
        ''')
    footer = f"\n\nversions = Versions(Loader(), batch_size=1, epoc_count=1)\n{adds}\nMODEL = M(versions)\n"
    return (imports + "\n" if imports else "") + header + body + footer


class PeakMemory:
    """Samples a process's peak resident size (VmHWM) while it runs."""

    def __init__(self, pid: int, every: float = 0.02):
        self.pid, self.every = pid, every
        self.peak_kib = 0
        self.samples: List[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> Optional[Dict[str, int]]:
        try:
            with open(f"/proc/{self.pid}/status") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return None
        values = {}
        for line in lines:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0])
        return values

    def _run(self) -> None:
        while not self._stop.is_set():
            values = self._read()
            if values and "VmHWM" in values:
                self.peak_kib = max(self.peak_kib, values["VmHWM"])
                self.samples.append(values["VmRSS"])
            time.sleep(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def in_process_cli():
    """Run ``mlpipeline.cli.main`` in this process: restores the cwd and the
    signal handlers it changes; yields a function returning (code, stdout, stderr)."""
    from mlpipeline import cli

    cwd = os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def call(*argv: str) -> Tuple[int, str, str]:
        # text streams with a .buffer, as a child's output is echoed as bytes
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)
        err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(list(argv))
        finally:
            os.chdir(cwd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return code, out.buffer.getvalue().decode("utf-8", "replace"), err.buffer.getvalue().decode("utf-8", "replace")

    try:
        yield call
    finally:
        os.chdir(cwd)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
