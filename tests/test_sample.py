"""The Keras sample project, with real TensorFlow, through the runner."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from helpers import REPO

pytest.importorskip("tensorflow", reason="the [tf] extra is not installed")  # make test installs it

pytestmark = pytest.mark.slow


@pytest.fixture
def sample(tmp_path):
    target = tmp_path / "sample-project"
    shutil.copytree(REPO / "examples" / "sample-project", target,
                    ignore=shutil.ignore_patterns("outputs", "__pycache__"))
    return target


def mlp(project, *args):
    return subprocess.run([sys.executable, "-m", "mlpipeline", "-C", str(project), *args],
                          capture_output=True, text=True, timeout=600)


def test_sample_test_mode(sample):
    result = mlp(sample)
    assert result.returncode == 0, result.stderr
    assert "3 succeeded, 0 failed" in result.stderr
    noise = [line for line in (result.stdout + result.stderr).splitlines()
             if "oneDNN" in line or "absl::InitializeLog" in line or "cpu_feature_guard" in line]
    assert noise == [], noise  # the sample runs quietly: no TensorFlow start-up notices


def test_quick_start_targets_say_what_they_do():
    """The two quick-start commands never sit silent in pip: each step says what it does first."""
    makefile = (REPO / "Makefile").read_text()
    for target in ("install:", "sample:", "test:"):
        body = makefile.split("\n" + target, 1)[1].split("\n\n", 1)[0]
        assert '@echo "==> ' in body, f"make {target[:-1]} does not say what it does"


def test_sample_execution_mode_trains_checkpoints_and_resumes(sample):
    import sqlite3

    first = mlp(sample, "-r", "--version", "small")
    assert first.returncode == 0, first.stderr
    model_dir = sample / "models" / "outputs" / "model_ckpts" / "sample_model-small"
    assert list((model_dir / "checkpoints").glob("ckpt-*")), "no checkpoint written"
    assert list((model_dir / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard logs"
    second = mlp(sample, "-r", "--version", "small")
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(sample / "models" / "outputs" / "mlpipeline.db") as conn:
        runs = conn.execute("SELECT steps, status FROM runs ORDER BY id").fetchall()
        accuracy = conn.execute("SELECT value FROM metrics WHERE split = 'test' AND name = 'accuracy' "
                                "ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        epochs = conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'loss' AND step IS NOT NULL").fetchone()[0]
    assert runs[0] == (167, "succeeded")  # ceil(20 epochs * 266 rows / 32)
    assert runs[1] == (0, "succeeded")    # resumed from the checkpoint: nothing left to train
    assert accuracy > 0.9
    assert epochs >= 20                   # one loss point per epoch, logged with log_metric
