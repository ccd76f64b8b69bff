"""What sampling each running version (CPU %, RSS, GPU through NVML: ``execution.sampler``) costs it
(issue 21): a CPU-bound version under ``mlpipeline -r`` at the default interval against the same
version with ``--sample-interval 0``, interleaved runs of the same project; and the sampler's own time
per sample, measured directly."""
from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time

from .common import STUB_LOADER, Result, mlpipeline_cmd, reset_outputs, script_project, wall

SPIN = STUB_LOADER + textwrap.dedent('''\
    import os, time

    class M(Model):
        def train_model(self, input_fn, steps):
            began = time.perf_counter()
            total = 0
            for i in range(__ITERATIONS__):   # pure-Python arithmetic: one core, busy throughout
                total += i * i % 7
            with open(os.environ["MLP_BENCH_OUT"], "w") as handle:
                handle.write(repr(time.perf_counter() - began))
        def evaluate_model(self, input_fn, steps): return {"x": 1.0}

    versions = Versions(L(), 1, 1)
    versions.add_version("spin")
    MODEL = M(versions)
    ''')


def _per_sample_us(samples: int = 200) -> float:
    """Microseconds one ``Sampler.sample`` of one running child takes (its tree: the child alone)."""
    from mlpipeline.execution.sampler import Sampler

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sampler = Sampler()
        sampler.sample({1: (child.pid, [])})
        began = time.perf_counter()
        for _ in range(samples):
            sampler.sample({1: (child.pid, [])})
        return (time.perf_counter() - began) / samples * 1e6
    finally:
        child.kill()
        child.wait()


def _iterations(seconds: float) -> int:
    """How many of the version's loop iterations take about ``seconds`` here."""
    count, began, total = 1_000_000, time.perf_counter(), 0
    for i in range(count):
        total += i * i % 7
    return int(count * seconds / (time.perf_counter() - began))


def sampling_cost(seconds: float = 4.0, runs: int = 10) -> Result:
    """The version's own wall time (timed inside it: about ``seconds`` of arithmetic) with sampling at the
    default 2 s against ``--sample-interval 0``: ``runs`` interleaved pairs of batches, the medians of each
    and the median of the pairs' differences (what is judged: it cancels the drift of a shared machine);
    the batch's wall time and the sampler's own time per sample in the note."""
    iterations = _iterations(seconds)
    root = script_project(SPIN.replace("__ITERATIONS__", str(iterations)), "spin.py")
    out = os.path.join(root, "took")
    env = {**os.environ, "MLP_BENCH_OUT": out}
    batch_walls: dict = {"on": [], "off": []}

    def version_s(extra: list, key: str) -> float:
        reset_outputs(root)
        batch_walls[key].append(wall(mlpipeline_cmd() + ["-r", "-n", "-C", root, *extra], env=env))
        conn = sqlite3.connect(os.path.join(root, "models", "outputs", "mlpipeline.db"))
        try:
            status, points = conn.execute("SELECT status, (SELECT COUNT(*) FROM metrics m WHERE m.run_id = r.id "
                                          "AND m.split = 'sys') FROM runs r").fetchone()
        finally:
            conn.close()
        if status != "succeeded" or (key == "on") != (points > 0):
            raise RuntimeError(f"sampling_cost: the run is {status} with {points} sys points (sampling {key})")
        with open(out) as handle:
            return float(handle.read())

    pairs = []
    try:
        version_s([], "on")  # warm: the fork server's imports, the page cache
        batch_walls["on"].clear()
        for index in range(runs):  # each pair in turn sampled first, then second: the order's effect cancels
            if index % 2:
                off = version_s(["--sample-interval", "0"], "off")
                pairs.append((version_s([], "on"), off))
            else:
                pairs.append((version_s([], "on"), version_s(["--sample-interval", "0"], "off")))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_sample = _per_sample_us()
    on_s, off_s = (statistics.median(pair[i] for pair in pairs) for i in (0, 1))
    cost = statistics.median((on - off) / off * 100 for on, off in pairs)
    spread = statistics.pstdev(off for _, off in pairs) / off_s * 100
    wall_on, wall_off = (statistics.median(batch_walls[k]) for k in ("on", "off"))
    return Result("sampling at 2 s: a CPU-bound version's own wall time", round(on_s, 3), round(off_s, 3),
                  "<= 1 % of the version's wall time", cost <= 1.0, unit="s",
                  note=f"cost {cost:+.2f} % of the version's time (median of {runs} interleaved pairs; unsampled runs "
                       f"spread {spread:.1f} %; the batch {wall_on:.2f} s sampled vs {wall_off:.2f} s not); one sample "
                       f"of a version takes {per_sample:.0f} us of the runner's time ({per_sample / 2e6 * 100:.3f} % "
                       f"of a CPU at 2 s)")
