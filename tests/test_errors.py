"""Every bad input gives one clear line naming the file/line/object, the right
exit code, and no traceback from mlpipeline itself."""
from __future__ import annotations

import pytest

from helpers import queue_config, tracer


def assert_one_line_error(result, code, *fragments):
    assert result.returncode == code, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlpipeline: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert "mlpipeline/" not in result.stderr.replace("mlpipeline: ", ""), result.stderr
    return errors[0]


def test_no_mlp_config_suggests_init(tmp_path, project):
    (project.root / "mlp.config").unlink()
    result = project.run()
    assert_one_line_error(result, 2, "no mlp.config in", "mlpipeline init")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text, fragments", [
    ("models_dir = models\n", ["mlp.config:1:", "outside any section"]),
    ("[MLP]\n", ["mlp.config", "no models_dir", "models_dir = models"]),
    ("[MLP]\nmodels_dir = nowhere\n", ["mlp.config:2:", "'nowhere' is not a folder"]),
    ("[MLP\nmodels_dir = models\n", ["mlp.config:1:", "malformed section header"]),
    ("[OTHER]\nx = 1\n", ["mlp.config", "no [MLP] section"]),
])
def test_bad_mlp_config(project, text, fragments):
    project.write("mlp.config", text)
    assert_one_line_error(project.run(), 2, *fragments)


@pytest.mark.parametrize("text, fragments", [
    ("[MLP]\nuse_blacklist = maybe\n", ["models_test.config:2:", "not a boolean"]),
    ("a.py\n[MLP]\n", ["models_test.config:1:", "outside any section"]),
    ("[MLP]\nuse_blacklist = False\n[MLP]\n", ["models_test.config:3:", "appears twice", "line 1"]),
    ("[WHITELISTED_MODELS]\n= v1\n", ["models_test.config:2:", "no key"]),
    ("[MLP]\ntimeout = soon\n", ["models_test.config:2:", "timeout", "positive number"]),
])
def test_bad_queue_config(project, text, fragments):
    project.script("a.py", tracer({"v": {}}))
    project.write("models_test.config", text)
    assert_one_line_error(project.run(), 2, *fragments)


def test_binary_queue_config(project):
    project.script("a.py", tracer({"v": {}}))
    (project.root / "models.config").write_bytes(b"[MLP]\n\xff\xfe\x00junk")
    assert_one_line_error(project.run("-r"), 2, "models.config:2:", "not UTF-8")


def test_missing_queue_config(project):
    assert_one_line_error(project.run("-r"), 2, "models.config", "file not found")


def test_unknown_keys_and_sections_warn_with_line_and_run(project):
    project.script("a.py", tracer({"v": {}}))
    project.write("models_test.config", "[MLP]\nuse_blacklist = False\ncolour = blue\n[EXTRA]\n"
                                        "[WHITELISTED_MODELS]\na.py\n")
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert "models_test.config:3: unknown key 'colour'" in result.stderr
    assert "models_test.config:4: unknown section [EXTRA]" in result.stderr
    assert len(project.trace()) == 1


def test_missing_script_is_reported_and_skipped(project):
    project.script("a.py", tracer({"v": {}}))
    project.write("models.config", queue_config(["resnt.py", "a"]))  # entries may omit .py
    result = project.run("-r")
    assert result.returncode == 1, result.stderr  # the rest ran, but the batch did not do what was listed
    assert "models.config:5: 'resnt.py' is not in models/ (found: a.py); skipped" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("mlpipeline: error: not run: models.config:5: 'resnt.py'")
    log = next(project.outputs.glob("log-*")).read_text()
    assert "'resnt.py' is not in models/" in log
    assert len(project.trace()) == 1


def test_unknown_version_in_config(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}}))
    project.write("models.config", queue_config(["a.py = v1, v9"]))
    assert_one_line_error(project.run("-r"), 2, "models.config:5:", "'v9' is not a version of models/a.py",
                          "versions: v1, v2")
    assert project.trace() == []


def test_unknown_version_flag(project):
    project.script("a.py", tracer({"v1": {}}))
    project.configure(["a.py"])
    assert_one_line_error(project.run("--version", "zzz"), 2, "--version zzz", "versions: v1")


def test_usage_error_is_one_line_exit_2(project):
    result = project.run("--bogus")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unrecognized arguments: --bogus" in result.stderr


