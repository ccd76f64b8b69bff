"""Start-up and per-version overhead of the runner itself."""
from __future__ import annotations

import shutil
import sys

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
                  "<= 60 ms", added <= 60,
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
        batch_s, helper_s, pass_s = interleaved(runs, batch, lambda: wall(PY_HELPER), lambda: wall(PY_PASS))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_version = batch_s / versions * 1000
    overhead = per_version - helper_s * 1000
    return Result(f"execution mode, per version ({versions} trivial, child each)", round(overhead, 1),
                  round(helper_s * 1000, 1), "<= 30 ms over a child start", overhead <= 30,
                  note=f"batch {batch_s:.2f} s = {per_version:.1f} ms/version; python -c pass {pass_s * 1000:.1f} ms")


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
