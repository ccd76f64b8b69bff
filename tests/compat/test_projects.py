"""Whole projects laid out like the original's example project, run through the CLI.

released_hooks/ runs under the real mlpipeline==1.1a3.post7 and under ours (both
modes); each version's hooks record what they were given, and the records must
match for every version the original ran (it runs one version in test mode and
runs them in reverse order; both are deliberate differences, see the README).
readme_style/ (the README-era API of c8e2ef6) runs under ours against
expectations read from c8e2ef6's mlpipeline/_pipeline_subprocess.py (``sub``).
"""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from original import clean_env

HERE = Path(__file__).parent
PROJECTS = HERE / "projects"


def run_cli(command, root: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, env=clean_env(bin_dir))


def ours(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli([sys.executable, "-m", "mlpipeline", *args], root, Path(sys.executable).parent)


def observations(root: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "observations").glob("*.json"))}


def copy_project(name: str, dst: Path) -> Path:
    shutil.copytree(PROJECTS / name, dst, ignore=shutil.ignore_patterns("__pycache__", "outputs", "observations"))
    return dst


@pytest.mark.parametrize("args", [(), ("-r", "-u")], ids=["test-mode", "execution-mode"])
def test_released_project_matches_the_original(args, original, tmp_path):
    theirs = copy_project("released_hooks", tmp_path / "original")
    result = run_cli([str(original / "bin" / "mlpipeline"), *args], theirs, original / "bin")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = observations(theirs)
    assert expected, "the original ran no version"
    mine = copy_project("released_hooks", tmp_path / "ours")
    result = ours(mine, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    got = observations(mine)
    assert {k: got.get(k) for k in expected} == expected
    if args:
        assert sorted(got) == sorted(expected)  # the original ran every version too
    else:
        assert sorted(got) == ["two_args.py__bigger_batch", "two_args.py__done", "two_args.py__fresh",
                               "two_args.py__partial"]  # every version of models_test.config's script


FILES = ["observe.py", "toy_layers.py", "toy_model.py"]
TRACKING = [2.5, 5.0, 0, 0, 0, 0]
SUMMARY = "a: 4.5000    b: 9.0000    c: 0.0000    2: 0.0000    d: 0.0000    e: 0.0000    "


def readme_expected(test_mode: bool) -> dict:
    keys = ["batch_size", "dataloader", "epoc_count", "hyperparameter", "model_dir_suffix", "order"]
    versions = {"a hyperparameter": (10, 0, 3 * 100 // 10 - 10), "other": (20, 1, 3 * 100 // 20 - 10)}
    expected = {}
    for name, (batch, order, steps) in versions.items():
        # sub:110 pre_execution_hook(version, model_dir), then sub:111-112 copy_related_files(model_dir)
        # of what sub:227 collected (the script and the modules imported from models_dir);
        # sub:114-118 eval steps 1 in test mode, else the sample counts; sub:196-210 training steps
        # epoc_count * train samples / batch_size - get_trained_step_count() (1 in test mode).
        expected[f"toy_model.py__{name}"] = [
            ["pre_execution_hook", keys, batch, 3, order],
            ["train_model", 1 if test_mode else steps, SUMMARY, TRACKING],
            ["evaluate_model", 1 if test_mode else 100, "got input form train input function", FILES],
            ["evaluate_model", 1 if test_mode else 20, "got input form test input function", FILES],
        ]
    return expected


@pytest.mark.parametrize("args", [(), ("-r", "-u")], ids=["test-mode", "execution-mode"])
def test_readme_style_project_runs_unmodified(args, tmp_path):
    root = copy_project("readme_style", tmp_path / "proj")
    result = ours(root, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert observations(root) == readme_expected(test_mode=not args)
    # copy_related_files("models/exports") is relative to the folder mlpipeline runs in
    assert sorted(p.name for p in (root / "models" / "exports").iterdir()) == FILES
    with sqlite3.connect(root / "models" / "outputs" / "mlpipeline.db") as db:
        texts = [tuple(r) for r in db.execute("SELECT version, status, eval_train_text, eval_test_text FROM runs")]
    # sub:139/156: a MetricContainer result is logged with complete_epoc=True and TRAIN_/TEST_ prefixes
    assert texts == [(v, "succeeded", "TRAIN_a: 10.0000    TRAIN_b: 2.0000", "TEST_a: 10.0000    TEST_b: 2.0000")
                     for v in ("version1", "version2")]
    if args:
        again = ours(root, *args)
        assert again.returncode == 0 and "nothing to run" in (again.stdout + again.stderr).lower()


@pytest.mark.parametrize("args", [(), ("-r", "-u")], ids=["test-mode", "execution-mode"])
def test_released_exports_project_runs_unmodified(args, tmp_path):
    root = copy_project("released_exports", tmp_path / "proj")
    result = ours(root, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (root / "models" / "exports").iterdir()) == ["export_model.py"]
    with sqlite3.connect(root / "models" / "outputs" / "mlpipeline.db") as db:
        rows = [tuple(r) for r in db.execute("SELECT version, status, steps, eval_test_text FROM runs")]
    steps = 1 if not args else 2  # 1 epoch of 10 samples in batches of 5
    assert rows == [("double", "succeeded", steps, "TEST_mean: 14.5000    TEST_total: 90.0000"),
                    ("double_twice", "succeeded", steps, "TEST_mean: 14.5000    TEST_total: 180.0000")]


def steps_as_ints(text: str) -> str:
    """The original passed steps as floats ("4.0"); ours are whole numbers (a listed difference)."""
    return re.sub(r"\b(\d+)\.0\b", r"\1", text)


def test_released_resume_matches_the_original_over_sessions(original, tmp_path):
    # Session 1: both versions start fresh (clean_model_dir), "flaky" fails; session 2 resumes it
    # without cleaning; session 3 has nothing left to run. The original exits 0 after a failure,
    # ours 1 (a listed difference).
    theirs = copy_project("released_resume", tmp_path / "original")
    mine = copy_project("released_resume", tmp_path / "ours")
    for session, our_code in enumerate([1, 0, 0]):
        result = run_cli([str(original / "bin" / "mlpipeline"), "-r", "-u"], theirs, original / "bin")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        time.sleep(1.1)  # the original tells runs apart by timestamps against the script's mtime
        result = ours(mine, "-r", "-u")
        assert result.returncode == our_code, (session, result.stderr[-3000:])
    for name in ("steady", "flaky"):
        expected = (theirs / "observations" / f"{name}.log").read_text()
        assert steps_as_ints(expected) == (mine / "observations" / f"{name}.log").read_text()
    assert "clean_model_dir\npre_execution_hook\ntrain_model raises\npre_execution_hook\ntrain_model 4\n" in \
        (mine / "observations" / "flaky.log").read_text()
