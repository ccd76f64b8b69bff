"""-u compares what trains (the script's code without its version declarations, the helper modules
it imports, the data files it reads at import), and script descriptions are cached by content:
failed ones too, and touching one script re-describes no other (through the CLI, -r -u)."""
from __future__ import annotations

import json
import os
import time

from helpers import tracer

COUNT_AT_IMPORT = ('with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '
                   '"count-" + os.path.basename(__file__)), "a") as _count:\n'
                   '    _count.write("%d\\n" % os.getpid())\n')


def with_lines(text: str, *lines: str) -> str:
    """A tracer script with ``lines`` run at import, right after its first import line."""
    first, rest = text.split("\n", 1)
    return "\n".join([first, *lines, rest])


def counted(versions: dict) -> str:
    """A tracer script that appends a line to count-<file name> each time it is imported."""
    return with_lines(tracer(versions), COUNT_AT_IMPORT)


def imports(project, name: str) -> int:
    path = project.root / f"count-{name}"
    return len(path.read_text().split()) if path.exists() else 0


def ran(project) -> list:
    """``script:version`` of every version that trained, in order (from trace.log)."""
    return [":".join(line.split(":")[:2]) for line in project.trace()]


def run_u(project) -> list:
    """``mlpipeline -r -u``; what trained in it."""
    before = len(project.trace())
    result = project.run("-r", "-u")
    assert result.returncode == 0, result.stderr
    return [":".join(line.split(":")[:2]) for line in project.trace()[before:]]


def test_adding_a_version_reruns_only_the_new_version(project):
    """Defect: -u compared the whole script file, so adding one version reran every other version."""
    project.script("a.py", tracer({"v1": {}, "v2": {"seed": 3}}))
    project.script("b.py", tracer({"w": {}}))
    project.configure(["a.py", "b.py"])
    assert run_u(project) == ["a.py:v1", "a.py:v2", "b.py:w"]
    project.script("a.py", tracer({"v1": {}, "v2": {"seed": 3}, "v3": {"seed": 4}}))
    assert run_u(project) == ["a.py:v3"]
    assert run_u(project) == []


def test_editing_a_helper_module_reruns_the_scripts_that_import_it_only(project):
    """Defect: editing a helper module the model imports reran nothing under -u."""
    project.script("shared_a.py", "FACTOR = 1\n")
    project.script("a.py", with_lines(tracer({"v1": {}, "v2": {"seed": 3}}), "import shared_a"))
    project.script("b.py", tracer({"w": {}}))
    project.configure(["a.py", "b.py"])
    assert run_u(project) == ["a.py:v1", "a.py:v2", "b.py:w"]
    assert run_u(project) == []
    project.script("shared_a.py", "FACTOR = 2\n")
    assert run_u(project) == ["a.py:v1", "a.py:v2"]
    assert run_u(project) == []


def test_editing_a_data_file_read_at_import_reruns_its_script_only(project):
    """Defect: -u ignored data files a script reads at import (params.json next to the script)."""
    project.script("params.json", json.dumps({"units": 8}))
    project.script("a.py", with_lines(
        tracer({"v1": {}}), "import json",
        'PARAMS = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "params.json")))'))
    project.script("b.py", tracer({"w": {}}))
    project.configure(["a.py", "b.py"])
    assert run_u(project) == ["a.py:v1", "b.py:w"]
    assert run_u(project) == []
    project.script("params.json", json.dumps({"units": 16}))
    assert run_u(project) == ["a.py:v1"]
    assert run_u(project) == []


def test_comments_and_formatting_do_not_rerun_but_code_does(project):
    """Defect: -u compared the script's bytes; a comment reran everything (and a real change must still rerun)."""
    path = project.script("a.py", tracer({"v1": {}}))
    project.configure(["a.py"])
    assert run_u(project) == ["a.py:v1"]
    path.write_text("# a comment\n\n" + path.read_text())
    assert run_u(project) == []
    path.write_text(path.read_text().replace("return {\"score\": float(sum(input_fn()))}",
                                             "return {\"score\": float(sum(input_fn())) + 1}"))
    assert '+ 1}' in path.read_text()
    assert run_u(project) == ["a.py:v1"]


def test_show_has_the_fingerprint_of_what_trained(project):
    """Defect: runs recorded no fingerprint of what trained, only the script file's sha."""
    project.script("shared_a.py", "FACTOR = 1\n")
    project.script("a.py", with_lines(tracer({"v1": {}, "v2": {"seed": 3}}), "import shared_a"))
    project.script("b.py", tracer({"w": {}}))
    project.configure(["a.py", "b.py"])
    assert project.run("-r").returncode == 0
    shown = {}
    for run in project.runs():
        result = project.run("show", str(run["id"]), "--format", "json")
        assert result.returncode == 0, result.stderr
        shown[run["version"]] = json.loads(result.stdout)["fingerprint"]
    assert all(isinstance(f, str) and len(f) == 64 for f in shown.values()), shown
    assert shown["v1"] == shown["v2"] != shown["w"]
    project.script("shared_a.py", "FACTOR = 2\n")
    assert project.run("-r", "--version", "v1").returncode == 0
    latest = project.runs()[-1]
    assert latest["version"] == "v1" and latest["fingerprint"] != shown["v1"]


