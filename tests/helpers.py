"""Test helpers: real projects in tmp_path, driven through the real CLI, and the tracer model script."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Dict, Iterable, Optional

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def queue_config(scripts: Iterable[str], use_blacklist: bool = False, blacklist: Iterable[str] = ()) -> str:
    return ("[MLP]\nuse_blacklist = {}\n\n[WHITELISTED_MODELS]\n{}\n\n[BLACKLISTED_MODELS]\n{}\n"
            .format(use_blacklist, "\n".join(scripts), "\n".join(blacklist)))


class Project:
    """A project folder on disk with helpers to run mlpipeline on it."""

    def __init__(self, root: Path):
        self.root = root
        self.models = root / "models"
        self.outputs = self.models / "outputs"

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def script(self, name: str, text: str) -> Path:
        return self.write(f"models/{name}", text)

    def copy_fixture(self, *names: str) -> None:
        for name in names:
            shutil.copy(FIXTURES / "legacy" / name, self.models / name)

    def configure(self, scripts: Iterable[str], test_scripts: Optional[Iterable[str]] = None, **kw) -> None:
        scripts = list(scripts)
        self.write("models.config", queue_config(scripts, **kw))
        self.write("models_test.config", queue_config(scripts if test_scripts is None else test_scripts, **kw))

    def start(self, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "mlpipeline", *args], cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})

    def run(self, *args: str, timeout: float = 120, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        proc = self.start(*args, env=env)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.outputs / "mlpipeline.db")
        conn.row_factory = sqlite3.Row
        return conn

    def runs(self, **where) -> list:
        if not (self.outputs / "mlpipeline.db").exists():
            return []
        clause = " AND ".join(f"{k} = ?" for k in where) or "1"
        with self.db() as conn:
            try:
                rows = conn.execute(f"SELECT * FROM runs WHERE {clause} ORDER BY id", tuple(where.values()))
            except sqlite3.OperationalError as exc:  # the runner created the file but not yet its tables
                if "no such table" in str(exc):
                    return []
                raise
            return [dict(r) for r in rows]

    def trace(self) -> list:
        path = self.root / "trace.log"
        return path.read_text().split() if path.exists() else []


def tracer(versions: Dict[str, dict], defaults: str = "") -> str:
    """A model script whose versions do what their ``action`` parameter says and
    append ``<script>:<version>:<steps>:<model_dir>`` to the project's trace.log.

    Actions: ok, raise, exit3 (os._exit(3)), sigkill (kills itself), wait
    (writes started-<version> and waits for a file named go), sleep (``seconds``),
    forever (writes started-<version>, never returns), spin (``iterations`` of CPU work).
    Each version also writes env-<version> with the CUDA_VISIBLE_DEVICES it saw.
    """
    adds = "\n".join(
        f"versions.add_version({name!r}, {', '.join(f'{k}={v!r}' for k, v in params.items())})"
        for name, params in versions.items())
    return textwrap.dedent('''\
        import os, signal, sys, time
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions, version_parameters

        ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        NAME = os.path.basename(__file__)

        class Loader(DataLoader):
            def get_train_input(self, mode=None, **kw): return lambda: [1, 2, 3]
            def get_test_input(self, **kw): return lambda: [4, 5]
            def get_train_sample_count(self): return 4
            def get_test_sample_count(self): return 2

        class Tracer(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode="test"):
                self.version, self.model_dir = version, model_dir

            def train_model(self, input_fn, steps):
                name, action = self.version["name"], self.version.get("action", "ok")
                with open(os.path.join(ROOT, "trace.log"), "a") as f:
                    f.write("%s:%s:%s:%s\\n" % (NAME, name, steps, self.model_dir))
                with open(os.path.join(ROOT, "env-" + name), "w") as f:
                    f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "-"))
                if action == "raise":
                    raise ValueError("version %s failed on purpose" % name)
                if action == "exit3":
                    os._exit(3)
                if action == "sigkill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if action == "sleep":
                    time.sleep(self.version["seconds"])
                if action == "hang_once":  # hang the first time, succeed when run again
                    action = "ok" if os.path.exists(os.path.join(ROOT, "started-" + name)) else "forever"
                if action == "forever":
                    open(os.path.join(ROOT, "started-" + name), "w").close()
                    while True:
                        time.sleep(1)
                if action == "spin":  # CPU-bound work for a fixed number of iterations
                    total = 0
                    for i in range(self.version["iterations"]):
                        total += i * i
                if action == "wait":
                    open(os.path.join(ROOT, "started-" + name), "w").close()
                    deadline = time.time() + 60
                    while not os.path.exists(os.path.join(ROOT, "go")) and time.time() < deadline:
                        time.sleep(0.05)

            def evaluate_model(self, input_fn, steps):
                return {"score": float(sum(input_fn()))}

        versions = Versions(Loader(), batch_size=2, epoc_count=1 __DEFAULTS__)
        __ADDS__
        MODEL = Tracer(versions)
        ''').replace("__DEFAULTS__", defaults).replace("__ADDS__", adds)


def wait_for(predicate, timeout: float = 30.0, proc=None, what: str = "condition", every: float = 0.05):
    """Poll ``predicate`` until it is truthy (returned); fail after ``timeout``
    seconds, or at once if ``proc`` (a runner) exits meanwhile."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"runner exited ({proc.returncode}) while waiting for {what}: {err[-2000:]}")
        if time.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie counts as dead. (The tests keep their
    own check rather than trusting the one in mlpipeline.proc.system they verify.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


# a run mark of its own per version a test starts: a version ending kills what carries its mark, so two tests
# (on two workers) that each ran a "tag-b" would end each other's version (the runner's marks are run uids)
RUN_MARKS = "tag-" + uuid.uuid4().hex[:8]


def tag_of(version: str) -> str:
    return f"{RUN_MARKS}-{version}"
