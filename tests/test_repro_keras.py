"""Reproducibility fields per run, and live Keras metrics through the callback."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from helpers import tracer


def git(project, *args):
    subprocess.run(["git", "-C", str(project.root), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin", "HOME": str(project.root)})


def show(project, run_id):
    result = project.run("show", str(run_id), "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_git_fields_and_diff_in_a_git_project(project):
    project.script("a.py", tracer({"v": {}}, defaults=", seed=123") + "import numpy\n")
    project.configure(["a.py"])
    project.write(".gitignore", "models/outputs/\ntrace.log\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "init")
    head = subprocess.run(["git", "-C", str(project.root), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert project.run("-r").returncode == 0
    clean = show(project, 1)
    assert (clean["git_commit"], clean["git_dirty"], clean["git_diff_path"]) == (head, False, None)
    assert clean["seed"] == "123"
    assert clean["packages"]["numpy"]  # the script imported numpy
    (project.models / "a.py").write_text((project.models / "a.py").read_text() + "# tweak\n")
    assert project.run("-r").returncode == 0
    dirty = show(project, 2)
    assert dirty["git_commit"] == head and dirty["git_dirty"] is True
    with open(dirty["git_diff_path"]) as handle:
        assert "+# tweak" in handle.read()


def test_outside_git_nothing_fails(project):
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    assert project.run("-r", env={"GIT_CEILING_DIRECTORIES": str(project.root.parent)}).returncode == 0
    record = show(project, 1)
    assert record["git_commit"] is None and record["git_dirty"] is None
    assert "numpy" not in record["packages"]


def test_outside_git_without_git_installed(project):
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    import sys
    import os
    bindir = os.path.dirname(sys.executable)
    assert project.run("-r", env={"PATH": bindir}).returncode == 0  # no git on PATH
    assert show(project, 1)["git_commit"] is None


KERAS_SCRIPT = '''\
import os, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
from mlpipeline.helper import Model, DataLoader
from mlpipeline.keras import MetricsCallback
from mlpipeline.utils import Versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

class Data(DataLoader):
    def __init__(self):
        rng = np.random.RandomState(0)
        self.x = rng.normal(size=(64, 3)).astype("float32")
        self.y = (self.x.sum(axis=1) > 0).astype("float32")
    def get_train_input(self, mode=None, **kw): return (self.x, self.y)
    def get_test_input(self, **kw): return (self.x, self.y)
    def get_train_sample_count(self): return 64
    def get_test_sample_count(self): return 64

class Tiny(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        self.net.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    def train_model(self, input_fn, steps):
        x, y = input_fn
        self.net.fit(x, y, epochs=5, batch_size=16, verbose=0, validation_data=(x, y),
                     callbacks=[MetricsCallback()])
        open(os.path.join(ROOT, "trained"), "w").close()
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(ROOT, "go")) and time.time() < deadline:
            time.sleep(0.05)
    def evaluate_model(self, input_fn, steps):
        x, y = input_fn
        loss, acc = self.net.evaluate(x, y, verbose=0)
        return {"loss": loss, "accuracy": acc}

v = Versions(Data(), 16, 1)
v.add_version("tiny")
MODEL = Tiny(v)
'''


@pytest.mark.slow
def test_keras_callback_metrics_visible_while_running(project):
    pytest.importorskip("keras")
    project.script("k.py", KERAS_SCRIPT)
    project.configure(["k.py"])
    runner = project.start("-r")
    deadline = time.time() + 180
    while not (project.root / "trained").exists():
        assert time.time() < deadline and runner.poll() is None, runner.communicate()
        time.sleep(0.1)
    # points reach the ledger in batches (every 0.1 s from the child, every 0.1 s into SQLite): give them a moment
    batch_deadline = time.time() + 5
    while True:
        record = show(project, 1)
        summary = {(m["split"], m["name"]): m for m in record["metrics"]}
        if summary.get(("val", "loss"), {}).get("points") == 5 or time.time() > batch_deadline:
            break
        time.sleep(0.1)
    assert record["status"] == "running"
    assert summary[("train", "loss")]["points"] == 5 and summary[("train", "loss")]["last_step"] == 4
    assert summary[("val", "loss")]["points"] == 5
    assert summary[("train", "accuracy")]["points"] == 5
    (project.root / "go").touch()
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    with project.db() as conn:
        steps = [r[0] for r in conn.execute("SELECT step FROM metrics WHERE split='train' AND name='loss' "
                                            "AND step IS NOT NULL ORDER BY rowid")]
    assert steps == [0, 1, 2, 3, 4]
    assert "keras" in show(project, 1)["packages"]
