"""The runner as a daemon (DESIGN §5): real runner processes, real signals, real files."""
from __future__ import annotations

import json
import signal
import time


from helpers import pid_alive, queue_config, tracer, wait_for


def status(project):
    result = project.run("status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def queue_of(state):
    return [(q["script"], q["version"], q["state"]) for q in state["queue"]]


def started(project, version):
    return (project.root / f"started-{version}").exists()


def test_whitelist_edit_shows_in_status_within_a_second_and_runs(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", tracer({"new": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "waits"), proc=runner, what="the first version to start")
    assert queue_of(status(project)) == [("models/a.py", "waits", "running"), ("models/b.py", None, "skipped")]
    project.write("models.config", queue_config(["a.py", "b.py"]))
    saved = time.time()
    state = wait_for(lambda: (s := status(project)) and ("models/b.py", "new", "queued") in queue_of(s) and s,
                     timeout=5, proc=runner, what="b.py in status")
    assert time.time() - saved < 1.0 + 0.5  # status itself is a process start; the runner saw it well within 1 s
    assert state["runner"]["alive"] and state["running"][0]["version"] == "waits"
    (project.root / "go").touch()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert [r["version"] for r in project.runs()] == ["waits", "new"]


def test_blacklist_edit_stops_a_script_not_yet_started(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", tracer({"later": {}}))
    project.script("c.py", tracer({"also": {}}))
    project.write("models.config", queue_config([], use_blacklist=True))
    runner = project.start("-r")
    wait_for(lambda: started(project, "waits"), proc=runner)
    project.write("models.config", queue_config([], use_blacklist=True, blacklist=["b.py"]))
    wait_for(lambda: ("models/b.py", None, "skipped") in queue_of(status(project)), timeout=5, proc=runner)
    reasons = [q["reason"] for q in status(project)["queue"] if q["script"] == "models/b.py"]
    assert reasons == ["blacklisted in models.config:8"]
    (project.root / "go").touch()
    runner.communicate(timeout=60)
    assert [r["version"] for r in project.runs()] == ["waits", "also"]


def test_broken_edit_keeps_the_old_queue_and_status_shows_the_error(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", tracer({"next": {}}))
    project.configure(["a.py", "b.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "waits"), proc=runner)
    project.write("models.config", "[MLP\nthis is not a config\n")
    state = wait_for(lambda: (s := status(project))["config_error"] and s, timeout=5, proc=runner)
    assert "models.config:1: malformed section header" in state["config_error"]
    assert ("models/b.py", "next", "queued") in queue_of(state)
    (project.root / "go").touch()
    out, err = runner.communicate(timeout=60)
    assert [r["version"] for r in project.runs()] == ["waits", "next"]  # the last good queue ran
    assert "keeping the last good queue" in err


def test_watch_runs_new_work_then_sigterm_ends_cleanly(project):
    project.script("a.py", tracer({"first": {}}))
    project.configure(["a.py"])
    runner = project.start("-r", "--watch")
    wait_for(lambda: [r["status"] for r in project.runs()] == ["succeeded"], proc=runner, what="first version")
    time.sleep(0.3)
    assert runner.poll() is None  # still waiting for edits
    project.script("b.py", tracer({"added": {}}))
    project.write("models.config", queue_config(["a.py", "b.py"]))
    wait_for(lambda: [r["status"] for r in project.runs()] == ["succeeded"] * 2, proc=runner, what="added script")
    time.sleep(0.3)
    assert runner.poll() is None
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    assert [r["version"] for r in project.runs()] == ["first", "added"]
    assert status(project)["runner"]["alive"] is False


def test_sigkill_of_the_runner_then_resume(project):
    project.script("a.py", tracer({"long": {"action": "hang_once"}, "after": {}}))
    project.configure(["a.py"])
    runner = project.start("-r", "-u")
    wait_for(lambda: started(project, "long"), proc=runner)
    child = project.runs()[0]["child_pid"]
    assert pid_alive(child)
    runner.kill()
    runner.communicate(timeout=10)
    wait_for(lambda: not pid_alive(child), timeout=5, what="the orphaned child to exit")
    again = project.run("-r", "-u")
    assert again.returncode == 0, again.stderr
    runs = project.runs()
    assert [(r["version"], r["status"]) for r in runs] == [("long", "interrupted"), ("long", "succeeded"),
                                                           ("after", "succeeded")]
    assert "interrupted" in again.stderr
    with project.db() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_second_runner_is_refused_and_stale_lock_taken_over(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "waits"), proc=runner)
    second = project.run("-r")
    assert second.returncode == 2
    assert f"pid {runner.pid} on host" in second.stderr and "another runner" in second.stderr
    (project.root / "go").touch()
    runner.communicate(timeout=60)
    # a lock file left by a dead process (whatever its text says) is taken over
    (project.outputs / "runner.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": 0}))
    assert project.run("-r").returncode == 0


def test_single_sigint_lets_the_version_finish(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}, "never": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "waits"), proc=runner)
    runner.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert runner.poll() is None
    (project.root / "go").touch()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130
    assert "finishing the running version" in err
    assert [(r["version"], r["status"]) for r in project.runs()] == [("waits", "succeeded")]


def test_double_sigint_kills_the_child_and_marks_it_interrupted(project):
    project.script("a.py", tracer({"stuck": {"action": "forever"}, "never": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "stuck"), proc=runner)
    child = project.runs()[0]["child_pid"]
    runner.send_signal(signal.SIGINT)
    time.sleep(0.3)
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130
    run = project.runs()[0]
    assert (run["version"], run["status"]) == ("stuck", "interrupted") and run["signal"] == signal.SIGKILL
    assert len(project.runs()) == 1
    assert not pid_alive(child)


def test_timeout_kills_the_version_and_the_queue_goes_on(project):
    project.script("a.py", tracer({"hangs": {"action": "forever"}, "next": {}}))
    project.configure(["a.py"])
    began = time.time()
    result = project.run("-r", "--timeout", "2")
    assert result.returncode == 1
    runs = project.runs()
    assert [(r["version"], r["status"]) for r in runs] == [("hangs", "timeout"), ("next", "succeeded")]
    assert "timed out after 2 s" in runs[0]["error"]
    assert 1.8 < runs[0]["ended_at"] - runs[0]["started_at"] < 10
    assert time.time() - began < 30


def test_timeout_from_the_config(project):
    project.script("a.py", tracer({"hangs": {"action": "forever"}}))
    project.write("models.config", "[MLP]\ntimeout = 1\n[WHITELISTED_MODELS]\na.py\n")
    assert project.run("-r").returncode == 1
    assert project.runs()[0]["status"] == "timeout"


def test_cancel_a_running_version(project):
    project.script("a.py", tracer({"stuck": {"action": "forever"}, "next": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "stuck"), proc=runner)
    result = project.run("cancel", "1")
    assert result.returncode == 0, result.stderr
    assert "cancel requested for run 1" in result.stdout  # returns at once; the runner acts at its next step
    runner.communicate(timeout=60)
    assert [(r["version"], r["status"]) for r in project.runs()] == [("stuck", "cancelled"), ("next", "succeeded")]
    again = project.run("cancel", "2")
    assert again.returncode == 2 and "is not running (status succeeded)" in again.stderr


def test_two_jobs_overlap_and_get_their_own_gpu(project):
    project.script("a.py", tracer({"one": {"action": "sleep", "seconds": 1.5},
                                   "two": {"action": "sleep", "seconds": 1.5}}))
    project.configure(["a.py"])
    result = project.run("-r", "--gpus", "0,1")
    assert result.returncode == 0, result.stderr
    one, two = project.runs()
    assert two["started_at"] < one["ended_at"] and one["started_at"] < two["ended_at"]  # they overlapped
    seen = {(project.root / "env-one").read_text(), (project.root / "env-two").read_text()}
    assert seen == {"0", "1"}
    assert {one["gpu"], two["gpu"]} == {"0", "1"}
    assert (project.root / f"env-{'one' if one['gpu'] == '0' else 'two'}").read_text() == "0"


def test_jobs_without_gpus_leave_cuda_alone(project):
    project.script("a.py", tracer({"one": {}, "two": {}, "three": {}}))
    project.configure(["a.py"])
    assert project.run("-r", "-j", "2", env={"CUDA_VISIBLE_DEVICES": "7"}).returncode == 0
    assert [(project.root / f"env-{v}").read_text() for v in ("one", "two", "three")] == ["7"] * 3
    assert [r["gpu"] for r in project.runs()] == [None] * 3


def test_watch_reruns_a_failed_version_once_its_script_is_fixed(project):
    path = project.script("a.py", tracer({"flaky": {"action": "raise"}, "fine": {}}))
    project.configure(["a.py"])
    runner = project.start("-r", "--watch")
    wait_for(lambda: [r["status"] for r in project.runs()] == ["failed", "succeeded"], proc=runner)
    states = {q["version"]: (q["state"], q["reason"]) for q in status(project)["queue"]}
    assert states == {"flaky": ("finished", "failed in this batch"), "fine": ("finished", "succeeded in this batch")}
    path.write_text(path.read_text().replace("action='raise'", "action='ok'"))
    wait_for(lambda: [r["status"] for r in project.runs()] == ["failed", "succeeded", "succeeded"], proc=runner)
    time.sleep(0.5)
    assert [r["version"] for r in project.runs()] == ["flaky", "fine", "flaky"]  # "fine" did not run again
    runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=30)


def test_nothing_to_run_says_why(project):
    project.script("a.py", tracer({"v": {}}))
    project.write("models.config", "[WHITELISTED_MODEL]\na.py\n")  # a typo'd section name
    result = project.run("-r", "-u")
    assert result.returncode == 0
    assert "unknown section [WHITELISTED_MODEL]" in result.stderr
    assert "nothing to run: models.config selects no versions" in result.stderr