def test_broken_scripts_are_described_once_and_their_errors_served_from_the_cache(project):
    """Defect: failed descriptions were never cached (a batch with 10 broken scripts took 18 s instead of 2 s)."""
    broken = [f"broken{i}.py" for i in range(10)]
    for i, name in enumerate(broken):
        project.script(name, COUNT_AT_IMPORT.join(["import os\n", f"raise RuntimeError('data set {i} missing')\n"]))
    project.script("syntax.py", "def broken(:\n")  # never executes: only its error can be checked
    project.script("good.py", tracer({"v": {}}))
    project.configure([*broken, "syntax.py", "good.py"])
    first = project.run("-r", "-u")
    assert first.returncode == 1
    assert [imports(project, name) for name in broken] == [1] * 10
    began = time.time()
    second = project.run("-r", "-u")
    took = time.time() - began
    assert second.returncode == 1
    assert [imports(project, name) for name in broken] == [1] * 10, "a broken script was loaded again"
    errors = {r["script"]: r["error"] for r in project.runs()[-11:]}
    assert len(errors) == 11 and all(r["status"] == "failed" for r in project.runs()[-11:])
    for i, name in enumerate(broken):
        assert f"RuntimeError while importing the script: data set {i} missing" in errors[f"models/{name}"]
    assert "models/syntax.py:1: SyntaxError" in errors["models/syntax.py"]
    assert took < 10


def test_touching_or_editing_one_script_redescribes_only_that_one(project):
    """Defect: the description cache key held every sibling script's mtime, so touching one re-described all."""
    names = [f"s{i}.py" for i in range(5)]
    for name in names:
        project.script(name, counted({"v": {}}))
    project.configure(names)
    assert len(run_u(project)) == 5
    loaded = {name: imports(project, name) for name in names}  # a describe child and a version child each
    assert all(n >= 1 for n in loaded.values())
    assert run_u(project) == []
    assert {name: imports(project, name) for name in names} == loaded, "descriptions were not served from the cache"
    later = time.time() + 10
    os.utime(project.models / "s0.py", (later, later))  # same content, new mtime
    assert run_u(project) == []
    assert {name: imports(project, name) for name in names} == loaded, "touching s0.py re-described scripts"
    edited = project.models / "s1.py"
    edited.write_text(edited.read_text() + "# edited\n")
    trained = run_u(project)
    now = {name: imports(project, name) for name in names}
    assert now == {**loaded, "s1.py": loaded["s1.py"] + 1}, "only the edited script is described again"
    assert trained == []  # a comment changes nothing that trains


def test_a_script_failing_on_a_missing_data_file_loads_once_the_file_is_back(project):
    """Defect (of the fix that caches failed descriptions): a failure caused by a file that did not exist yet
    must not be served from the cache once the file exists."""
    project.script("params.json", json.dumps({"units": 8}))
    project.script("a.py", with_lines(
        tracer({"v1": {}}), "import json",
        'PARAMS = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "params.json")))'))
    project.configure(["a.py"])
    assert run_u(project) == ["a.py:v1"]
    (project.models / "params.json").unlink()
    missing = project.run("-r")
    assert missing.returncode == 1 and "FileNotFoundError" in missing.stderr
    project.script("params.json", json.dumps({"units": 8}))
    back = project.run("-r")
    assert back.returncode == 0, f"the cached FileNotFoundError was served again: {back.stderr}"


def test_a_script_failing_on_a_missing_module_loads_once_it_is_installed(project, tmp_path):
    """Defect (of the fix that caches failed descriptions): 'No module named X; install the package' must not
    be served from the cache after the user installs it (here: a module appearing on PYTHONPATH, and a
    helper module created next to the script)."""
    site = tmp_path / "site"
    site.mkdir()
    env = {"PYTHONPATH": str(site)}
    project.script("a.py", with_lines(tracer({"v1": {}}), "import later_helper"))
    project.script("b.py", with_lines(tracer({"w": {}}), "import extpkg_installed_later"))
    project.configure(["a.py", "b.py"])
    first = project.run("-r", env=env)
    assert first.returncode == 1
    assert "No module named 'later_helper'" in first.stderr
    assert "No module named 'extpkg_installed_later'" in first.stderr
    project.script("later_helper.py", "X = 1\n")
    (site / "extpkg_installed_later.py").write_text("Y = 2\n")
    second = project.run("-r", env=env)
    assert second.returncode == 0, f"a cached ModuleNotFoundError was served again: {second.stderr}"
    assert ran(project) == ["a.py:v1", "b.py:w"]


def test_test_mode_sees_a_module_created_after_a_failed_session(project):
    """Defect (of the fix that caches failed descriptions): test mode served a cached import error."""
    project.script("a.py", with_lines(tracer({"v1": {}}), "import later_helper"))
    project.configure(["a.py"])
    assert project.run().returncode == 1
    project.script("later_helper.py", "X = 1\n")
    again = project.run()
    assert again.returncode == 0, f"the cached ModuleNotFoundError was served again: {again.stderr}"