BROKEN = {
    "syntax.py": ("def f(:\n    pass\n", ["models/syntax.py:1:", "SyntaxError"]),
    "nomodel.py": ("X = 1\n", ["models/nomodel.py", "defines no MODEL"]),
    "wrongtype.py": ("MODEL = 42\n", ["models/wrongtype.py", "MODEL is of type int", "mlpipeline.helper.Model"]),
    "importerr.py": ("import not_a_real_package_xyz\n", ["models/importerr.py:1:", "ModuleNotFoundError",
                                                          "not_a_real_package_xyz"]),
    "exits.py": ("import sys\nsys.exit(4)\n", ["models/exits.py", "sys.exit(4)", "__name__"]),
    "empty.py": ("from mlpipeline.helper import Model\nfrom mlpipeline.utils import Versions\n"
                 "MODEL = Model(Versions(None, 1, 1))\n", ["models/empty.py", "no versions", "add_version"]),
    "nobatch.py": ("from mlpipeline.helper import Model, DataLoader\nfrom mlpipeline.utils import Versions\n"
                   "v = Versions(DataLoader(), None, 2)\nv.add_version('small')\nMODEL = Model(v)\n",
                   ["models/nobatch.py", "version 'small' has no batch_size"]),
    "nodata.py": ("from mlpipeline.helper import Model\nfrom mlpipeline.utils import Versions\n"
                  "v = Versions(None, 4, 2)\nv.add_version('small')\nMODEL = Model(v)\n",
                  ["models/nodata.py", "version 'small' has no dataloader"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_script_in_test_mode(project, name):
    text, fragments = BROKEN[name]
    project.script(name, text)
    project.configure([name])
    result = project.run()
    assert_one_line_error(result, 1, *fragments)


def test_broken_scripts_in_execution_mode_do_not_stop_the_batch(project):
    for name, (text, _) in BROKEN.items():
        project.script(name, text)
    project.script("zz_good.py", tracer({"v": {}}))
    project.configure([*BROKEN, "zz_good.py"])
    result = project.run("-r")
    assert result.returncode == 1
    runs = project.runs()
    failed = {r["script"]: r for r in runs if r["status"] == "failed"}
    assert set(failed) == {f"models/{name}" for name in BROKEN}
    for name, (_, fragments) in BROKEN.items():
        for fragment in fragments:
            assert fragment in failed[f"models/{name}"]["error"]
    assert [r["version"] for r in runs if r["status"] == "succeeded"] == ["v"]
    log = next(project.outputs.glob("log-*")).read_text()
    assert "models/syntax.py:1: SyntaxError" in log


def test_duplicate_version_name_replaces_the_first_with_a_warning(project):
    # As the original (ml-pipeline c8e2ef6, mlpipeline/utils/_utils.py:124: self._versions[name] = v),
    # a second add_version with the same name replaces the first; we also say so.
    project.script("dup.py", "from mlpipeline.helper import Model, DataLoader\nfrom mlpipeline.utils import Versions\n"
                   "class L(DataLoader):\n    def get_train_input(self, **kw): return None\n"
                   "    def get_test_input(self, **kw): return None\n"
                   "    def get_train_sample_count(self): return 1\n    def get_test_sample_count(self): return 1\n"
                   "class M(Model):\n    def train_model(self, input_fn, steps): pass\n"
                   "    def evaluate_model(self, input_fn, steps): return {'bs': self.current_version.batch_size}\n"
                   "v = Versions(L(), 4, 2)\nv.add_version('a')\nv.add_version('a', batch_size=8)\nMODEL = M(v)\n")
    project.configure(["dup.py"])
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert "a second version named 'a' replaces the first one" in result.stdout + result.stderr
    assert [(r["version"], r["eval_test_text"]) for r in project.runs()] == [("a", "bs: 8.0000")]


def test_import_error_shows_user_traceback_only(project):
    project.script("helper_mod.py", "def boom():\n    raise RuntimeError('bad data path')\n")
    project.script("uses.py", "import helper_mod\nhelper_mod.boom()\n")
    project.configure(["uses.py"])
    result = project.run()
    assert result.returncode == 1
    assert "models/uses.py:2: RuntimeError while importing the script: bad data path" in result.stderr
    assert 'helper_mod.py", line 2' in result.stderr
    assert "mlpipeline/scripts.py" not in result.stderr
