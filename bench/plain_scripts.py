"""Plain training scripts (issue 20): what the runner adds to ``python train.py`` per version, and what
``log_metric`` costs in a plain script under the runner against the same script run alone."""
from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import textwrap
from typing import List

from .common import Result, interleaved, mlpipeline_cmd, reset_outputs, script_project, wall

TRIVIAL = textwrap.dedent("""\
    import argparse
    from mlpipeline import log_metric
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    log_metric("loss", args.lr, step=args.seed)
    """)

LOOP = textwrap.dedent("""\
    import argparse, os, time
    from mlpipeline import log_metric
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    began = time.perf_counter()
    for i in range(args.points):
        log_metric("loss", float(i), step=i)
    took = time.perf_counter() - began
    with open(os.environ["MLP_BENCH_OUT"], "w") as handle:
        handle.write(repr(took))
    """)


def _project(script: str, lines: List[str]) -> str:
    """A project whose queue is ``train.py`` holding ``script``, one version an argument line."""
    return script_project(script, "train.py", queue_extra="\n[train.py]\n" + "".join(f"{line}\n" for line in lines))


def plain_overhead(versions: int = 20, runs: int = 5) -> Result:
    """``mlpipeline -r -n`` over ``versions`` argument lines of a small argparse script (its description
    cached by a first batch), per version, minus ``python models/train.py --lr 0.1`` run alone."""
    root = _project(TRIVIAL, [f"v{i:02d} = --lr 0.{i + 1} --seed {i}" for i in range(versions)])
    cmd = mlpipeline_cmd() + ["-r", "-n", "-C", root]
    alone = [sys.executable, "models/train.py", "--lr", "0.1"]

    def batch() -> float:
        reset_outputs(root)
        return wall(cmd)

    try:
        batch()
        batch_s, alone_s = interleaved(runs, batch, lambda: wall(alone, cwd=root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_version = batch_s / versions * 1000
    overhead = per_version - alone_s * 1000
    return Result(f"plain script, per version ({versions} argument lines)", round(overhead, 1),
                  round(alone_s * 1000, 1), "<= 30 ms over python train.py", overhead <= 30,
                  note=f"batch {batch_s:.2f} s = {per_version:.1f} ms/version (the runner's own start included); "
                       f"python models/train.py alone {alone_s * 1000:.1f} ms")


def plain_metric_logging(points: int = 1_000_000, runs: int = 3) -> Result:
    """A plain script's loop of ``points`` ``log_metric`` calls, timed inside it: under ``mlpipeline -r``
    (every point checked, batched over the pipe, written to the ledger; the run checked to hold them all)
    vs ``python models/train.py`` alone, where ``log_metric`` does nothing."""
    root = _project(LOOP, [f"loop = --points {points}"])
    out = os.path.join(root, "took")
    env = {**os.environ, "MLP_BENCH_OUT": out}

    def took() -> float:
        with open(out) as handle:
            return float(handle.read())

    def under_runner() -> float:
        reset_outputs(root)
        wall(mlpipeline_cmd() + ["-r", "-n", "-C", root], env=env)
        conn = sqlite3.connect(os.path.join(root, "models", "outputs", "mlpipeline.db"))
        try:
            status, count = conn.execute("SELECT r.status, (SELECT COUNT(*) FROM metrics m WHERE m.run_id = r.id "
                                         "AND m.split != 'sys') "
                                         "FROM runs r").fetchone()
        finally:
            conn.close()
        if status != "succeeded" or count != points:
            raise RuntimeError(f"plain_metric_logging: the run is {status} with {count} of {points} points")
        return took()

    def alone() -> float:
        wall([sys.executable, "models/train.py", "--points", str(points)], cwd=root, env=env)
        return took()

    try:
        runner_s, alone_s = interleaved(runs, under_runner, alone)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = runner_s / alone_s
    return Result(f"plain script, {points:,} log_metric calls (loop, in the script)", round(runner_s, 3),
                  round(alone_s, 3), "<= 1.5x the script alone", ratio <= 1.5, unit="s",
                  note=f"{runner_s / points * 1e9:.0f} ns a point under the runner, {alone_s / points * 1e9:.0f} ns "
                       f"alone (log_metric does nothing outside a runner)")
