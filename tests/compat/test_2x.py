"""The original's 2.0a1 … 2.0a7.post1 generation (``from mlpipeline import Versions``, ``mlpipeline.base``'s
argument-less hooks, ``mlpipeline run``/``mlpipeline test``; its ``[MLFLOW]`` runs: tests/test_mlflow_log.py).

The released 2.0a7.post1 (an sdist whose setup.py imports mlflow and easydict) is installed on first use
into its own cached venv with mlflow-skinny < 2 (2.0a7.post1 calls MlflowClient.list_experiments, gone in
mlflow 2), click < 8.1 (it uses Group.resultcallback) and six. The original's example project at the
release commit ec13c98 (unchanged since c59931e, 2.0a7) is in projects/v2_example, exactly as committed there.
"""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from original import cached_venv, clean_env, venv_dir

HERE = Path(__file__).parent
RELEASE = "2.0.a.7.post.1"
ORACLE_PACKAGES = ["easydict>=1.8", "mlflow-skinny<2", "click<8.1", "six", "setuptools", "wheel"]


def release_venv() -> Path:
    """A venv holding mlpipeline==2.0a7.post1, made once and cached."""
    root = venv_dir().parent / f"mlpipeline-2.0a7.post1-py{sys.version_info[0]}{sys.version_info[1]}"
    return cached_venv(root, [ORACLE_PACKAGES, ["--no-build-isolation", "--no-deps", "mlpipeline==2.0a7.post1"]],
                       RELEASE)


def observe(python: Path, tmp: Path, label: str) -> dict:
    out, work = tmp / f"{label}.json", tmp / label
    work.mkdir()
    result = subprocess.run([str(python), str(HERE / "v2" / "api_2x.py"), str(out)], cwd=work, capture_output=True,
                            text=True, timeout=120, env=clean_env(python.parent))
    assert result.returncode == 0, f"api_2x.py under {label}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_the_2x_api_matches_the_release(tmp_path):
    expected = observe(release_venv() / "bin" / "python", tmp_path, "original")
    ours = observe(Path(sys.executable), tmp_path, "ours")
    # A listed difference: defaults given to Versions(...) reach every version (2.x stored them unused).
    for name in "abcd":
        assert ours[name + "_items"].pop("learning_rate") == 0.01
        ours[name + "_keys"].remove("learning_rate")
    assert json.dumps(ours, sort_keys=True) == json.dumps(expected, sort_keys=True)


def run(command, root: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, env=clean_env(bin_dir))


def ours(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "mlpipeline", *args], root, Path(sys.executable).parent)


def example(dst: Path) -> Path:
    shutil.copytree(HERE / "projects" / "v2_example", dst)
    return dst


SPEC = re.compile(r"Version spec: (\{.*\})")
EVAL = "TEST_a: 10.0000    TEST_b: 2.0000"


@pytest.mark.parametrize("command", ["test", "run"])
def test_the_original_example_at_ec13c98_runs_unmodified(command, tmp_path):
    root = example(tmp_path / "ours")
    result = ours(root, command)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MLflow" not in result.stderr and "[MLFLOW]" not in result.stderr  # its tracking_uri=_mlruns is read
    with sqlite3.connect(root / "experiments" / "outputs" / "mlpipeline.db") as db:
        rows = [tuple(r) for r in db.execute("SELECT script, version, status, eval_test_text, mode FROM runs")]
    mode = "run" if command == "run" else "test"
    # filter_versions left version1 and version2; version5 was added after it
    assert rows == [("experiments/sample_experiment.py", v, "succeeded", EVAL, mode)
                    for v in ("version1", "version2", "version5")]
    specs = [m.group(1) for m in SPEC.finditer(result.stdout)]
    assert len(specs) == 3 and all("'epoch_count': 10" in s and "'experiment_dir_suffix': None" in s for s in specs)
    assert "'name': 'version1'" in specs[0] and "'hyperparameter': 'a hyperparameter'" in specs[0]
    epochs = re.findall(r"Epoch: (\d)   step: (\d)", result.stdout)
    if command == "test":  # iterator(...) stops after one item (the inner loop after two) in test mode
        assert sorted(set(epochs)) == [("0", "0"), ("0", "1")]
        assert not (root / "experiments" / "exports").exists()  # 2.x copied nothing in test mode
    else:
        assert len(epochs) == 3 * 36 and ("5", "5") in epochs
        assert sorted(p.name for p in (root / "experiments" / "exports").iterdir()) == ["sample_experiment.py"]
        assert sorted(p.name for p in (root / "experiments" / "outputs" / "model_ckpts").iterdir()
                      if p.name[0] != ".") == [f"sample_experiment-version{n}" for n in (1, 2, 5)]
    # [MLFLOW] tracking_uri=_mlruns: execution mode logs there (2.x's test mode wrote a store it then removed)
    assert (root / "_mlruns").is_dir() == (command == "run")


