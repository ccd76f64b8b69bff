"""The original's Experiment generations, 1.1a3.post8 (mlpipeline.helper.Experiment) and post9 ... post12
(mlpipeline.base.ExperimentABC): their scripts and their spelling of a project (experiments_dir,
experiments.config, [WHITELISTED_EXPERIMENTS], EXPERIMENT).

The released packages are installed from the package index on first use, each into its own cached venv
beside the 1.1a3.post7 one (see original.py); the original's example projects at bc6773b (the post8
release) and 057a59b (the post12 release) are in projects/post8_example and projects/post12_example,
exactly as committed there.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from original import cached_venv, clean_env, venv_dir

from mlpipeline.core.errors import ConfigError
from mlpipeline.plan import config_edit
from mlpipeline.plan.config import find_project, read_queue_config

HERE = Path(__file__).parent
RELEASES = {"post8": "1.1.a.3.post.8", "post12": "1.1.a.3.post.12"}


def release_venv(release: str) -> Path:
    """A venv holding mlpipeline==1.1a3.<release> (and easydict), made once and cached."""
    root = venv_dir().parent / f"mlpipeline-1.1a3.{release}-py{sys.version_info[0]}{sys.version_info[1]}"
    return cached_venv(root, [[f"mlpipeline==1.1a3.{release}", "easydict>=1.8"]], RELEASES[release])


def observe(python: Path, script: Path, tmp: Path, label: str, *args: str) -> dict:
    out = tmp / f"{label}.json"
    work = tmp / label
    work.mkdir()
    result = subprocess.run([str(python), str(script), str(out), *args], cwd=work, capture_output=True, text=True,
                            timeout=120, env=clean_env(python.parent))
    assert result.returncode == 0, f"{script.name} under {label}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("release", ["post8", "post12"])
def test_experiment_api_matches_the_release(release, tmp_path):
    script = HERE / "post8" / "experiment_api.py"
    expected = observe(release_venv(release) / "bin" / "python", script, tmp_path, "original", release)
    ours = observe(Path(sys.executable), script, tmp_path, "ours", release)
    assert json.dumps(ours, sort_keys=True) == json.dumps(expected, sort_keys=True)


def run(command, root: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, env=clean_env(bin_dir))


def ours(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "mlpipeline", *args], root, Path(sys.executable).parent)


def example(dst: Path, release: str = "post8") -> Path:
    shutil.copytree(HERE / "projects" / f"{release}_example", dst)
    return dst


SPEC = re.compile(r"(?:Exp|Expriment)- (?:\x1b\[0m)?Version spec: (\{.*\})")


def specs(text: str) -> dict:
    """The version specs the example's pre_execution_hook printed, by hyperparameter (objects and the
    Versions defaults, a listed difference, left out)."""
    found = {}
    for line in text.splitlines():
        match = SPEC.search(line)
        if match:
            spec = ast.literal_eval(re.sub(r"<[^>]*>", "'<object>'", match.group(1)))
            spec.pop("learning_rate", None)
            found[spec["order"]] = spec
    return found


@pytest.mark.parametrize("args", [(), ("-r", "-u")], ids=["test-mode", "execution-mode"])
def test_the_original_example_at_bc6773b_runs_unmodified(args, tmp_path):
    root = example(tmp_path / "ours")
    result = ours(root, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "models_dir is ignored" in result.stderr  # mlp.config says models_dir; post8 read experiments_dir
    with sqlite3.connect(root / "experiments" / "outputs" / "mlpipeline.db") as db:
        rows = [tuple(r) for r in db.execute("SELECT script, version, status, eval_test_text FROM runs")]
    assert rows == [("experiments/sample_experiment.py", v, "succeeded", "TEST_a: 10.0000    TEST_b: 2.0000")
                    for v in ("version1", "version2")]
    assert sorted(p.name for p in (root / "experiments" / "exports").iterdir()) == ["sample_experiment.py"]
    shown = {spec["order"]: spec for spec in specs(result.stdout).values()}
    assert shown[0]["experiment_dir_suffix"] is None and "model_dir_suffix" not in shown[0]
    status = ours(root, "status")
    assert status.returncode == 0 and "not whitelisted in experiments.config" in status.stdout
    if args:
        assert sorted(p.name for p in (root / "experiments" / "outputs" / "model_ckpts").iterdir() if p.name[0] != ".") == \
            ["sample_experiment-version1", "sample_experiment-version2"]
        again = ours(root, *args)
        assert again.returncode == 0 and "nothing to run" in (again.stdout + again.stderr).lower()


@pytest.mark.parametrize("args", [(), ("-r",)], ids=["test-mode", "execution-mode"])
def test_the_example_matches_the_post8_release(args, tmp_path):
    original = release_venv("post8")
    theirs = example(tmp_path / "original")
    expected = run([str(original / "bin" / "mlpipeline"), *args], theirs, original / "bin")
    assert expected.returncode == 0, expected.stdout[-3000:] + expected.stderr[-3000:]
    mine = example(tmp_path / "ours")
    got = ours(mine, *args)
    assert got.returncode == 0, got.stderr[-3000:]
    theirs_specs = specs(expected.stdout + expected.stderr)
    assert theirs_specs
    # The original ran one version in test mode (a listed difference); each it ran saw the same spec.
    assert {k: specs(got.stdout).get(k) for k in theirs_specs} == theirs_specs
    assert sorted(p.name for p in (mine / "experiments" / "exports").iterdir()) == \
        sorted(p.name for p in (theirs / "experiments" / "exports").iterdir())


# What post12's example logs from its two filter_versions calls (version5 is added after them).
FILTERED = ["Versions before filter: ['version1', 'version2', 'version3', 'version4']",
            "Versions after filter: ['version1', 'version2', 'version4']",
            "Versions before filter: ['version1', 'version2', 'version4']",
            "Versions after filter: ['version1', 'version2']"]


def filter_lines(text: str) -> list:
    return [line[line.index("Versions "):] for line in text.splitlines() if "Versions before filter" in line
            or "Versions after filter" in line]


@pytest.mark.parametrize("args", [(), ("-r", "-u")], ids=["test-mode", "execution-mode"])
def test_the_original_example_at_057a59b_runs_unmodified(args, tmp_path):
    root = example(tmp_path / "ours", "post12")
    result = ours(root, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # filter_versions dropped version3, then kept version1 and version2 for good: each process that loads the
    # script (describing it, then each version's) logs the same four lines
    lines = filter_lines(result.stdout)
    assert lines and lines == FILTERED * (len(lines) // 4)
    with sqlite3.connect(root / "experiments" / "outputs" / "mlpipeline.db") as db:
        rows = [tuple(r) for r in db.execute("SELECT script, version, status, eval_test_text FROM runs")]
    assert rows == [("experiments/sample_experiment.py", v, "succeeded", "TEST_a: 10.0000    TEST_b: 2.0000")
                    for v in ("version1", "version2", "version5")]
    shown = specs(result.stdout)  # setup_model(self, version), written with one parameter, got the version
    assert sorted(shown) == [0, 1, 4] and shown[0]["hyperparameter"] == "a hyperparameter"
    assert shown[4]["hyperparameter"] is None and shown[4]["experiment_dir_suffix"] is None
    assert "trained: Trained using a hyperparameter" in result.stdout
    assert sorted(p.name for p in (root / "experiments" / "exports").iterdir()) == ["sample_experiment.py"]
    if args:
        assert sorted(p.name for p in (root / "experiments" / "outputs" / "model_ckpts").iterdir() if p.name[0] != ".") == \
            [f"sample_experiment-version{n}" for n in (1, 2, 5)]
        again = ours(root, *args)
        assert again.returncode == 0 and "nothing to run" in (again.stdout + again.stderr).lower()


def test_the_post12_example_matches_the_release(tmp_path):
    """The released post12 filtered the example's versions as ours does and loaded version5 (the last one: its
    test mode ran one version, a listed difference) with the same spec; then its call setup_model(version,
    experiment_dir) raised TypeError on the example's one-parameter setup_model (a listed difference), and it
    exited 0. Its execution mode does the same."""
    original = release_venv("post12")
    expected = run([str(original / "bin" / "mlpipeline")], example(tmp_path / "original", "post12"), original / "bin")
    assert expected.returncode == 0, expected.stdout[-3000:] + expected.stderr[-3000:]
    text = expected.stdout + expected.stderr
    assert filter_lines(text) == FILTERED
    assert "setup_model() takes 2 positional arguments but 3 were given" in text
    theirs_spec = re.search(r"Version_spec: (\{.*\})", text)
    assert theirs_spec and "version loaded: version5" in text
    got = ours(example(tmp_path / "ours", "post12"))
    assert got.returncode == 0, got.stderr[-3000:]
    assert filter_lines(got.stdout)[:4] == FILTERED
    theirs = ast.literal_eval(re.sub(r"<[^>]*>", "'<object>'", theirs_spec.group(1)))
    assert specs(got.stdout)[4] == theirs


POST12_SCRIPT = '''
from mlpipeline.base import DataLoaderABC, ExperimentABC
from mlpipeline.utils import Versions


class Data(DataLoaderABC):
    def get_train_sample_count(self): return 4
    def get_test_sample_count(self): return 2
    def get_train_input(self, **kw): return lambda: "train"
    def get_test_input(self, **kw): return lambda: "test"


class Exp(ExperimentABC):
    def setup_model(self, version, experiment_dir):
        self.model = version["k"]
        self.log("setup " + str(version["k"]), agent="me")

    def pre_execution_hook(self, version, experiment_dir, exec_mode="Test"):
        assert self.model == version["k"]

    def train_loop(self, input_fn, steps, version):
        self.log("train {} {}".format(steps, version["k"]))

    def evaluate_loop(self, input_fn, steps, version):
        return "{} k={}".format(input_fn(), version["k"])


v = Versions(Data(), 2, 1)
v.add_version("a", k=1)
v.add_version("b", k=2, experiment_dir_suffix="bee")
EXPERIMENT = Exp(v)
'''


def post12_project(root: Path, spelled: str = "experiments") -> Path:
    (root / "exp").mkdir(parents=True)
    (root / "mlp.config").write_text("[MLP]\nexperiments_dir = exp\n")
    queue = "[MLP]\nuse_blacklist = False\n[WHITELISTED_EXPERIMENTS]\nrun.py\n"
    (root / f"{spelled}.config").write_text(queue)
    (root / f"{spelled}_test.config").write_text(queue)
    (root / "exp" / "run.py").write_text(POST12_SCRIPT)
    return root


@pytest.mark.parametrize("args", [(), ("-r", "-u")], ids=["test-mode", "execution-mode"])
def test_a_post12_experiment_runs_with_setup_model_and_versions(args, tmp_path):
    root = post12_project(tmp_path / "p")
    result = ours(root, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Expriment- me: setup 1" in result.stdout and "Expriment- me: setup 2" in result.stdout
    with sqlite3.connect(root / "exp" / "outputs" / "mlpipeline.db") as db:
        rows = [tuple(r) for r in db.execute("SELECT version, status, eval_test_text FROM runs")]
    assert rows == [("a", "succeeded", "test k=1"), ("b", "succeeded", "test k=2")]
    if args:  # experiment_dir_suffix: <script>-<suffix>, as the original joined it
        dirs = (root / "exp" / "outputs" / "model_ckpts").iterdir()
        assert sorted(p.name for p in dirs if p.name[0] != ".") == ["run-a", "run-bee"]


def test_the_project_keeps_its_spelling(tmp_path):
    root = post12_project(tmp_path / "p")
    project = find_project(str(root))
    assert project.spelling == "experiments" and project.models_dir == str(root / "exp")
    assert project.config_path(False) == str(root / "experiments.config")
    path = project.config_path(False)
    (root / "exp" / "other.py").write_text(POST12_SCRIPT)
    config_edit.whitelist(path, "other.py")
    config_edit.blacklist(path, "run.py")
    text = (root / "experiments.config").read_text()
    assert "[WHITELISTED_MODELS]" not in text and "[BLACKLISTED_EXPERIMENTS]\nrun.py" in text
    config = read_queue_config(path)
    assert [e.name for e in config.whitelist] == ["other.py"] and [e.name for e in config.blacklist] == ["run.py"]


def test_the_other_spelling_of_a_section_is_named(tmp_path):
    path = tmp_path / "experiments.config"
    path.write_text("[MLP]\n[WHITELISTED_MODELS]\nrun.py\n")
    warning, = read_queue_config(str(path)).warnings
    assert "[WHITELISTED_MODELS] is ignored" in warning and "[WHITELISTED_EXPERIMENTS]" in warning
    path = tmp_path / "models.config"
    path.write_text("[MLP]\n[WHITELISTED_EXPERIMENTS]\nrun.py\n")
    warning, = read_queue_config(str(path)).warnings
    assert "1.1a3.post8" in warning and "[WHITELISTED_MODELS]" in warning


def test_a_post8_project_without_its_folder_is_told_its_generation(tmp_path):
    (tmp_path / "mlp.config").write_text("[MLP]\n")
    (tmp_path / "experiments.config").write_text("[MLP]\n")
    with pytest.raises(ConfigError, match=r"1\.1a3\.post8.*add .experiments_dir = "):
        find_project(str(tmp_path))
    (tmp_path / "experiments").mkdir()
    assert find_project(str(tmp_path)).spelling == "experiments"
