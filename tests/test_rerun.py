"""Exact re-runs (issue 25): the environment each run records once, ``show --env``, and ``rerun --exact``
from the recorded commit, diff and untracked files."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess

from helpers import FIXTURES

from mlpipeline.core import environment

TRAIN = """\
import argparse, random
from mlpipeline import log_metric
FACTOR = 1.0
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
parser.add_argument("--scale", type=float, default=1.0)
args = parser.parse_args()
rng = random.Random(args.seed)
value = sum(rng.random() for _ in range(100)) * args.scale * FACTOR
log_metric("score", value, split="test")
log_metric("loss", value / 3, step=0)
"""
CONFIG = "[WHITELISTED_MODELS]\ntrain.py\n\n[train.py]\na = --seed 7 --scale 2\n"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(project, *args) -> str:
    return subprocess.run(["git", "-C", str(project.root), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def plain(project):
    project.script("train.py", TRAIN)
    project.write("models.config", CONFIG)
    project.write("models_test.config", CONFIG)


def results(project, run_id):
    with project.db() as conn:
        return {(r["split"], r["name"]): r["value"] for r in conn.execute(
            "SELECT split, name, value FROM metrics WHERE run_id = ? ORDER BY split, name", (run_id,))}


def test_rerun_exact_of_a_dirty_tree_reproduces_its_metrics(project):
    plain(project)
    project.write(".gitignore", "models/outputs/\n")
    env = {"GIT_CEILING_DIRECTORIES": str(project.root.parent), **GIT_ENV}
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "init")
    first = git(project, "rev-parse", "HEAD")
    # Dirty: the script now reads its factor from a module git does not track.
    script = project.models / "train.py"
    script.write_text(TRAIN.replace("FACTOR = 1.0", "import helpers\nFACTOR = helpers.FACTOR"))
    project.script("helpers.py", "FACTOR = 3.0\n")
    result = project.run("-r", env=env)
    assert result.returncode == 0, result.stderr
    # Then the tree moves on: another commit, and the untracked module gone.
    script.write_text(TRAIN.replace("FACTOR = 1.0", "FACTOR = 5.0"))
    (project.models / "helpers.py").unlink()
    git(project, "commit", "-qam", "later")
    assert git(project, "rev-parse", "HEAD") != first

    result = project.run("rerun", "1", "--exact", env=env)
    assert result.returncode == 0, result.stderr
    assert "environment: no differences from run 1's" in result.stderr
    assert f"commit {first[:12]} + its diff + 1 untracked file(s) checked out in models/outputs/rerun/1-1" \
        in result.stderr
    assert "all 2 metric(s) equal to run 1's" in result.stdout
    old, new = project.runs()
    assert (new["status"], new["rerun_of"], new["git_commit"], new["seed"]) == ("succeeded", 1, first, "7")
    assert new["command"] == "mlpipeline rerun 1 --exact" and new["environment"] == old["environment"]
    assert results(project, 2) == results(project, 1)
    assert results(project, 1)[("test", "score")] != 0
    assert new["model_dir"].startswith(str(project.outputs / "rerun" / "1-1")) and old["model_dir"] != new["model_dir"]
    assert script.read_text() == TRAIN.replace("FACTOR = 1.0", "FACTOR = 5.0")  # the project's own tree untouched
    assert git(project, "status", "--porcelain") == ""
    # A plain rerun asks the runner through the requests door: without one at work, it says so.
    result = project.run("rerun", "1")
    assert result.returncode == 2 and "no runner is working on this project" in result.stderr


def test_environment_once_show_env_and_rerun_outside_git(project, tmp_path):
    plain(project)
    nvml = tmp_path / "nvml.json"
    nvml.write_text(json.dumps({"gpus": [{"uuid": "GPU-0", "name": "Fake H100", "total": 80 << 30}],
                                "driver": "550.54.15", "cuda_driver": 12040}))
    paths = os.pathsep.join(p for p in (str(FIXTURES / "fake_nvml"), os.environ.get("PYTHONPATH")) if p)
    env = {"GIT_CEILING_DIRECTORIES": str(project.root.parent), "PYTHONPATH": paths, "MLP_FAKE_NVML": str(nvml)}
    result = project.run("-r", env=env)
    assert result.returncode == 0, result.stderr
    assert project.run("-r", env=env).returncode == 0
    with project.db() as conn:
        stored = conn.execute("SELECT sha256, info FROM environments").fetchall()
    assert len(stored) == 1 and {r["environment"] for r in project.runs()} == {stored[0]["sha256"]}

    shown = project.run("show", "1", "--env")
    assert shown.returncode == 0, shown.stderr
    numpy = importlib.metadata.version("numpy")
    assert any(line.split() == ["numpy", numpy] for line in shown.stdout.splitlines()), shown.stdout
    assert "driver:      550.54.15 (CUDA 12.4)\ngpus:        Fake H100\n" in shown.stdout
    info = json.loads(project.run("show", "1", "--env", "--format", "json").stdout)
    assert info["packages"]["numpy"] == numpy and info["environment"] == stored[0]["sha256"]
    line = next(x for x in project.run("show", "1").stdout.splitlines() if x.startswith("environment:"))
    assert f"{len(info['packages'])} packages" in line

    result = project.run("rerun", "2", "--exact", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mlpipeline: error: run 2 recorded no git commit (the project was not in a git repository when it ran): "
        "rerun --exact needs one"]


def test_what_differs_between_two_environments():
    old = {"python": {"implementation": "CPython", "version": "3.11.8"}, "packages": {"numpy": "1.26.4",
                                                                                      "scipy": "1.13.0"}}
    new = {"python": {"implementation": "CPython", "version": "3.11.9"}, "cuda": {"torch": "12.1"},
           "packages": {"numpy": "2.0.1", "pandas": "2.2.0"}}
    assert environment.differences(old, new) == [
        "Python CPython 3.11.8 -> CPython 3.11.9", "CUDA torch (none) -> 12.1", "numpy 1.26.4 -> 2.0.1",
        "+pandas 2.2.0", "-scipy 1.13.0"]
    assert environment.differences(new, new) == []
    found = environment.installed_distributions()  # from folder names, as importlib.metadata finds them
    assert found["numpy"] == importlib.metadata.version("numpy")
    assert len(found) == len({d.metadata["Name"].lower().replace("_", "-") for d in importlib.metadata.distributions()})
