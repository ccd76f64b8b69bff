"""``mlpipeline init``: a new project that passes test mode at once."""
from __future__ import annotations

import os
from typing import List

from ..core.errors import UsageError

MLP_CONFIG = """\
# Project settings. Paths are relative to this file.
[MLP]
models_dir = models
"""

QUEUE_CONFIG = """\
# {purpose}
# use_blacklist = False: run exactly the scripts under [WHITELISTED_MODELS], in order.
# use_blacklist = True:  run every *.py in models_dir except those under [BLACKLISTED_MODELS].
# A script may name some of its versions:  my_model.py = small, large
[MLP]
use_blacklist = False

[WHITELISTED_MODELS]
example_model.py

[BLACKLISTED_MODELS]
"""

EXAMPLE_SCRIPT = '''\
"""An example model script: fits y = 3x + 1 by stochastic gradient descent.

mlpipeline imports this file, reads MODEL, and runs each of its versions:
  pre_execution_hook -> train_model(steps) -> evaluate_model (train, then test).
`mlpipeline` runs every version for one step in a temporary folder (a smoke
test); `mlpipeline -r -u` trains them for real into outputs/model_ckpts/.
"""
import json
import os
import random

from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import ExecutionModeKeys, Versions, version_parameters


class LineData(DataLoader):
    """Noisy points on a line, split into a train and a test set."""

    def __init__(self, count=200, seed=0):
        super().__init__()
        rng = random.Random(seed)
        points = [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(count))]
        self.train, self.test = points[: count * 4 // 5], points[count * 4 // 5:]
        self.add_to_summery(f"{len(self.train)} train / {len(self.test)} test points")

    def get_train_input(self, mode=None, **kwargs):
        return lambda: list(self.train)      # an "input function", as in the original tool

    def get_test_input(self, **kwargs):
        return lambda: list(self.test)

    def get_train_sample_count(self):
        return len(self.train)

    def get_test_sample_count(self):
        return len(self.test)


class LineModel(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
        self.version = version
        self.checkpoint = os.path.join(model_dir, "weights.json")
        self.weights = {"w": 0.0, "b": 0.0, "steps": 0}
        if os.path.exists(self.checkpoint):          # resume where the last run stopped
            with open(self.checkpoint) as handle:
                self.weights = json.load(handle)

    def get_trained_step_count(self):
        return self.weights["steps"]

    def train_model(self, input_fn, steps):
        data = input_fn()
        batch = self.version[version_parameters.BATCH_SIZE]
        rate = self.version["learning_rate"]
        for step in range(steps):
            sample = [data[(step * batch + i) % len(data)] for i in range(batch)]
            grad_w = sum(2 * (self.weights["w"] * x + self.weights["b"] - y) * x for x, y in sample) / batch
            grad_b = sum(2 * (self.weights["w"] * x + self.weights["b"] - y) for x, y in sample) / batch
            self.weights["w"] -= rate * grad_w
            self.weights["b"] -= rate * grad_b
            self.weights["steps"] += 1
            if self.weights["steps"] % 10 == 0:  # a point of the training curve: mlpipeline show / serve draw it
                loss = sum((self.weights["w"] * x + self.weights["b"] - y) ** 2 for x, y in sample) / batch
                self.log_metric("loss", loss, step=self.weights["steps"])
        with open(self.checkpoint, "w") as handle:
            json.dump(self.weights, handle)
        self.add_to_summery(f"w={self.weights['w']:.3f} b={self.weights['b']:.3f}")

    def evaluate_model(self, input_fn, steps):
        data = input_fn()
        mse = sum((self.weights["w"] * x + self.weights["b"] - y) ** 2 for x, y in data) / len(data)
        return {"mse": mse}


versions = Versions(LineData(), batch_size=8, epoc_count=20, learning_rate=0.05)
versions.add_version("slow", learning_rate=0.01)
versions.add_version("fast", learning_rate=0.1)
versions.add_version("small_batch", batch_size=2, epoc_count=5)

MODEL = LineModel(versions)
'''


def init_project(directory: str) -> List[str]:
    """Create a project in ``directory``; returns the files written. Refuses to
    overwrite anything."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory}: is a file; give a new or empty folder for the project")
    files = {
        "mlp.config": MLP_CONFIG,
        "models.config": QUEUE_CONFIG.format(purpose="The execution-mode queue (mlpipeline -r)."),
        "models_test.config": QUEUE_CONFIG.format(purpose="The test-mode queue (mlpipeline)."),
        os.path.join("models", "example_model.py"): EXAMPLE_SCRIPT,
    }
    existing = [name for name in files if os.path.exists(os.path.join(directory, name))]
    if existing:
        raise UsageError(f"{directory}: already has {', '.join(existing)}; init writes a new project only "
                         f"(pick an empty folder or remove them)")
    written = []
    for name, text in files.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(path)
    return written
