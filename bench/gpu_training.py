"""On a real GPU (issue 21): a small PyTorch model trained as a plain script alone and as mlpipeline
versions — a whole GPU, two half-GPU versions side by side, a 2-GPU version where there are two — printing
the runner's overhead over the script alone (target ≤ 3 % of its training time) and whether the
``sys/gpu_memory_mb`` curve the runner sampled matches what ``nvidia-smi`` saw in the same seconds.

Not part of ``python -m bench`` (these machines have no GPU): run ``python -m bench.gpu_training`` where
there is one (PyTorch with CUDA, nvidia-ml-py and nvidia-smi installed). It prints one line per figure and
exits 1 when a target is missed.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Dict, List

from .common import mlpipeline_cmd, reset_outputs, script_project, wall

TRAIN = textwrap.dedent("""\
    import argparse, torch
    from mlpipeline import log_metric
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=int, default=2048)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(args.width, args.width), torch.nn.ReLU(),
                                torch.nn.Linear(args.width, 10)).to(device)
    if torch.cuda.device_count() > 1:
        model = torch.nn.DataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(512, args.width, device=device)
    y = torch.randint(0, 10, (512,), device=device)
    for step in range(args.steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            log_metric("loss", loss.item(), step=step)
    torch.cuda.synchronize()
    """)

SHARED = textwrap.dedent("""\
    from mlpipeline import Command
    from mlpipeline.utils import Versions
    versions = Versions()
    versions.add_version("half_a", steps=STEPS, resources={"gpus": 0.5})
    versions.add_version("half_b", steps=STEPS, resources={"gpus": 0.5})
    PAIR
    MODEL = Command("train.py")
    """)


def _gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len(out.stdout.split()) if out.returncode == 0 else 0


class Smi:
    """``nvidia-smi`` polled every 0.5 s: the peak memory (MiB) each GPU showed."""

    def __init__(self) -> None:
        self.peaks: Dict[int, float] = {}
        self._proc = subprocess.Popen(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits",
                                       "-lms", "500"], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                index, used = (float(x) for x in line.split(","))
            except ValueError:
                continue
            self.peaks[int(index)] = max(self.peaks.get(int(index), 0.0), used)

    def stop(self) -> Dict[int, float]:
        self._proc.terminate()
        self._proc.wait(10)
        return self.peaks


def _sys_peaks(root: str) -> List[Dict[str, float]]:
    conn = sqlite3.connect(os.path.join(root, "models", "outputs", "mlpipeline.db"))
    try:
        rows = conn.execute("SELECT r.version, r.gpu, s.name, s.max FROM runs r JOIN metric_summary s "
                            "ON s.run_id = r.id WHERE s.split = 'sys' ORDER BY r.id").fetchall()
    finally:
        conn.close()
    found: Dict[str, Dict] = {}
    for version, gpu, name, peak in rows:
        found.setdefault(version, {"version": version, "gpu": gpu})[name] = peak
    return list(found.values())


def main(steps: int = 3000, runs: int = 3) -> int:
    gpus = _gpu_count()
    if gpus == 0:
        print("no GPU here (nvidia-smi lists none): nothing measured")
        return 0
    root = script_project(TRAIN, "train.py", root=tempfile.mkdtemp(prefix="mlp-gpu-bench-"),
                          queue_extra=f"\n[train.py]\nwhole = --steps {steps}\n")
    ok = True
    try:
        alone = [sys.executable, "models/train.py", "--steps", str(steps)]
        runner = mlpipeline_cmd() + ["-r", "-n", "-C", root]
        wall(alone, cwd=root)  # CUDA's first start, and the runner's description cache
        reset_outputs(root)
        wall(runner)
        alone_s, runner_s = [], []
        for _ in range(runs):
            alone_s.append(wall(alone, cwd=root))
            reset_outputs(root)
            runner_s.append(wall(runner))
        overhead = (statistics.median(runner_s) - statistics.median(alone_s)) / statistics.median(alone_s)
        ok &= overhead <= 0.03
        print(f"whole GPU: python train.py alone {statistics.median(alone_s):.2f} s, under mlpipeline -r "
              f"{statistics.median(runner_s):.2f} s: overhead {overhead * 100:.1f} % (target <= 3 %)")

        # the sys/ curves against nvidia-smi, with the shared-GPU and 2-GPU versions
        pair = f'versions.add_version("pair", steps={steps}, resources={{"gpus": 2}})' if gpus > 1 else ""
        with open(os.path.join(root, "models", "shared.py"), "w") as handle:
            handle.write(SHARED.replace("STEPS", str(steps)).replace("PAIR", pair))
        with open(os.path.join(root, "models.config"), "w") as handle:
            handle.write("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\nshared.py\n")
        reset_outputs(root)
        smi = Smi()
        began = time.perf_counter()
        subprocess.run(mlpipeline_cmd() + ["-r", "-C", root, "--sample-interval", "1"], check=True)
        took = time.perf_counter() - began
        seen = smi.stop()
        peaks = _sys_peaks(root)
        for run in peaks:
            print(f"  {run['version']}: GPU {run['gpu']}, sampled peak GPU memory "
                  f"{run.get('gpu_memory_mb', 0):.0f} MiB, GPU util {run.get('gpu_util', 0):.0f} %")
        halves = [r for r in peaks if r["version"].startswith("half")]
        shared = len(halves) == 2 and halves[0]["gpu"] == halves[1]["gpu"]
        ok &= shared
        print(f"two 0.5-GPU versions on one GPU: {'yes' if shared else 'NO'} ({took:.1f} s for the batch)")
        for index, peak in sorted(seen.items()):
            sampled = sum(r.get("gpu_memory_mb", 0) for r in peaks if str(index) in (r["gpu"] or "").split(","))
            print(f"  GPU {index}: nvidia-smi peak {peak:.0f} MiB; the runner's sampled peaks there sum to "
                  f"{sampled:.0f} MiB")
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
