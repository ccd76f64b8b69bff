"""A weekend unattended (issue 22): retries with reasons, stalls and the NaN guard — the policy as plain
decisions, and real batches of real versions that fail, kill themselves, go silent and log NaN."""
from __future__ import annotations

import json
import time

import pytest

from helpers import wait_for

from mlpipeline.core.lifecycle import Outcome
from mlpipeline.core.retry import DEFAULT_ON, RetryPolicy, kind_of, parse_kinds
from mlpipeline.core.vocabulary import RunStatus

SCRIPT = '''\
import math, os, signal, sys, time
from mlpipeline import log_metric
from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import Versions

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return lambda: [1, 2, 3]
    def get_test_input(self, **kw): return lambda: [4, 5]
    def get_train_sample_count(self): return 4
    def get_test_sample_count(self): return 2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def once(name):
    """True the first time this version asks (a marker file in the project)."""
    path = os.path.join(ROOT, "tried-" + name)
    if os.path.exists(path):
        return False
    open(path, "w").close()
    return True

class Flaky(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.version = version

    def train_model(self, input_fn, steps):
        name, action = self.version["name"], self.version["action"]
        if action == "fail_once" and once(name):
            raise RuntimeError("a transient failure")
        if action == "fail":
            raise RuntimeError("broken for good")
        if action == "kill_once" and once(name):
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "silent":
            print("step 1 done", flush=True)
            log_metric("loss", 0.5, step=1)
            time.sleep(60)
        if action == "forever":
            open(os.path.join(ROOT, "started-" + name), "w").close()
            while True:
                print("working", flush=True)
                time.sleep(0.2)
        if action == "nan":
            for step in range(300):
                log_metric("loss", float("nan") if step == 200 else 1.0 / (step + 1), step=step)
            time.sleep(30)

    def evaluate_model(self, input_fn, steps):
        return {"score": 1.0}

versions = Versions(Loader(), 1, 1)
for name, action in ACTIONS:
    versions.add_version(name, action=action)
MODEL = Flaky(versions)
'''


def script(project, name: str, actions) -> None:
    project.script(name, SCRIPT.replace("ACTIONS", repr(list(actions))))


def runs_of(project, version: str) -> list:
    return [r for r in project.runs() if r["version"] == version]


# -- the policy --------------------------------------------------------------------------------------------------

def test_which_endings_are_retried_and_the_back_off_doubles():
    assert kind_of(Outcome(RunStatus.FAILED, error="x")) == "error"
    assert kind_of(Outcome(RunStatus.FAILED, signal=9)) == "signal"
    assert kind_of(Outcome(RunStatus.FAILED, reason="oom")) == "oom"
    assert kind_of(Outcome(RunStatus.INTERRUPTED, node_lost=True)) == "node_lost"
    assert kind_of(Outcome(RunStatus.STALLED)) == "stalled" and kind_of(Outcome(RunStatus.TIMEOUT)) == "timeout"
    for never in (RunStatus.SUCCEEDED, RunStatus.CANCELLED, RunStatus.PRUNED, RunStatus.INTERRUPTED):
        assert kind_of(Outcome(never)) is None
    assert kind_of(Outcome(RunStatus.FAILED, script_error=True)) is None  # a script that does not load
    policy = RetryPolicy(3, frozenset({"error", "signal"}), 30.0)
    assert [policy.again(Outcome(RunStatus.FAILED), attempt) for attempt in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, None]
    assert RetryPolicy(9, DEFAULT_ON, 400).again(Outcome(RunStatus.FAILED, signal=9), 2) == 600.0  # capped
    assert policy.again(Outcome(RunStatus.FAILED, reason="oom"), 1) is None  # oom is not among its kinds
    assert kind_of(Outcome(RunStatus.FAILED, signal=15, reason="nan")) == "error"  # the NaN guard's own SIGTERM
    assert RetryPolicy(1).again(Outcome(RunStatus.INTERRUPTED, node_lost=True), 1) == 0.0  # another node, now
    assert RetryPolicy(0).again(Outcome(RunStatus.FAILED, signal=9), 1) is None
    assert parse_kinds("error, OOM", "--retry-on") == {"error", "oom"}
    with pytest.raises(ValueError, match="'crash' is not a kind; give some of error, signal"):
        parse_kinds("error,crash", "--retry-on")


