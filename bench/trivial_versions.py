"""Issue 13: 100 trivial versions, each in its own process, against Optuna
running 100 trivial trials in-process with SQLite storage, in the same run.

Three commands, interleaved, each run ``RUNS`` times from launch to exit:
``mlpipeline -r`` over one script of 100 trivial versions with the fork server
(the default), the same with ``MLPIPELINE_FORKSERVER=0`` (a spawned child per
version), and a Python process that imports Optuna, creates a study on a
fresh SQLite file and optimizes ``x**2`` for 100 trials. The ratio is
mlpipeline's wall over Optuna's whole process wall: both include their
interpreter start and imports (ours also its lock, ledger, describe child and
logs). Optuna's own timestamps split its wall into import + study creation
and the 100 trials, reported in the note.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from .common import Result, mlpipeline_cmd, reset_outputs, trivial_project, wall

VERSIONS = 100
RUNS = 3
JOBS = 2  # the cores of this project's machines

OPTUNA = """\
import json, sys, time
began = time.perf_counter()
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
imported = time.perf_counter()
study = optuna.create_study(storage="sqlite:///" + sys.argv[1])
created = time.perf_counter()
study.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=int(sys.argv[2]))
done = time.perf_counter()
print(json.dumps({"import": imported - began, "create": created - imported, "trials": done - created}))
"""


def optuna_python() -> Optional[str]:
    """An interpreter that imports optuna: ours, or the one our virtual environment was made from."""
    for candidate in dict.fromkeys([sys.executable, os.path.realpath(sys.executable), shutil.which("python3") or ""]):
        if candidate and subprocess.run([candidate, "-c", "import optuna"], capture_output=True).returncode == 0:
            return candidate
    return None


def trivial_versions(versions: int = VERSIONS, runs: int = RUNS) -> List[Result]:
    """``mlpipeline -r`` over 100 trivial versions (fork server; spawned) against Optuna's 100 trials."""
    python = optuna_python()
    if python is None:
        return [Result("trivial versions vs Optuna", 0, None, "needs optuna", False, note="optuna not installed")]
    root = trivial_project(versions)
    work = tempfile.mkdtemp(prefix="mlp-bench-optuna-")
    walls: Dict[str, List[float]] = {"fork": [], "fork_j": [], "spawn": [], "optuna": []}
    inside: List[Dict[str, float]] = []
    env_fork = {**os.environ, "MLPIPELINE_FORKSERVER": "1"}
    env_spawn = {**os.environ, "MLPIPELINE_FORKSERVER": "0"}

    def mlpipeline(kind: str, env: Dict[str, str], jobs: int = 1) -> None:
        reset_outputs(root)
        walls[kind].append(wall(mlpipeline_cmd() + ["-r", "-j", str(jobs), "-C", root], env=env))

    def optuna(run: int) -> None:
        db = os.path.join(work, f"study-{run}.db")
        began = time.perf_counter()
        proc = subprocess.run([python, "-c", OPTUNA, db, str(versions)], capture_output=True, text=True)
        walls["optuna"].append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise RuntimeError(f"optuna exited {proc.returncode}: {proc.stderr[-500:]}")
        inside.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    try:
        mlpipeline("fork", env_fork)  # warm-up: the page cache, bytecode
        optuna(-1)
        walls["fork"].clear()
        walls["optuna"].clear()
        inside.clear()
        for run in range(runs):
            mlpipeline("fork", env_fork)
            mlpipeline("fork_j", env_fork, JOBS)
            mlpipeline("spawn", env_spawn)
            optuna(run)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    median = {kind: statistics.median(samples) for kind, samples in walls.items()}
    part = {key: statistics.median(sample[key] for sample in inside) for key in ("import", "create", "trials")}
    spread = "; ".join(f"{kind} " + ", ".join(f"{s:.2f}" for s in samples) for kind, samples in walls.items())
    optuna_note = (f"Optuna's own timestamps (median): import {part['import']:.2f} s, study creation "
                   f"{part['create']:.2f} s, {versions} trials {part['trials']:.2f} s; its whole process, interpreter "
                   f"start included, {median['optuna']:.2f} s (the baseline)")
    ratio = median["fork_j"] / median["optuna"]
    return [
        Result(f"trivial_versions: {versions} versions, -r -j {JOBS}, fork server", round(median["fork_j"], 2),
               round(median["optuna"], 2), "<= 0.5 x Optuna", ratio <= 0.5, unit="s",
               note=f"{runs} interleaved runs each (s): {spread}. -j {JOBS}: one version per core of this machine; "
                    f"Optuna's trials run one at a time (n_jobs=1, as threads would not help a trivial objective "
                    f"under the GIL). {optuna_note}"),
        Result(f"trivial_versions: {versions} versions, -r (-j 1), fork server", round(median["fork"], 2),
               round(median["optuna"], 2), "reported", True, unit="s",
               note=f"one version at a time: {median['fork'] / median['optuna']:.2f}x Optuna"),
        Result(f"trivial_versions: {versions} versions, -r, MLPIPELINE_FORKSERVER=0", round(median["spawn"], 2),
               round(median["optuna"], 2), "reported", True, unit="s",
               note=f"fork server saves {(median['spawn'] - median['fork']) / versions * 1000:.1f} ms a version"),
        Result(f"trivial_versions: Optuna {versions} trials alone, import + study excluded", round(part["trials"], 2),
               round(median["optuna"], 2), "reported", True, unit="s",
               note=f"ours over this: {median['fork'] / part['trials']:.2f}x"),
    ]
