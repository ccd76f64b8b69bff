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


PLAIN_QUEUE = """\
# {purpose}
# A plain script runs once per argument line in its own section: python models/train.py <arguments>.
# A script may name some of its versions:  train.py = small
[MLP]
use_blacklist = False

[WHITELISTED_MODELS]
train.py

[train.py]
small = --lr 0.05 --epochs 20
fast = --lr 0.2 --epochs 10 --batch-size 16
"""

PLAIN_SCRIPT = '''\
"""A plain training script: fits y = 3x + 1 by stochastic gradient descent, numpy only.

It runs alone (python models/train.py --lr 0.1) and under mlpipeline, which runs it once per argument
line in models.config's [train.py] section. `mlpipeline` runs each version once with test_mode() true
(one epoch, a temporary model dir); `mlpipeline -r -u` trains them for real into outputs/model_ckpts/.
"""
import argparse
import json
import os

import numpy as np

from mlpipeline import log_metric, test_mode

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=8)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
x = rng.uniform(-1, 1, 200)
y = 3 * x + 1 + rng.normal(0, 0.1, 200)
train_x, train_y, test_x, test_y = x[:160], y[:160], x[160:], y[160:]
w = b = 0.0
for epoch in range(1 if test_mode() else args.epochs):
    order = rng.permutation(len(train_x))
    for start in range(0, len(order), args.batch_size):
        batch = order[start:start + args.batch_size]
        error = w * train_x[batch] + b - train_y[batch]
        w -= args.lr * 2 * float(np.mean(error * train_x[batch]))
        b -= args.lr * 2 * float(np.mean(error))
    log_metric("loss", float(np.mean((w * train_x + b - train_y) ** 2)), step=epoch)
    log_metric("mse", float(np.mean((w * test_x + b - test_y) ** 2)), step=epoch, split="test")

model_dir = os.environ.get("MLPIPELINE_MODEL_DIR", ".")   # the version's own folder under mlpipeline
with open(os.path.join(model_dir, "weights.json"), "w") as handle:
    json.dump({"w": w, "b": b}, handle)
print(f"w={w:.3f} b={b:.3f}")
'''


def init_project(directory: str, plain: bool = False) -> List[str]:
    """Create a project in ``directory`` (``plain``: its example is a plain argparse script with two
    versions); returns the files written. Refuses to overwrite anything."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory}: is a file; give a new or empty folder for the project")
    queue = PLAIN_QUEUE if plain else QUEUE_CONFIG
    files = {
        "mlp.config": MLP_CONFIG,
        "models.config": queue.format(purpose="The execution-mode queue (mlpipeline -r)."),
        "models_test.config": queue.format(purpose="The test-mode queue (mlpipeline)."),
        os.path.join("models", "train.py" if plain else "example_model.py"): PLAIN_SCRIPT if plain else EXAMPLE_SCRIPT,
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
