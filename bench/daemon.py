"""The daemon's reaction time and its use of parallel slots."""
from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import textwrap
import time

from .common import Result, mlpipeline_cmd, reset_outputs, wall

SCRIPT = textwrap.dedent('''\
    import os, time
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    class M(Model):
        def pre_execution_hook(self, version, model_dir, exec_mode="test"):
            self.version = version
        def train_model(self, input_fn, steps):
            if self.version["work"] == "wait":
                while not os.path.exists(os.path.join(ROOT, "go")):
                    time.sleep(0.05)
            else:
                total = 0
                for i in range(self.version["work"]):
                    total += i * i
        def evaluate_model(self, input_fn, steps): return {"x": 1.0}

    versions = Versions(L(), 1, 1)
    __VERSIONS__
    MODEL = M(versions)
    ''')


def _project(versions: str, scripts=("a.py",), listed=("a.py",)) -> str:
    root = tempfile.mkdtemp(prefix="mlp-bench-daemon-")
    os.makedirs(os.path.join(root, "models"))
    with open(os.path.join(root, "mlp.config"), "w") as f:
        f.write("[MLP]\nmodels_dir = models\n")
    for name in scripts:
        with open(os.path.join(root, "models", name), "w") as f:
            f.write(SCRIPT.replace("__VERSIONS__", versions))
    _write_queue(root, listed)
    return root


def _write_queue(root: str, listed) -> None:
    text = "[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\n" + "".join(f"{s}\n" for s in listed)
    path = os.path.join(root, "models.config")
    with open(path + ".tmp", "w") as f:  # save like an editor: write, then rename over
        f.write(text)
    os.replace(path + ".tmp", path)


def config_edit_to_status(edits: int = 20) -> list:
    """Save models.config while a version runs; time until the runner's queue
    snapshot (what ``mlpipeline status`` shows) has the change."""
    root = _project('versions.add_version("waits", work="wait")', scripts=("a.py", "b.py"))
    db = os.path.join(root, "models", "outputs", "mlpipeline.db")
    runner = subprocess.Popen(mlpipeline_cmd() + ["-r", "-n", "-C", root], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    latencies, status_walls = [], []
    try:
        conn = None
        deadline = time.time() + 60
        while conn is None:
            if os.path.exists(db):
                conn = sqlite3.connect(db, timeout=5)
                if conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'queue'").fetchone()[0] and \
                        conn.execute("SELECT COUNT(*) FROM queue WHERE state = 'running'").fetchone()[0]:
                    break
                conn.close()
                conn = None
            if time.time() > deadline:
                raise RuntimeError("the runner did not start")
            time.sleep(0.05)

        def b_queued() -> bool:
            row = conn.execute("SELECT state FROM queue WHERE script = 'models/b.py' AND version = 'waits' "
                               "ORDER BY runner_id DESC LIMIT 1").fetchone()
            return bool(row and row[0] == "queued")

        for index in range(edits):
            want = index % 2 == 0  # alternately add and remove b.py
            time.sleep(0.3)
            began = time.perf_counter()
            _write_queue(root, ("a.py", "b.py") if want else ("a.py",))
            while b_queued() != want:
                if time.perf_counter() - began > 10:
                    raise RuntimeError("the edit never showed in the queue")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - began)
            if index < 5:
                status_walls.append(wall(mlpipeline_cmd() + ["-C", root, "status"]))
    finally:
        open(os.path.join(root, "go"), "w").close()
        runner.send_signal(2)
        try:
            runner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            runner.kill()
        shutil.rmtree(root, ignore_errors=True)
    median = statistics.median(latencies) * 1000
    return [Result(f"config edit -> visible in status (median of {edits})", round(median, 1),
                   round(statistics.median(status_walls) * 1000, 1), "<= 200 ms", median <= 200,
                   note=f"max {max(latencies) * 1000:.0f} ms; baseline = one `mlpipeline status` call")]


def parallel_speedup(runs: int = 3, work: int = 120_000_000) -> list:
    """Two CPU-bound versions with -j 2 vs -j 1: whole-command wall time ratio."""
    root = _project(f'versions.add_version("one", work={work})\nversions.add_version("two", work={work})')
    try:
        def batch(jobs: str) -> float:
            reset_outputs(root)
            return wall(mlpipeline_cmd() + ["-r", "-n", "-j", jobs, "-C", root])

        ones, twos = [], []
        for _ in range(runs):
            ones.append(batch("1"))
            twos.append(batch("2"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    one, two = statistics.median(ones), statistics.median(twos)
    speedup = one / two
    return [Result("-j 2 vs -j 1 throughput, two CPU-bound versions", round(speedup, 2), None, ">= 1.85x",
                   speedup >= 1.85, unit="x", note=f"-j 1 {one:.2f} s, -j 2 {two:.2f} s (median of {runs})")]
