"""The Slurm backend on a real one-node Slurm (tests/slurm/cluster.py: Debian's slurmctld, slurmd and
munge, as root): 100 trivial versions through ``mlpipeline -r --backend slurm`` against the very same
100 jobs (the job scripts that run wrote) submitted by a plain ``sbatch`` loop and waited for with
``squeue``, interleaved, same cluster; and how many Slurm calls each poll makes, counted by shims on
PATH that log every call of ``squeue``, ``sacct``, ``sinfo``, ``sbatch`` and ``scancel``."""
from __future__ import annotations

import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from .common import Result, mlpipeline_cmd, reset_outputs, trivial_project

VERSIONS = 100
ROUNDS = 3
POLL = 2.0  # [SLURM] poll, the default
SHIM = """#!/bin/sh
echo "$(date +%s.%N) {name}" >> "{log}"
exec {real} "$@"
"""


def _cluster():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "slurm"))
    from cluster import OneNodeSlurm, missing  # type: ignore[import-not-found]

    return OneNodeSlurm, missing


def _shims(folder: str, log: str) -> str:
    os.makedirs(folder, exist_ok=True)
    for name in ("squeue", "sacct", "sinfo", "sbatch", "scancel"):
        real = shutil.which(name)
        if real is None:
            continue
        path = os.path.join(folder, name)
        with open(path, "w") as out:
            out.write(SHIM.format(name=name, log=log, real=real))
        os.chmod(path, 0o755)
    return folder


def _calls(log: str) -> List[tuple]:
    if not os.path.exists(log):
        return []
    with open(log) as handle:
        return [(float(t), name) for t, name in (line.split() for line in handle if line.strip())]


def _sbatch_loop(root: str, env: Dict[str, str]) -> float:
    """The same jobs, each job.sh the runner wrote, submitted in a plain loop and waited for with squeue."""
    scripts = sorted(glob.glob(os.path.join(root, "models", "outputs", "runs", "*", "slurm", "job.sh")))
    for path in glob.glob(os.path.join(root, "models", "outputs", "runs", "*", "slurm", "outcome.json")):
        os.unlink(path)
    start = time.perf_counter()
    ids = []
    for script in scripts:
        folder = os.path.dirname(script)
        done = subprocess.run(["sbatch", "--parsable", "--ntasks=1", "--cpus-per-task=1", "--no-requeue",
                               f"--output={folder}/slurm-%j.out", f"--chdir={root}", script],
                              capture_output=True, text=True, env=env, check=True)
        ids.append(done.stdout.strip().split(";")[0])
    while True:
        left = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-t", "PD,R,CG,CF", "-o", "%i"],
                              capture_output=True, text=True, env=env).stdout.split()
        if not left:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    missing = [s for s in scripts if not os.path.exists(os.path.join(os.path.dirname(s), "outcome.json"))]
    if len(scripts) != VERSIONS or missing:
        raise RuntimeError(f"the sbatch loop ran {len(scripts) - len(missing)} of {VERSIONS} jobs")
    return elapsed


def slurm_backend(versions: int = VERSIONS, rounds: int = ROUNDS) -> List[Result]:
    try:
        one_node_slurm, missing = _cluster()
    except ImportError as exc:
        return [Result("slurm backend", 0, None, "needs tests/slurm", False, note=str(exc))]
    why = missing()
    if why:
        return [Result("slurm backend: 100 versions vs an sbatch loop", 0, None, "<= 1.3x", False, unit="s",
                       note=f"not run: {why}")]
    work = tempfile.mkdtemp(prefix="mlp-bench-slurm-")
    cluster = one_node_slurm(os.path.join(work, "cluster"))
    cluster.start()
    try:
        log = os.path.join(work, "calls.log")
        env = {**os.environ, **cluster.env, "PATH": _shims(os.path.join(work, "bin"), log) + os.pathsep
               + os.environ.get("PATH", "")}
        root = trivial_project(versions, os.path.join(work, "proj"))
        with open(os.path.join(root, "mlp.config"), "a") as out:
            out.write(f"backend = slurm\n\n[SLURM]\npoll = {POLL}\n")
        ours: List[float] = []
        loop: List[float] = []
        worst_window = 0
        status_calls: List[int] = []
        for _ in range(rounds):
            reset_outputs(root)
            if os.path.exists(log):
                os.unlink(log)
            start = time.perf_counter()
            done = subprocess.run([*mlpipeline_cmd(), "-r"], cwd=root, env=env, capture_output=True, text=True)
            ours.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise RuntimeError(f"mlpipeline -r --backend slurm exited {done.returncode}: {done.stderr[-800:]}")
            calls = [(t, name) for t, name in _calls(log) if name in ("squeue", "sacct", "sinfo")]
            status_calls.append(len(calls))
            # a poll's calls come together; the next poll is POLL seconds on: the most calls within one window
            for i, (t, _) in enumerate(calls):
                worst_window = max(worst_window, sum(1 for u, _ in calls[i:] if u - t < POLL / 2))
            loop.append(_sbatch_loop(root, cluster.env | {"PATH": os.environ.get("PATH", "")}))
        ratio = statistics.median(o / b for o, b in zip(ours, loop))
        return [
            Result(f"slurm backend: {versions} trivial versions, mlpipeline -r vs sbatch loop + squeue",
                   round(statistics.median(ours), 2), round(statistics.median(loop), 2), "<= 1.3x the sbatch loop",
                   ratio <= 1.3, unit="s", note=f"median ratio of {rounds} interleaved pairs: {ratio:.2f}"),
            Result(f"slurm backend: Slurm calls in one poll ({versions} jobs)", worst_window, None,
                   "<= 2 whatever the number of jobs", worst_window <= 2, unit="calls",
                   note=f"squeue/sacct/sinfo calls per batch: {statistics.median(status_calls):.0f} (median), "
                        f"not one per job"),
        ]
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
