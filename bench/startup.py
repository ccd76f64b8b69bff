"""Start-up and per-version overhead of the runner itself."""
from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, Optional

from .common import Result, interleaved, mlpipeline_cmd, reset_outputs, trivial_project, wall

PY_PASS = [sys.executable, "-c", "pass"]
PY_HELPER = [sys.executable, "-c", "import mlpipeline.helper"]


def help_cold_start(runs: int = 20) -> Result:
    """``mlpipeline --help`` wall time vs ``python -c pass``; the target is on the
    time mlpipeline adds to a bare interpreter start."""
    cmd = mlpipeline_cmd() + ["--help"]
    help_s, pass_s = interleaved(runs, lambda: wall(cmd), lambda: wall(PY_PASS))
    added = (help_s - pass_s) * 1000
    return Result("mlpipeline --help (added to python start)", round(added, 1), round(pass_s * 1000, 1),
                  "<= 15 ms", added <= 15,
                  note=f"wall {help_s * 1000:.1f} ms vs python -c pass {pass_s * 1000:.1f} ms")


def execution_overhead(versions: int = 20, runs: int = 5) -> Result:
    """``mlpipeline -r -n`` over trivial versions, a child each: time per version
    beyond one child interpreter start (``python -c 'import mlpipeline.helper'``)."""
    root = trivial_project(versions)
    cmd = mlpipeline_cmd() + ["-r", "-n", "-C", root]

    def batch() -> float:
        reset_outputs(root)
        return wall(cmd)

    try:
        batch()  # warm-up: caches the description and gives _child_command a recorded version
        child = _child_command(root)
        timings = [batch, lambda: wall(PY_HELPER), lambda: wall(PY_PASS)] + ([child] if child else [])
        batch_s, helper_s, pass_s, *rest = interleaved(runs, *timings)
        child_s = rest[0] if rest else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_version = batch_s / versions * 1000
    overhead = per_version - helper_s * 1000
    split = "" if child_s is None else (
        f"; one version's child alone {child_s * 1000:.1f} ms (its own start, imports, load and run: "
        f"{child_s * 1000 - helper_s * 1000:.1f} ms over the baseline), so the runner's side is "
        f"{per_version - child_s * 1000:.1f} ms a version")
    return Result(f"execution mode, per version ({versions} trivial, child each)", round(overhead, 1),
                  round(helper_s * 1000, 1), "<= 30 ms over a child start", overhead <= 30,
                  note=f"batch {batch_s:.2f} s = {per_version:.1f} ms/version; python -c pass {pass_s * 1000:.1f} ms"
                       f"{split}")


def _child_command(root: str) -> Optional[Callable[[], float]]:
    """A timing of the runner's child command for one recorded version, run by
    hand (events to /dev/null): splits the per-version time into the child's
    share and the runner's. None when the child protocol changed."""
    import json
    import os
    import sqlite3
    import subprocess

    try:
        from mlpipeline.execution.local import CHILD_MAIN

        conn = sqlite3.connect(os.path.join(root, "models", "outputs", "mlpipeline.db"))
        try:
            rel, version, params = conn.execute(
                "SELECT script, version, params FROM runs WHERE mode = 'run' ORDER BY id LIMIT 1").fetchone()
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - only a note; the protocol is the runner's to change
        return None
    spec = {"script": os.path.join(root, rel), "rel": rel, "version": version, "params": json.loads(params)}
    payload = json.dumps({"spec": spec, "model_dir": os.path.join(root, "alone-model"), "exec_mode": "train",
                          "parent_pid": os.getpid()})

    def child() -> float:
        events = os.open(os.devnull, os.O_WRONLY)
        try:
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", CHILD_MAIN, "run", payload, str(events)], pass_fds=(events,),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            return time.perf_counter() - began
        finally:
            os.close(events)

    return child


def inprocess_overhead(versions: int = 200, runs: int = 5) -> Result:
    """Test mode over many trivial versions in-process: time per version beyond
    the runner's own start (measured as a 1-version run)."""
    big, small = trivial_project(versions), trivial_project(1)

    def run(root: str) -> float:
        reset_outputs(root)
        return wall(mlpipeline_cmd() + ["-C", root])

    try:
        big_s, small_s = interleaved(runs, lambda: run(big), lambda: run(small))
    finally:
        shutil.rmtree(big, ignore_errors=True)
        shutil.rmtree(small, ignore_errors=True)
    per_version = (big_s - small_s) / (versions - 1) * 1000
    return Result(f"test mode in-process, per version ({versions} trivial)", round(per_version, 2),
                  round(small_s * 1000, 1), "<= 2 ms", per_version <= 2,
                  note=f"{versions} versions {big_s:.2f} s vs 1 version {small_s:.2f} s")


def inprocess_scaling(small: int = 100, big: int = 1000, runs: int = 1) -> Result:
    """Per-version cost as a script grows: test mode (in-process) over ``big``
    trivial versions in one script vs ``small``. The runner's work per version
    should not grow with the number of versions the script declares."""
    roots = trivial_project(big), trivial_project(small), trivial_project(1)

    def run(root: str) -> float:
        reset_outputs(root)
        return wall(mlpipeline_cmd() + ["-n", "-C", root])

    try:
        big_s, small_s, one_s = interleaved(runs, *(lambda r=r: run(r) for r in roots))
    finally:
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    big_ms = (big_s - one_s) / (big - 1) * 1000
    small_ms = (small_s - one_s) / (small - 1) * 1000
    growth = big_ms / small_ms
    return Result(f"test mode per version, {big} vs {small} versions in one script", round(big_ms, 2),
                  round(small_ms, 2), "<= 1.5x (flat)", growth <= 1.5,
                  note=f"{big} versions {big_s:.2f} s, {small} versions {small_s:.2f} s, 1 version {one_s:.2f} s; "
                       f"{runs} run(s) each; a ratio near {big / small:.0f} means quadratic")


def runner_peak_memory(versions: int = 4) -> Result:
    """Peak resident memory (VmHWM) of the runner parent while 4 versions run
    at once (-j 4), each sleeping in its own child."""
    import os
    import subprocess
    import tempfile
    import time

    from .common import TRIVIAL_SCRIPT

    root = tempfile.mkdtemp(prefix="mlp-bench-mem-")
    os.makedirs(os.path.join(root, "models"))
    with open(os.path.join(root, "mlp.config"), "w") as f:
        f.write("[MLP]\nmodels_dir = models\n")
    with open(os.path.join(root, "models.config"), "w") as f:
        f.write("[MLP]\n[WHITELISTED_MODELS]\nsleepy.py\n")
    script = TRIVIAL_SCRIPT.replace("__COUNT__", str(versions)).replace(
        "def train_model(self, input_fn, steps): pass",
        "def train_model(self, input_fn, steps): __import__('time').sleep(2)")
    with open(os.path.join(root, "models", "sleepy.py"), "w") as f:
        f.write(script)
    proc = subprocess.Popen(mlpipeline_cmd() + ["-r", "-j", str(versions), "-C", root],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    try:
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as handle:
                    for line in handle:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mib = peak / 1024
    return Result(f"runner parent peak RSS, {versions} versions at once", round(mib, 1), None, "<= 60 MiB",
                  0 < mib <= 60, unit="MiB", note="VmHWM of the mlpipeline process, sampled every 20 ms")