def test_the_queue_config_sets_the_policy_and_a_bad_value_names_its_line(project):
    from mlpipeline.core.errors import ConfigError
    from mlpipeline.plan.config import read_queue_config

    path = project.write("models.config", "[MLP]\nretries = 2\nretry_on = error, stalled\nstall_timeout = 600\n"
                                          "stop_on_nan = true\n[WHITELISTED_MODELS]\n")
    config = read_queue_config(str(path))
    assert (config.retries, config.retry_on, config.stall_timeout, config.stop_on_nan) == \
        (2, {"error", "stalled"}, 600.0, True)
    for bad, words in [("retries = two", "retries = 'two' is not a whole number"),
                       ("retry_on = sometimes", "'sometimes' is not a kind"),
                       ("stall_timeout = -1", "stall_timeout = '-1' is not a positive")]:
        project.write("models.config", f"[MLP]\n{bad}\n[WHITELISTED_MODELS]\n")
        with pytest.raises(ConfigError, match=words):
            read_queue_config(str(path))


# -- real batches ------------------------------------------------------------------------------------------------

def test_a_transient_failure_succeeds_on_its_retry_and_the_batch_exits_0(project):
    script(project, "flaky.py", [("flaky", "fail_once")])
    project.configure(["flaky.py"])
    result = project.run("-r", "--retries", "1", "--retry-on", "error", "--retry-delay", "0.2", timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = runs_of(project, "flaky")
    assert (first["status"], first["attempt"], first["retry_of"]) == ("failed", 1, None)
    assert (second["status"], second["attempt"], second["retry_of"]) == ("succeeded", 2, first["id"])
    assert "it ended failed (error); running it again as a new run, attempt 2 of 2" in result.stderr
    assert "succeeded on attempt 2 of 2" in result.stderr
    assert "succeeded (attempt 2)" in result.stdout + result.stderr  # the batch's summary table
    assert "1 succeeded, 0 failed, 1 retried" in result.stderr, result.stderr
    listed = project.run("runs").stdout
    assert "succeeded (attempt 2)" in listed, listed


def test_retries_run_out_signals_are_retried_by_default_and_a_cancel_is_not(project):
    script(project, "many.py", [("broken", "fail"), ("killed", "kill_once"), ("waiter", "forever")])
    project.configure(["many.py"])
    runner = project.start("-r", "-j", "3", "--retries", "2", "--retry-delay", "0")  # default kinds: no error
    try:
        wait_for(lambda: (project.root / "started-waiter").exists(), timeout=60, proc=runner, what="waiter runs")
        waiter = runs_of(project, "waiter")[0]
        assert project.run("cancel", str(waiter["id"])).returncode == 0
        out, err = runner.communicate(timeout=90)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, err
    assert [r["status"] for r in runs_of(project, "broken")] == ["failed"]  # error is not a default kind
    killed = runs_of(project, "killed")
    assert [r["status"] for r in killed] == ["failed", "succeeded"] and killed[0]["signal"] == 9, killed
    assert [r["status"] for r in runs_of(project, "waiter")] == ["cancelled"]
    script(project, "many.py", [("broken", "fail")])  # every time, now with error among the kinds
    again = project.run("-r", "--retries", "2", "--retry-on", "error", "--retry-delay", "0", timeout=120)
    assert again.returncode == 1
    broken = runs_of(project, "broken")[1:]
    assert [(r["status"], r["attempt"]) for r in broken] == [("failed", 1), ("failed", 2), ("failed", 3)]
    assert [r["retry_of"] for r in broken] == [None, broken[0]["id"], broken[1]["id"]]


def test_a_silent_version_is_stalled_and_the_queue_goes_on(project):
    script(project, "quiet.py", [("silent", "silent"), ("after", "ok")])
    project.configure(["quiet.py"])
    began = time.time()
    result = project.run("-r", "--stall-timeout", "3", timeout=120)
    assert result.returncode == 1, result.stderr
    silent, = runs_of(project, "silent")
    assert silent["status"] == "stalled" and silent["reason"] == "stalled"
    assert "no output line and no metric for 3 s" in silent["error"] and "'step 1 done'" in silent["error"] \
        and "train/loss = 0.5 (step 1)" in silent["error"], silent["error"]
    assert silent["ended_at"] - silent["started_at"] < 3 + 5, silent  # within 5 s of going silent
    assert [r["status"] for r in runs_of(project, "after")] == ["succeeded"]
    assert time.time() - began < 60


def test_a_nan_ends_its_version_naming_the_metric_and_step(project):
    script(project, "nan.py", [("diverges", "nan")])
    project.configure(["nan.py"])
    result = project.run("-r", "--stop-on-nan", timeout=120)
    assert result.returncode == 1
    run, = runs_of(project, "diverges")
    assert run["status"] == "failed" and run["reason"] == "nan", run
    assert "metric train/loss was nan at step 200 (--stop-on-nan)" in run["error"], run["error"]
    assert run["ended_at"] - run["started_at"] < 20  # not the 30 s it would have slept
    shown = json.loads(project.run("show", str(run["id"]), "--format", "json").stdout)
    assert shown["reason"] == "nan"


def test_a_runner_killed_during_a_back_off_leaves_the_count_to_the_next(project):
    import signal

    script(project, "dies.py", [("broken", "fail")])
    project.configure(["dies.py"])
    runner = project.start("-r", "--retries", "2", "--retry-on", "error", "--retry-delay", "60")
    try:
        wait_for(lambda: [r["status"] for r in runs_of(project, "broken")] == ["failed"], timeout=60, proc=runner,
                 what="the first attempt to fail")
        time.sleep(0.5)  # the retry is waiting out its back-off
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate()
    again = project.run("-r", "-u", "--retries", "2", "--retry-on", "error", "--retry-delay", "0", timeout=120)
    assert again.returncode == 1
    runs = runs_of(project, "broken")
    assert [(r["attempt"], r["retry_of"]) for r in runs] == [(1, None), (2, runs[0]["id"]), (3, runs[1]["id"])]
    once_more = project.run("-r", "--retries", "0", timeout=120)  # run again on purpose: a chain of its own
    assert once_more.returncode == 1 and runs_of(project, "broken")[-1]["attempt"] == 1


def test_status_shows_a_running_versions_silence_past_half_the_stall_timeout(project):
    script(project, "quiet.py", [("silent", "silent")])
    project.configure(["quiet.py"])
    runner = project.start("-r", "--stall-timeout", "6")
    try:
        status = wait_for(lambda: (lambda out: out if "silent for" in out else None)(project.run("status").stdout),
                          timeout=30, proc=runner, what="status to show the silence")
        assert "(--stall-timeout 6)" in status, status
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert [r["status"] for r in runs_of(project, "silent")] == ["stalled"]


def test_a_chain_goes_on_only_after_a_runner_that_died():
    """A run the user stopped (Ctrl+C: its runner ended) starts the next batch's chain afresh; one a dead
    runner left goes on counting, if retries are in force."""
    from types import SimpleNamespace

    from mlpipeline.run.guards import Retries

    rows = {"stopped": {"id": 7, "status": "interrupted", "attempt": 1, "signal": None, "reason": None,
                        "runner_id": 3},
            "crashed": {"id": 8, "status": "interrupted", "attempt": 2, "signal": None, "reason": None,
                        "runner_id": 4},
            "failed": {"id": 9, "status": "failed", "attempt": 1, "signal": 9, "reason": None, "runner_id": 4}}
    ledger = SimpleNamespace(last_attempt=lambda script, version: rows[version])
    options = SimpleNamespace(retries=1, retry_on=None, retry_delay=0.0, default_retries=0)
    retries = Retries(options, ledger)
    retries.dead_runners = {4}
    assert retries.link(("s.py", "stopped"), None) == {"attempt": 1}
    assert retries.link(("s.py", "crashed"), None) == {"attempt": 3, "retry_of": 8}
    assert retries.link(("s.py", "failed"), None) == {"attempt": 2, "retry_of": 9}  # its retry never started
    options.retries = 0
    assert retries.link(("s.py", "crashed"), None) == {"attempt": 1}  # no retries in force: a fresh start


def test_a_retry_that_never_ran_is_no_retry_in_the_summary(project):
    """Stopped (Ctrl+C) while a retry waits out its back-off: that attempt is the version's last word, so the
    summary counts it failed, not retried."""
    import signal

    script(project, "stop.py", [("broken", "fail")])
    project.configure(["stop.py"])
    runner = project.start("-r", "--retries", "1", "--retry-on", "error", "--retry-delay", "60")
    try:
        wait_for(lambda: [r["status"] for r in runs_of(project, "broken")] == ["failed"], timeout=60, proc=runner,
                 what="the first attempt to fail")
        time.sleep(0.5)
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert "0 succeeded, 1 failed" in err and "retried" not in err.splitlines()[-1], err
