"""Test mode and execution mode, end to end through the real CLI (DESIGN §4)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from helpers import queue_config, tracer


def ran(project, script=None):
    """(script, version) pairs in the order the trace recorded them."""
    pairs = [tuple(line.split(":")[:2]) for line in project.trace()]
    return [p for p in pairs if script is None or p[0] == script]


def test_versions_run_in_declared_order(project):
    project.script("a.py", tracer({"third": {"order": 3}, "first": {"order": 1}, "second": {"order": 2},
                                   "unordered": {}}))
    project.script("b.py", tracer({"x": {}, "y": {}}))
    project.configure(["b.py", "a.py"])
    result = project.run("-r")
    assert result.returncode == 0, result.stderr
    # "unordered" gets order 0, the first automatic one (ml-pipeline c8e2ef6,
    # mlpipeline/utils/_utils.py:118-122, Versions.add_version), so it runs first.
    assert ran(project) == [("b.py", "x"), ("b.py", "y"), ("a.py", "unordered"), ("a.py", "first"),
                            ("a.py", "second"), ("a.py", "third")]


def test_test_mode_runs_every_version_one_step_in_temp_dirs(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}}))
    project.script("b.py", tracer({"w1": {}}))
    project.configure(["a.py", "b.py"])
    result = project.run()
    assert result.returncode == 0, result.stderr
    lines = [line.split(":") for line in project.trace()]
    assert [(l[0], l[1]) for l in lines] == [("a.py", "v1"), ("a.py", "v2"), ("b.py", "w1")]
    assert all(l[2] == "1" for l in lines)  # one step each
    for line in lines:
        model_dir = ":".join(line[3:])
        assert not str(model_dir).startswith(str(project.root)), model_dir
        assert not os.path.exists(model_dir), f"temp dir {model_dir} left behind"
    assert not (project.outputs / "model_ckpts").exists()
    assert [r["mode"] for r in project.runs()] == ["test"] * 3


def test_test_mode_stops_at_first_error_with_traceback(project):
    project.script("a.py", tracer({"ok1": {}, "bad": {"action": "raise"}, "after": {}}))
    project.script("b.py", tracer({"never": {}}))
    project.configure(["a.py", "b.py"])
    result = project.run()
    assert result.returncode == 1
    assert ran(project) == [("a.py", "ok1"), ("a.py", "bad")]
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: version bad failed on purpose" in result.stderr
    assert 'a.py", line' in result.stderr  # the user's frame is shown
    assert "mlpipeline/execute.py" not in result.stderr  # the runner's own frames are not
    assert not list(project.outputs.glob("log-*")) and not list(project.outputs.glob("output-*"))


def test_test_mode_isolate_runs_each_version_in_a_child(project):
    project.script("a.py", tracer({"v1": {}, "bad": {"action": "exit3"}}))
    project.configure(["a.py"])
    result = project.run("--isolate")
    assert result.returncode == 1
    runs = project.runs()
    assert [r["status"] for r in runs] == ["succeeded", "failed"]
    assert runs[1]["exit_code"] == 3


def test_execution_mode_records_failure_and_goes_on(project):
    project.script("a.py", tracer({"ok1": {}, "bad": {"action": "raise"}, "ok2": {}}))
    project.script("b.py", tracer({"w": {}}))
    project.configure(["a.py", "b.py"])
    result = project.run("-r")
    assert result.returncode == 1
    assert ran(project) == [("a.py", "ok1"), ("a.py", "bad"), ("a.py", "ok2"), ("b.py", "w")]
    runs = {r["version"]: r for r in project.runs()}
    assert runs["bad"]["status"] == "failed"
    assert "ValueError: version bad failed on purpose" in runs["bad"]["error"]
    assert "Traceback (most recent call last)" in runs["bad"]["traceback"]
    assert 'a.py", line' in runs["bad"]["traceback"]
    assert [runs[v]["status"] for v in ("ok1", "ok2", "w")] == ["succeeded"] * 3
    log = next(project.outputs.glob("log-*")).read_text()
    assert "ValueError: version bad failed on purpose" in log
    assert "Traceback (most recent call last)" in log
    assert "\x1b[" not in log
    output = next(project.outputs.glob("output-*")).read_text()
    assert output.count("ml-pipline: output:") == 3  # one block per finished version


def test_execution_mode_uses_persistent_model_dirs_and_captures_output(project):
    project.script("a.py", tracer({"v1": {}, "v2": {"model_dir_suffix": "-shared"}}))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    runs = project.runs()
    ckpts = project.outputs / "model_ckpts"
    assert [r["model_dir"] for r in runs] == [str(ckpts / "a-v1"), str(ckpts / "a-shared")]
    assert (ckpts / "a-v1" / "a.py").read_text() == (project.models / "a.py").read_text()
    for r in runs:
        output = Path(r["run_dir"]) / "output.log"
        assert "training 2 steps" in output.read_text()


def test_use_history_second_run_runs_nothing(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}}))
    project.configure(["a.py"])
    assert project.run("-r", "-u").returncode == 0
    assert len(project.trace()) == 2
    second = project.run("-r", "-u")
    assert second.returncode == 0
    assert len(project.trace()) == 2
    assert "nothing to run" in second.stderr
    assert len(project.runs()) == 2


def test_use_history_reruns_only_changed_script(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}}))
    project.script("b.py", tracer({"w1": {}}))
    project.configure(["a.py", "b.py"])
    assert project.run("-r", "-u").returncode == 0
    path = project.models / "b.py"
    path.write_text(path.read_text() + "\n# a comment changes nothing that trains\n")
    assert project.run("-r", "-u").returncode == 0
    assert ran(project) == [("a.py", "v1"), ("a.py", "v2"), ("b.py", "w1")]
    path.write_text(path.read_text() + "\nEDITED = True\n")  # code: what trains may have changed
    assert project.run("-r", "-u").returncode == 0
    assert ran(project) == [("a.py", "v1"), ("a.py", "v2"), ("b.py", "w1"), ("b.py", "w1")]


def test_use_history_reruns_failed_version(project):
    project.script("a.py", tracer({"v1": {}, "bad": {"action": "raise"}}))
    project.configure(["a.py"])
    assert project.run("-r", "-u").returncode == 1
    assert project.run("-r", "-u").returncode == 1
    assert ran(project) == [("a.py", "v1"), ("a.py", "bad"), ("a.py", "bad")]


def test_without_use_history_each_version_runs_once_per_invocation(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}}))
    project.configure(["a.py"])
    for _ in range(2):
        assert project.run("-r").returncode == 0
    assert ran(project) == [("a.py", "v1"), ("a.py", "v2")] * 2


def test_blacklist_mode_runs_all_other_scripts(project):
    for name in ("c.py", "a.py", "b.py"):
        project.script(name, tracer({"v": {}, "w": {}}))
    project.write("models.config", queue_config([], use_blacklist=True, blacklist=["b.py", "c.py = w"]))
    assert project.run("-r").returncode == 0
    assert ran(project) == [("a.py", "v"), ("a.py", "w"), ("c.py", "v")]


def test_whitelisted_versions_only(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}, "v3": {}}))
    project.write("models.config", queue_config(["a.py = v3, v1"]))
    assert project.run("-r").returncode == 0
    assert ran(project) == [("a.py", "v1"), ("a.py", "v3")]


def test_only_version_flag(project):
    project.script("a.py", tracer({"v1": {}, "v2": {}}))
    project.script("b.py", tracer({"v2": {}, "v3": {}}))
    project.configure(["a.py", "b.py"])
    assert project.run("-r", "--version", "v2").returncode == 0
    assert ran(project) == [("a.py", "v2"), ("b.py", "v2")]


def test_no_log_writes_no_log_or_output_files(project):
    project.script("a.py", tracer({"v1": {}, "bad": {"action": "raise"}}))
    project.configure(["a.py"])
    assert project.run("-r", "-n").returncode == 1
    assert not list(project.outputs.glob("log-*"))
    assert not list(project.outputs.glob("output-*"))
    assert [r["status"] for r in project.runs()] == ["succeeded", "failed"]  # the ledger still records


def test_config_edits_between_versions_take_effect(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", tracer({"added": {}}))
    project.script("c.py", tracer({"removed": {}}))
    project.configure(["a.py", "c.py"])
    proc = project.start("-r")
    started = project.root / "started-waits"
    deadline = time.time() + 60
    while not started.exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    project.write("models.config", queue_config(["a.py", "b.py"]))
    (project.root / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert ran(project) == [("a.py", "waits"), ("b.py", "added")]


def test_reorder_takes_effect_at_next_boundary(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", tracer({"b": {}}))
    project.script("c.py", tracer({"c": {}}))
    project.configure(["a.py", "b.py", "c.py"])
    proc = project.start("-r")
    deadline = time.time() + 60
    while not (project.root / "started-waits").exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    project.write("models.config", queue_config(["c.py", "b.py", "a.py"]))
    (project.root / "go").touch()
    proc.communicate(timeout=60)
    assert ran(project) == [("a.py", "waits"), ("c.py", "c"), ("b.py", "b")]


def test_exit_code_and_signal_recorded_and_runner_continues(project):
    project.script("a.py", tracer({"exits": {"action": "exit3"}, "killed": {"action": "sigkill"}, "fine": {}}))
    project.configure(["a.py"])
    result = project.run("-r")
    assert result.returncode == 1
    runs = {r["version"]: r for r in project.runs()}
    assert (runs["exits"]["status"], runs["exits"]["exit_code"], runs["exits"]["signal"]) == ("failed", 3, None)
    assert "exited with code 3" in runs["exits"]["error"]
    assert (runs["killed"]["status"], runs["killed"]["signal"]) == ("failed", signal.SIGKILL)
    assert "SIGKILL" in runs["killed"]["error"]
    assert runs["fine"]["status"] == "succeeded"


def test_metrics_recorded_per_split(project):
    project.script("a.py", tracer({"v1": {}}))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    with project.db() as conn:
        rows = {(r["split"], r["name"]): r["value"] for r in conn.execute("SELECT * FROM metrics")}
    assert rows == {("train", "score"): 6.0, ("test", "score"): 9.0}
