"""examples/torch-project: the penguins data through mlpipeline.data, a PyTorch
model and a random search — run for real, as a user would."""
from __future__ import annotations

import json
import shutil

from helpers import REPO, Project


def test_the_torch_example_runs_and_learns(tmp_path):
    shutil.copytree(REPO / "examples" / "torch-project", tmp_path / "torch-project",
                    ignore=shutil.ignore_patterns("outputs"))
    project = Project(tmp_path / "torch-project")
    smoke = project.run(timeout=300)
    assert smoke.returncode == 0, smoke.stderr
    assert "6 succeeded, 0 failed" in smoke.stderr
    trained = project.run("-r", "-n", "--version", "r-abe8a216", timeout=300)
    assert trained.returncode == 0, trained.stderr
    runs = json.loads(project.run("runs", "--mode", "run", "--format", "json").stdout)
    assert [r["version"] for r in runs] == ["r-abe8a216"]
    assert runs[0]["metrics"]["test/accuracy"] > 0.9
    shown = json.loads(project.run("show", str(runs[0]["id"]), "--format", "json").stdout)
    assert shown["data_fingerprint"].startswith("csv:")
