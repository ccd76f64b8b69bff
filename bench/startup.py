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
