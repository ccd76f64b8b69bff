"""Timing helpers: interleaved runs of a command and its baseline, medians, ratios."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence


@dataclass
class Result:
    measure: str
    median: float          # the figure the target applies to
    baseline: Optional[float]
    target: str
    passed: bool
    unit: str = "ms"
    note: str = ""

    @property
    def ratio(self) -> Optional[float]:
        return self.median / self.baseline if self.baseline else None

    def row(self) -> dict:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 2)
        return data


def wall(cmd: Sequence[str], cwd: Optional[str] = None, env: Optional[dict] = None) -> float:
    """Seconds one run of ``cmd`` takes; fails loudly if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def interleaved(runs: int, *commands: Callable[[], float]) -> List[float]:
    """Medians of each timing function, run alternately so noise hits all alike."""
    samples: List[List[float]] = [[] for _ in commands]
    for _ in range(runs):
        for index, command in enumerate(commands):
            samples[index].append(command())
    return [statistics.median(s) for s in samples]


def mlpipeline_cmd() -> List[str]:
    script = Path(sys.executable).with_name("mlpipeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlpipeline"]


# a model script's imports and a dataloader that loads nothing: the start of every bench script
STUB_LOADER = textwrap.dedent('''\
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    ''')
TRIVIAL_HEADER = STUB_LOADER + textwrap.dedent('''\
    class M(Model):
        def train_model(self, input_fn, steps): pass
        def evaluate_model(self, input_fn, steps): return {"x": 1.0}

    versions = Versions(L(), 1, 1)
    ''')
TRIVIAL_SCRIPT = TRIVIAL_HEADER + textwrap.dedent('''\
    for i in range(__COUNT__):
        versions.add_version("v%03d" % i)
    MODEL = M(versions)
    ''')


def trivial_project(count: int, root: Optional[str] = None) -> str:
    """A throwaway project with one script of ``count`` trivial versions."""
    return script_project(TRIVIAL_SCRIPT.replace("__COUNT__", str(count)), "trivial.py", root)


def script_project(text: str, name: str, root: Optional[str] = None, queue_extra: str = "") -> str:
    """A throwaway project whose queue is one script, ``name``, holding ``text``; ``queue_extra`` ends both
    queue configs (a plain script's section of argument lines)."""
    root = root or tempfile.mkdtemp(prefix="mlp-bench-")
    models = os.path.join(root, "models")
    os.makedirs(models, exist_ok=True)
    with open(os.path.join(root, "mlp.config"), "w") as f:
        f.write("[MLP]\nmodels_dir = models\n")
    for config in ("models.config", "models_test.config"):
        with open(os.path.join(root, config), "w") as f:
            f.write(f"[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\n{name}\n{queue_extra}")
    with open(os.path.join(models, name), "w") as f:
        f.write(text)
    return root


def reset_outputs(root: str) -> None:
    shutil.rmtree(os.path.join(root, "models", "outputs"), ignore_errors=True)
