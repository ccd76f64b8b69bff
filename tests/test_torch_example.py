"""examples/torch-project: the penguins data through mlpipeline.data, a PyTorch
model and a random search with early stopping — run for real, as a user would."""
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
    assert "1 succeeded, 0 failed" in smoke.stderr  # test mode: one point of the search
    trained = project.run("-r", "-n", "-j", "2", timeout=600)
    assert trained.returncode == 0, trained.stderr
    runs = json.loads(project.run("runs", "--mode", "run", "--format", "json").stdout)
    assert len(runs) == 8 and len({r["version"] for r in runs}) == 8
    assert all(r["version"].startswith("rs-") for r in runs)
    assert {r["status"] for r in runs} <= {"succeeded", "pruned"}
    best = max((r for r in runs if r["status"] == "succeeded"), key=lambda r: r["metrics"]["test/accuracy"])
    assert best["metrics"]["test/accuracy"] > 0.9
    shown = json.loads(project.run("show", str(best["id"]), "--format", "json").stdout)
    assert shown["data_fingerprint"].startswith("csv:")