def test_the_example_matches_the_release(tmp_path):
    """The released 2.0a7.post1's test mode ran one version (version5, the last: a listed difference) of the
    example; it saw the same spec, the same metrics and the same evaluation as ours."""
    original = release_venv()
    theirs = example(tmp_path / "original")
    expected = run([str(original / "bin" / "mlpipeline"), "test"], theirs, original / "bin")
    assert expected.returncode == 0, expected.stdout[-3000:] + expected.stderr[-3000:]
    text = expected.stdout + expected.stderr
    assert "version loaded: version5" in text and "version loaded: version1" not in text
    mine = ours(example(tmp_path / "ours"), "test")
    assert mine.returncode == 0, mine.stderr[-3000:]

    def plain(spec: str) -> str:
        return re.sub(r"<[^>]*>|DataLoaderCallableWrapper\(\w+\)", "<dataloader>", spec)

    theirs_spec = re.search(r"Version_spec: (\{.*\})", text)
    assert theirs_spec
    mine_specs = [plain(m.group(1)).replace("'learning_rate': 0.01, ", "") for m in SPEC.finditer(mine.stdout)]
    assert plain(theirs_spec.group(1)) in mine_specs
    for line in ("a: 1.0000    b: 2.0000    c: 0.0000", "2: 0.0000    d: 0.0000    e: 0.0000", EVAL,
                 "TRAIN_a: 10.0000    TRAIN_b: 2.0000", "trained: Trained using None"):
        assert line in text and line in mine.stdout + mine.stderr, line


@pytest.mark.parametrize("args, needle", [
    (["export"], "mlpipeline export (the original's 2.0a3 ... 2.0a7.post1) is not supported"),
    (["single", "test"], "mlpipeline single"),
    (["--experiments", "sample_experiment.py", "run"], "--experiments (the original's 2.0a3"),
    (["--experiments-dir", "experiments", "test"], "experiments_dir = experiments under [MLP]"),
])
def test_what_2x_had_and_is_not_supported_says_so(args, needle, tmp_path):
    result = ours(example(tmp_path / "ours"), *args)
    assert result.returncode == 2 and needle in result.stderr, result.stderr


@pytest.mark.parametrize("line, needle", [
    ("import mlpipeline.api", "mlpipeline.api is of the original's 2.0a4.post9"),
    ("from mlpipeline import get_experiment", "get_experiment is of the original's 2.0a3.post1"),
    ("from mlpipeline import mlpipeline_execute_pipeline", "mlpipeline_execute_pipeline is of the original's 1.1a3.post9"),
    ("from mlpipeline.base import ExperimentWrapper", "ExperimentWrapper is of the original's 1.1a3.post9"),
    ("from mlpipeline.utils import Datasets", "Datasets is of the original's 2.0a4.post1"),
    ("import no_such_package_zz", "install the package or fix the import"),
])
def test_a_name_not_provided_names_its_release(line, needle, tmp_path):
    root = example(tmp_path / "ours")
    (root / "experiments" / "sample_experiment.py").write_text(line + "\n")
    result = ours(root, "test")
    assert result.returncode == 1 and needle in result.stderr, result.stderr


def test_mlflow_tracking_uri_is_for_execution_mode(tmp_path):
    """2.x's test mode logged to a temporary store it removed: nothing is written, nothing said (tests/
    test_mlflow_log.py runs the flag and [MLFLOW] in execution mode)."""
    root = example(tmp_path / "ours")
    result = ours(root, "--mlflow_tracking_uri", "_elsewhere", "--no-log", "test", "--all")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mlflow" not in result.stderr.lower()
    assert not (root / "_elsewhere").exists() and not (root / "_mlruns").exists()


def test_the_2x_names_keep_help_light():
    code = ("import sys, mlpipeline, mlpipeline.cli; mlpipeline.cli.build_parser(); "
            "assert 'mlpipeline.script.versions2x' not in sys.modules and 'numpy' not in sys.modules; "
            "from mlpipeline import Versions, MetricContainer, iterator; "
            "assert Versions.__module__ == 'mlpipeline.script.versions2x'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
