"""A corpus of broken model scripts. Test mode: each gives exactly one
``mlpipeline: error:`` line naming the script (exit 1), or, for a version that
deletes its model dir or writes outside it, no error at all. Execution mode
with all of them and a good script: the batch goes on and the good one succeeds."""
from __future__ import annotations

import subprocess
import sys

import pytest

from reliability_support import model_script

HEAD = "from mlpipeline.helper import Model, DataLoader\nfrom mlpipeline.utils import Versions\n"

# name -> (text, fragments its one error line must hold)
BROKEN = {
    "syntax_error.py": ("def f(:\n    pass\n", ["models/syntax_error.py:1:", "SyntaxError"]),
    "import_error.py": ("import os\nimport no_such_package_xyz\n",
                        ["models/import_error.py:2:", "ModuleNotFoundError", "no_such_package_xyz"]),
    "no_model.py": (HEAD + "versions = Versions(DataLoader(), 1, 1)\n", ["models/no_model.py", "defines no MODEL"]),
    "model_wrong_type.py": (HEAD + "MODEL = {'versions': []}\n",
                            ["models/model_wrong_type.py", "MODEL is of type dict", "mlpipeline.helper.Model"]),
    "versions_empty.py": (HEAD + "MODEL = Model(Versions(DataLoader(), 1, 1))\n",
                          ["models/versions_empty.py", "no versions", "add_version"]),
    "no_batch_size.py": (HEAD + "v = Versions(DataLoader(), None, 1)\nv.add_version('small')\nMODEL = Model(v)\n",
                         ["models/no_batch_size.py", "'small'", "batch_size"]),
    "no_dataloader.py": (HEAD + "v = Versions(None, 4, 2)\nv.add_version('small')\nMODEL = Model(v)\n",
                         ["models/no_dataloader.py", "'small'", "dataloader"]),
    "no_epochs.py": (HEAD + "v = Versions(DataLoader(), 4, None)\nv.add_version('small')\nMODEL = Model(v)\n",
                     ["models/no_epochs.py", "'small'", "epoc_count"]),
    "exits_at_import.py": ("import sys\nsys.exit(3)\n", ["models/exits_at_import.py", "sys.exit(3)"]),
}

# Versions that misbehave at run time without failing.
DELETES_ITS_DIR = model_script("""
    import shutil
    shutil.rmtree(self.model_dir)
    """)
WRITES_OUTSIDE = model_script("""
    with open(os.path.join(ROOT, "stray-output.txt"), "w") as handle:
        handle.write("written where it should not be")
    """)
GOOD = model_script("pass", versions=("good",))


def error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("mlpipeline: error:")]


def assert_no_internal_frames(stderr: str) -> None:
    assert "mlpipeline/" not in stderr.replace("mlpipeline: ", ""), stderr


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_script_in_test_mode_is_one_error_line(project, name):
    text, fragments = BROKEN[name]
    project.script(name, text)
    project.configure([name])
    result = project.run()
    assert result.returncode == 1, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert_no_internal_frames(result.stderr)


def test_version_deleting_its_model_dir_in_test_mode_is_no_error(project):
    project.script("deletes_its_dir.py", DELETES_ITS_DIR)
    project.configure(["deletes_its_dir.py"])
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert not error_lines(result.stderr), result.stderr
    assert [r["status"] for r in project.runs()] == ["succeeded"]


def test_version_writing_outside_its_model_dir_in_test_mode_is_a_warning(project):
    project.script("writes_outside.py", WRITES_OUTSIDE)
    project.configure(["writes_outside.py"])
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert not error_lines(result.stderr), result.stderr
    warnings = [line for line in result.stderr.splitlines() if "wrote outside its model dir" in line]
    assert len(warnings) == 1 and warnings[0].startswith("mlpipeline: warning: models/writes_outside.py v"), \
        result.stderr
    assert "stray-output.txt" in warnings[0]


def test_broken_scripts_in_execution_mode_do_not_stop_the_batch(project):
    for name, (text, _) in BROKEN.items():
        project.script(name, text)
    project.script("deletes_its_dir.py", DELETES_ITS_DIR)
    project.script("writes_outside.py", WRITES_OUTSIDE)
    project.script("zz_good.py", GOOD)
    listed = [*BROKEN, "deletes_its_dir.py", "writes_outside.py", "zz_good.py"]
    project.configure(listed)
    result = project.run("-r")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    runs = project.runs()
    by_script = {}
    for run in runs:
        by_script.setdefault(run["script"].split("/")[-1], []).append(run)
    assert list(by_script) == listed, [(r["script"], r["version"], r["status"]) for r in runs]
    for name, (_, fragments) in BROKEN.items():
        (run,) = by_script[name]
        assert run["status"] == "failed", (name, run["status"])
        for fragment in fragments:
            assert fragment in run["error"], (fragment, run["error"])
        assert sum(fragments[0] in line for line in error_lines(result.stderr)) >= 1, (name, result.stderr)

    (deleted,) = by_script["deletes_its_dir.py"]
    assert deleted["status"] == "succeeded", deleted["error"]
    model_dir = project.outputs / "model_ckpts" / "deletes_its_dir-v"
    assert (model_dir / "deletes_its_dir.py").is_file()  # recreated, with its copy of the script
    log = next(project.outputs.glob("log-*")).read_text()
    assert "was deleted while it ran; recreated it" in log
    assert any("WARNING" in line and "was deleted while it ran" in line for line in log.splitlines())

    (outside,) = by_script["writes_outside.py"]
    assert outside["status"] == "succeeded", outside["error"]
    assert "writes_outside.py v: wrote outside its model dir" in result.stderr
    assert "stray-output.txt" in result.stderr

    (good,) = by_script["zz_good.py"]
    assert (good["version"], good["status"]) == ("good", "succeeded")
    assert "3 succeeded, 9 failed" in result.stderr, result.stderr[-1500:]


def test_runner_output_redirected_into_the_project_is_not_blamed_on_a_version(project):
    """``mlpipeline -r > train.log`` (or nohup.out) in the project folder: the
    runner's own output file changes while each version runs, but no version
    wrote it, so there is no 'wrote outside its model dir' warning."""
    project.script("zz_good.py", GOOD)
    project.configure(["zz_good.py"])
    with open(project.root / "train.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "mlpipeline", "-r"], cwd=project.root, stdout=log,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote outside its model dir" not in done.stderr, done.stderr
