"""The deliberate differences the README's migration section lists, each checked here
(the differential suite cannot: the original behaves otherwise on purpose)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import MetricContainer, Versions, use_mlflow

LOADER = """
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions, ExecutionModeKeys

class L(DataLoader):
    def __init__(self):
        pass
    def get_train_input(self, **kw): return None
    def get_test_input(self): return None
    def get_train_sample_count(self): return 4
    def get_test_sample_count(self): return 2
"""


def write(project, name, body):
    project.script(name, LOADER + textwrap.dedent(body))


def test_clean_model_dir_on_fresh_starts_not_when_resuming(project):
    write(project, "resume.py", """
        import os
        class M(Model):
            def clean_model_dir(self, model_dir):
                os.makedirs(os.path.dirname(model_dir), exist_ok=True)
                with open(os.path.join(os.path.dirname(model_dir), "cleaned.txt"), "a") as f:
                    f.write("clean\\n")
            def pre_execution_hook(self, version, model_dir):
                self.flag = os.path.join(os.path.dirname(model_dir), "fail-once")
            def get_trained_step_count(self):
                return None
            def train_model(self, input_fn, steps):
                if not os.path.exists(self.flag):
                    open(self.flag, "w").close()
                    raise RuntimeError("interrupted")
            def evaluate_model(self, input_fn, steps):
                return "ok"
        v = Versions(L(), 2, 1)
        v.add_version("only")
        MODEL = M(v, allow_delete_model_dir=True)
        """)
    project.configure(["resume.py"])
    cleaned = project.outputs / "model_ckpts" / "cleaned.txt"
    assert project.run("-r").returncode == 1  # fresh start: cleaned, then fails
    assert cleaned.read_text() == "clean\n"
    assert project.run("-r").returncode == 0  # resumes the failed run: not cleaned
    assert cleaned.read_text() == "clean\n"
    assert project.run("-r").returncode == 0  # the last run finished: a fresh start again
    assert cleaned.read_text() == "clean\nclean\n"


def test_exec_mode_reaches_hooks_that_take_it(project):
    write(project, "modes.py", """
        class M(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
                self.mode = exec_mode
            def train_model(self, input_fn, steps): pass
            def evaluate_model(self, input_fn, steps): return self.mode
        v = Versions(L(), 2, 1)
        v.add_version("only")
        MODEL = M(v)
        """)
    project.configure(["modes.py"])
    assert project.run().returncode == 0
    assert project.run("-r").returncode == 0
    assert [r["eval_test_text"] for r in project.runs()] == ["Test", "Train"]


def test_no_log_spelling_writes_no_files(project):
    write(project, "quiet.py", """
        class M(Model):
            def train_model(self, input_fn, steps): pass
            def evaluate_model(self, input_fn, steps): return "ok"
        v = Versions(L(), 2, 1)
        v.add_version("only")
        MODEL = M(v)
        """)
    project.configure(["quiet.py"])
    assert project.run("-r", "--no_log").returncode == 0
    assert not list(project.outputs.glob("log-*")) and not list(project.outputs.glob("output-*"))
    assert [r["status"] for r in project.runs()] == ["succeeded"]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_log_before_set_logger_warns_instead_of_crashing(tmp_path):
    result = run_python("from mlpipeline.utils import log\nlog('hello')\nlog('again')\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'set_logger' not called" in result.stdout
    assert result.stdout.count("hello") == 1 and "again" in result.stdout


def test_add_script_dir_to_path_defaults_to_the_callers_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "s.py"
    script.write_text("import sys\nfrom mlpipeline.utils import add_script_dir_to_PATH\nsys.path.remove(sys.path[0])\n"
                      "add_script_dir_to_PATH()\nprint('FIRST', sys.path[0])\n")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"FIRST {tmp_path / 'sub'}" in result.stdout


def test_versions_defaults_reach_versions_and_are_not_shared():
    first = Versions("dl", 1, 1, learning_rate=0.5)
    first.add_version("a")
    second = Versions(0.1, "dl2", 2, 2, hooks="h")
    second.addV("b")
    first.addV("c")
    assert first.get_version("a").learning_rate == 0.5
    assert first.getVersion("c")["dataloader"] == "dl" and first.getVersion("c")["hooks"] is None
    assert second.getVersion("b")["hooks"] == "h"


def test_empty_list_container_and_item_assignment_refused():
    assert len(MetricContainer([])) == 0
    with pytest.raises(TypeError, match="must be set to a Metric"):
        MetricContainer(["a"])["x"] = 3


def test_range_on_parameters_makes_one_version_per_combination():
    versions = Versions("dl", 1, 1)
    versions.rangeOnParameters(names=["a", "b", "c", "d"], combining_parameters=["lr", "depth"],
                               parameters={"lr": [0.1, 0.2], "depth": [1, 2], "batch_size": 4})
    got = [(v.lr, v.depth, v.batch_size) for v in versions.get_versions()]
    assert got == [(0.1, 1, 4), (0.1, 2, 4), (0.2, 1, 4), (0.2, 2, 4)]
    with pytest.raises(ValueError, match="2 names for 4 combinations"):
        Versions("dl", 1, 1).rangeOnParameters(names=["x", "y"], combining_parameters=["lr", "depth"],
                                                parameters={"lr": [0.1, 0.2], "depth": [1, 2]})


def test_use_mlflow_is_false_and_base_hooks_have_defaults(tmp_path):
    assert use_mlflow is False
    loader = DataLoader()
    model = Model(Versions(loader, 1, 1))
    version = model.versions.add_version("v")
    model.pre_execution_hook(version, str(tmp_path))
    (tmp_path / "ckpt").write_text("x")
    model.clean_model_dir(str(tmp_path))
    assert model.get_current_version() is version and model.get_trained_step_count() is None
    assert list(tmp_path.iterdir()) == [] and loader.get_dataloader_summery() == ""


def test_readme_era_version_answers_its_name_without_holding_it():
    versions = Versions("dl", 1, 1)
    version = versions.add_version("v1")
    assert version.name == "v1" and version["name"] == "v1" and "name" not in version


def test_duplicate_names_warn(capsys):
    versions = Versions("dl", 1, 1)
    versions.add_version("v")
    versions.add_version("v", batch_size=2)
    assert "a second version named 'v' replaces the first one" in capsys.readouterr().err
    assert versions.get_version("v").batch_size == 2


def test_metric_update_error_is_an_exception_naming_the_fix():
    from mlpipeline.core.errors import MLPipelineError
    from mlpipeline.utils import Metric

    with pytest.raises(MLPipelineError, match=r"float\(value\)"):
        Metric().update("0.5")
    assert logging.getLogger("mlp")  # the original's logger name stays available
    assert os.path.basename(__file__)
