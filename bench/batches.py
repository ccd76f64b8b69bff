"""Throughput of a batch spread over many scripts, and the start of a batch."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Tuple

from .common import TRIVIAL_SCRIPT, Result, interleaved, mlpipeline_cmd, wall


def scripts_project(scripts: int, versions: int) -> str:
    """A project listing ``scripts`` scripts of ``versions`` trivial versions each."""
    root = tempfile.mkdtemp(prefix="mlp-bench-batch-")
    os.makedirs(os.path.join(root, "models"))
    with open(os.path.join(root, "mlp.config"), "w") as f:
        f.write("[MLP]\nmodels_dir = models\n")
    names = [f"s{index:03d}.py" for index in range(scripts)]
    for name in ("models.config", "models_test.config"):
        with open(os.path.join(root, name), "w") as f:
            f.write("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\n" + "".join(f"{n}\n" for n in names))
    for name in names:
        with open(os.path.join(root, "models", name), "w") as f:
            f.write(TRIVIAL_SCRIPT.replace("__COUNT__", str(versions)))
    return root


def _db(root: str) -> str:
    return os.path.join(root, "models", "outputs", "mlpipeline.db")


def _query(root: str, sql: str, args: tuple = ()) -> list:
    conn = sqlite3.connect(f"file:{_db(root)}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _warm(root: str) -> int:
    """Cache every script's description: one test-mode batch (in-process, 1 step
    a version), which describes the scripts exactly as ``-r`` does and stores the
    descriptions in the ledger's script_cache. Returns how many are cached."""
    wall(mlpipeline_cmd() + ["-n", "-C", root])
    return _query(root, "SELECT COUNT(*) FROM script_cache")[0][0]


def _batch(root: str, versions: int) -> float:
    """One timed ``mlpipeline -r -n`` over the whole queue (descriptions cached);
    checks that every version ran and succeeded."""
    before = _query(root, "SELECT COALESCE(MAX(id), 0) FROM runs")[0][0]
    took = wall(mlpipeline_cmd() + ["-r", "-n", "-C", root])
    done = _query(root, "SELECT status, COUNT(*) FROM runs WHERE id > ? AND mode = 'run' GROUP BY status", (before,))
    if dict(done) != {"succeeded": versions}:
        raise RuntimeError(f"many_scripts: {root}: expected {versions} succeeded runs, found {dict(done)}")
    return took


def _first_start(root: str) -> float:
    """Seconds from launching ``mlpipeline -r`` to the first run's ``started_at``
    in the ledger; then the runner is stopped warmly (SIGINT)."""
    before = _query(root, "SELECT COALESCE(MAX(id), 0) FROM runs")[0][0]
    launched = time.time()
    proc = subprocess.Popen(mlpipeline_cmd() + ["-r", "-n", "-C", root], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            row = _query(root, "SELECT MIN(started_at) FROM runs WHERE id > ? AND mode = 'run'", (before,))[0]
            if row[0] is not None:
                return row[0] - launched
            if proc.poll() is not None or time.time() - launched > 60:
                raise RuntimeError(f"many_scripts: {root}: no run started (runner exit {proc.poll()})")
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fresh_batch(scripts: int, per_script: int) -> float:
    """One timed ``mlpipeline -r -n`` of a new project (nothing described or cached yet)."""
    root = scripts_project(scripts, per_script)
    try:
        began = time.perf_counter()
        subprocess.run(mlpipeline_cmd() + ["-r", "-n", "-C", root], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=True)
        took = time.perf_counter() - began
        done = _query(root, "SELECT status, COUNT(*) FROM runs WHERE mode = 'run' GROUP BY status")
        if dict(done) != {"succeeded": scripts * per_script}:
            raise RuntimeError(f"first_run: {root}: expected {scripts * per_script} succeeded runs, found {dict(done)}")
        return took
    finally:
        shutil.rmtree(root, ignore_errors=True)


def first_run(scripts: int = 40, per_script: int = 3, runs: int = 9) -> Result:
    """A first ``mlpipeline -r`` (descriptions included) of 40 scripts x 3 trivial versions vs one
    script x 120: versions/s of each, fresh projects, interleaved."""
    total = scripts * per_script
    spread_s, single_s = interleaved(runs, lambda: _fresh_batch(scripts, per_script), lambda: _fresh_batch(1, total))
    share = (total / spread_s) / (total / single_s)
    return Result(f"first run: {scripts} scripts x {per_script} versions, -r", round(total / spread_s, 1),
                  round(total / single_s, 1), ">= 0.90x the 1-script batch", share >= 0.90, unit="v/s",
                  note=f"{total} versions in new projects (every script described): {spread_s:.2f} s over {scripts} "
                       f"scripts vs {single_s:.2f} s in one script; medians of {runs}, interleaved")


def many_scripts(scripts: int = 200, per_script: int = 5, runs: int = 1, starts: int = 5) -> list:
    """``mlpipeline -r`` over 200 scripts x 5 trivial versions vs 1 script x 1 000
    trivial versions (a child process each), descriptions cached; versions/s of
    each. Then the time from launching ``-r`` (warm cache) to the first start."""
    total = scripts * per_script
    spread, single = scripts_project(scripts, per_script), scripts_project(1, total)
    try:
        began = time.perf_counter()
        cached = (_warm(spread), _warm(single))
        print(f"  cached {cached[0]} + {cached[1]} descriptions (test-mode warm-up) in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        spread_s, single_s = interleaved(runs, lambda: _batch(spread, total), lambda: _batch(single, total))
        firsts: List[Tuple[float, float]] = []
        for _ in range(starts):
            firsts.append((_first_start(spread), _first_start(single)))
        help_s = statistics.median(wall(mlpipeline_cmd() + ["--help"]) for _ in range(5))
    finally:
        shutil.rmtree(spread, ignore_errors=True)
        shutil.rmtree(single, ignore_errors=True)
    spread_rate, single_rate = total / spread_s, total / single_s
    share = spread_rate / single_rate
    first_spread = statistics.median(f[0] for f in firsts)
    first_single = statistics.median(f[1] for f in firsts)
    return [
        Result(f"{scripts} scripts x {per_script} versions, -r", round(spread_rate, 1), round(single_rate, 1),
               ">= 0.90x the 1-script batch", share >= 0.90, unit="v/s",
               note=f"{total} versions: {spread_s:.1f} s spread over {scripts} scripts vs {single_s:.1f} s in one "
                    f"script ({total / single_s:.1f} v/s = {single_s / total * 1000:.0f} ms a version); "
                    f"descriptions cached by a test-mode run first; {runs} timed batch(es) each"),
        Result(f"launch -> first run started, {scripts} scripts cached", round(first_spread * 1000, 1),
               round(first_single * 1000, 1), "<= 1000 ms", first_spread <= 1.0,
               note=f"`mlpipeline -r` launched -> first runs.started_at; median of {starts} (max "
                    f"{max(f[0] for f in firsts) * 1000:.0f} ms); baseline = the 1-script project; "
                    f"mlpipeline --help {help_s * 1000:.0f} ms"),
    ]
