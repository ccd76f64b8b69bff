"""``mlpipeline -r --backend ray`` against real local Ray clusters: fake GPUs,
several nodes, a node that dies, cancel, timeout, config edits, ``-u`` and a
SIGKILLed runner, all through the CLI, with the ledger and /proc as witnesses.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import List

import pytest

from ray_support import Project, RayCluster, hung, new_project, pid_alive, probe, probes, queue_config, wait_for

pytestmark = pytest.mark.ray


def ray_args(cluster: RayCluster, *more: str) -> List[str]:
    return ["-r", "--backend", "ray", "--ray-address", cluster.address, *more]


def statuses(project: Project) -> List[tuple]:
    return [(r["version"], r["status"]) for r in project.runs()]


def queue_of(project: Project) -> List[tuple]:
    result = project.run("status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return [(q["script"], q["version"], q["state"]) for q in json.loads(result.stdout)["queue"]]


def assert_gone(pids: List[int], what: str) -> None:
    wait_for(lambda: not any(pid_alive(pid) for pid in pids), timeout=10,
             what=f"{what} ({', '.join(map(str, pids))}) to be gone")


def assert_no_version_task(cluster: RayCluster) -> None:
    wait_for(lambda: not cluster.tasks("run_version"), timeout=10, what="no run_version task left on the cluster")


@pytest.fixture(scope="module")
def gpu_batch(gpu_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Four 1.5 s versions, two at a time, one fake GPU each, run once for the module."""
    project = new_project(tmp_path_factory.mktemp("gpu") / "proj")
    project.script("a.py", probe({name: {"action": "sleep", "seconds": 1.5} for name in ("v1", "v2", "v3", "v4")}))
    project.configure(["a.py"])
    result = project.run(*ray_args(gpu_cluster, "--gpus-per-version", "1", "-j", "2"), timeout=120)
    return project, result


def test_versions_get_their_own_gpu_and_are_recorded_once(gpu_batch, gpu_cluster):
    """-j 2 --gpus-per-version 1 on a node with two fake GPUs: each version runs
    once, the ledger holds its node, Ray node id, child pid and GPU as the
    version saw them, and two versions that overlap never share a GPU."""
    project, result = gpu_batch
    assert result.returncode == 0, result.stderr
    runs = project.runs()
    assert sorted(statuses(project)) == [(v, "succeeded") for v in ("v1", "v2", "v3", "v4")]
    head = gpu_cluster.nodes["head"]
    for run in runs:
        assert run["node"] and run["node_id"] == head, run
        assert run["child_pid"] and run["gpu"] in ("0", "1"), run
    seen = {p["name"]: p for p in probes(project)}
    assert sorted(seen) == ["v1", "v2", "v3", "v4"]
    for run in runs:  # what the ledger says is what the version saw
        assert seen[run["version"]]["pid"] == run["child_pid"]
        assert seen[run["version"]]["cuda"] == run["gpu"]
    overlapping = [(a, b) for a in seen.values() for b in seen.values()
                   if a["name"] < b["name"] and a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping, f"no two versions ran at once: {seen}"
    for a, b in overlapping:
        assert a["cuda"] != b["cuda"], f"{a['name']} and {b['name']} ran at once on GPU {a['cuda']}"


def test_use_history_skips_what_succeeded_on_the_cluster(gpu_batch, gpu_cluster):
    """-u on the cluster, as locally: versions that succeeded are not run again."""
    project, first = gpu_batch
    assert first.returncode == 0, first.stderr
    before = project.runs()
    again = project.run(*ray_args(gpu_cluster, "--gpus-per-version", "1", "-u"), timeout=120)
    assert again.returncode == 0, again.stderr
    assert project.runs() == before
    assert len(probes(project)) == 4  # no version started, not even to stop at once


def test_a_node_lost_mid_version_is_retried_on_another_node(three_nodes, tmp_path):
    """The worker node running a version dies: that run ends interrupted, the
    version runs again as a new run on the other worker node and succeeds."""
    project = new_project(tmp_path / "proj")
    project.script("a.py", probe({"long": {"action": "hang_once"}}))
    project.configure(["a.py"])
    runner = project.start(*ray_args(three_nodes, "-j", "1", "--retries", "1"))
    wait_for(lambda: (project.root / "started-long").exists(), timeout=60, proc=runner, what="the version to start")
    first = project.runs()[0]
    lost = three_nodes.name_of(first["node_id"])
    assert lost in ("w1", "w2"), (first["node_id"], three_nodes.nodes)  # the head has no CPU for it
    other = three_nodes.nodes["w2" if lost == "w1" else "w1"]
    three_nodes.remove(lost)
    out, err = runner.communicate(timeout=90)
    runs = project.runs()
    assert statuses(project) == [("long", "interrupted"), ("long", "succeeded")], err
    assert "left the cluster" in runs[0]["error"]
    assert runs[1]["node_id"] == other and runs[1]["id"] != runs[0]["id"]
    assert "its node was lost; running it again as a new run" in err
    # the lost node's machine lives on here: its retry ended what the lost run had started
    assert_gone(hung(project, "long")["kids"], "what the version on the lost node started")
    assert runner.returncode == 0, f"every version succeeded (one on its retry), yet the batch failed: {err}"


def test_cancel_ends_the_version_and_what_it_started(gpu_cluster, project):
    """``mlpipeline cancel RUN``: the run ends cancelled, its child and both of
    the child's children (one in its group, one in a session of its own) are
    gone, no Ray task is left, and the queue goes on."""
    project.script("a.py", probe({"stuck": {"action": "hang"}, "next": {}}))
    project.configure(["a.py"])
    runner = project.start(*ray_args(gpu_cluster, "-j", "1"))
    wait_for(lambda: (project.root / "started-stuck").exists(), timeout=60, proc=runner, what="the version to start")
    run = placed_run(project, runner)
    kids = hung(project, "stuck")["kids"]
    assert pid_alive(run["child_pid"]) and all(pid_alive(k) for k in kids)
    result = project.run("cancel", str(run["id"]))
    assert result.returncode == 0, result.stderr
    out, err = runner.communicate(timeout=60)
    assert statuses(project) == [("stuck", "cancelled"), ("next", "succeeded")], err
    assert_gone([run["child_pid"], *kids], "the cancelled version's processes")
    assert_no_version_task(gpu_cluster)


def test_timeout_ends_the_version_and_what_it_started(gpu_cluster, project):
    """--timeout 2: the run ends timeout, leaving no process and no Ray task."""
    project.script("a.py", probe({"hangs": {"action": "hang"}}))
    project.configure(["a.py"])
    result = project.run(*ray_args(gpu_cluster, "--timeout", "2"), timeout=90)
    assert result.returncode == 1, result.stderr
    run = project.runs()[0]
    assert (run["version"], run["status"]) == ("hangs", "timeout")
    assert "timed out after 2 s" in run["error"]
    assert_gone([run["child_pid"], *hung(project, "hangs")["kids"]], "the timed-out version's processes")
    assert_no_version_task(gpu_cluster)


def test_a_config_edit_mid_batch_changes_what_runs_next(gpu_cluster, project):
    """Versions wait in the runner's queue, not Ray's: a whitelist edit while the
    first version runs adds b.py and drops c.py before either starts."""
    project.script("a.py", probe({"waits": {"action": "wait"}}))
    project.script("b.py", probe({"added": {}}))
    project.script("c.py", probe({"dropped": {}}))
    project.configure(["a.py", "c.py"])
    runner = project.start(*ray_args(gpu_cluster, "-j", "1"))
    wait_for(lambda: (project.root / "started-waits").exists(), timeout=60, proc=runner, what="the first version")
    project.write("models.config", queue_config(["a.py", "b.py"]))
    wait_for(lambda: ("models/b.py", "added", "queued") in queue_of(project), timeout=10, proc=runner,
             what="the runner to see the edit")
    (project.root / "go").touch()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert statuses(project) == [("waits", "succeeded"), ("added", "succeeded")]


def test_a_second_sigint_ends_the_version_and_leaves_nothing(gpu_cluster, project):
    """Ctrl+C twice: the runner cancels its Ray tasks as it closes; the run ends
    interrupted with nothing of it left and no task on the cluster."""
    project.script("a.py", probe({"stuck": {"action": "hang"}, "never": {}}))
    project.configure(["a.py"])
    runner = project.start(*ray_args(gpu_cluster, "-j", "1"))
    wait_for(lambda: (project.root / "started-stuck").exists(), timeout=60, proc=runner, what="the version to start")
    run = placed_run(project, runner)
    runner.send_signal(signal.SIGINT)
    time.sleep(0.3)
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    assert statuses(project) == [("stuck", "interrupted")]
    assert_gone([run["child_pid"], *hung(project, "stuck")["kids"]], "the interrupted version's processes")
    assert_no_version_task(gpu_cluster)


def placed_run(project: Project, runner) -> dict:
    """The first run, once the ledger has its child's pid (the version can start before its runner
    records where it was placed: on a loaded machine, a moment before)."""
    wait_for(lambda: project.runs() and project.runs()[0]["child_pid"], timeout=30, proc=runner,
             what="the run's child pid in the ledger")
    return project.runs()[0]


def start_hanging(cluster: RayCluster, project: Project) -> tuple:
    """A runner (-u) whose first version hangs the first time it runs; its run and
    the pids it must not leave behind (its child and the child's two children)."""
    project.script("a.py", probe({"long": {"action": "hang_once"}, "after": {}}))
    project.configure(["a.py"])
    runner = project.start(*ray_args(cluster, "-j", "1", "-u"))
    wait_for(lambda: (project.root / "started-long").exists(), timeout=60, proc=runner, what="the version to start")
    run = placed_run(project, runner)
    left = [run["child_pid"], *hung(project, "long")["kids"]]
    assert all(pid_alive(pid) for pid in left)
    return runner, left


def test_a_sigkilled_runner_leaves_nothing_after_the_next_start(gpu_cluster, project):
    """SIGKILL of the runner: Ray ends its dead driver's task, whose cleanup ends
    the version's processes; the next start records the run interrupted and
    runs the version again, and nothing of the killed run is left."""
    runner, left = start_hanging(gpu_cluster, project)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)
    again = project.run(*ray_args(gpu_cluster, "-j", "1", "-u"), timeout=120)
    assert again.returncode == 0, again.stderr
    assert statuses(project) == [("long", "interrupted"), ("long", "succeeded"), ("after", "succeeded")]
    assert_gone(left, "the killed runner's version processes")
    assert_no_version_task(gpu_cluster)


def test_the_next_start_ends_what_a_killed_runner_and_its_ray_worker_left(gpu_cluster, project):
    """Runner and worker SIGKILLed at once: the task's own cleanup never runs and
    the version's children outlive both, until the next runner's start sweeps the
    nodes for the project's mark (before it runs anything: only b.py is listed)."""
    runner, left = start_hanging(gpu_cluster, project)
    worker = gpu_cluster.tasks("run_version")
    assert len(worker) == 1, worker
    os.kill(worker[0], signal.SIGSTOP)  # it must not see its driver go
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)
    os.kill(worker[0], signal.SIGKILL)
    assert_gone([left[0]], "the version's child (it dies with its worker)")
    time.sleep(0.5)
    assert all(pid_alive(pid) for pid in left[1:]), "nothing left to sweep: the test proves nothing"
    project.script("b.py", probe({"other": {}}))
    project.configure(["b.py"])
    again = project.run(*ray_args(gpu_cluster, "-j", "1"), timeout=120)
    assert again.returncode == 0, again.stderr
    assert statuses(project) == [("long", "interrupted"), ("other", "succeeded")]
    assert_gone(left, "the killed runner's version processes")
    assert_no_version_task(gpu_cluster)


def test_without_an_address_the_runner_starts_a_ray_of_its_own(gpu_cluster, project):
    """No --ray-address: a local Ray of the runner's own, though ``ray.init()``
    on this machine would find a running cluster (its address file is where
    RAY_TMPDIR points); that Ray ends with the runner."""
    project.script("a.py", probe({"here": {}}))
    project.configure(["a.py"])
    result = project.run("-r", "--backend", "ray", timeout=60, env={"RAY_TMPDIR": gpu_cluster.tmpdir})
    assert result.returncode == 0, result.stderr
    run = project.runs()[0]
    assert run["status"] == "succeeded" and run["node_id"]
    assert run["node_id"] not in gpu_cluster.all_node_ids, "the runner joined a cluster it was not given"
    wait_for(lambda: not gpu_cluster.strangers(), timeout=10, what="the runner's own Ray to end")


def test_declared_resources_become_the_tasks_and_what_no_node_holds_fails_alone(gpu_cluster, project):
    """resources={...} on a version is its Ray task's num_gpus: a 2-GPU version sees both fake GPUs, a
    half-GPU one sees one, and one asking for 4 GPUs of a 2-GPU cluster fails alone in one line."""
    project.script("r.py", probe({"pair": {"action": "sleep", "seconds": 0.3, "resources": {"gpus": 2}},
                                  "half": {"action": "sleep", "seconds": 0.3, "resources": {"gpus": 0.5}},
                                  "huge": {"resources": {"gpus": 4}}}))
    project.configure(["r.py"])
    result = project.run(*ray_args(gpu_cluster), timeout=120)
    assert result.returncode == 1, result.stderr  # huge failed
    runs = {r["version"]: r for r in project.runs()}
    assert runs["pair"]["status"] == runs["half"]["status"] == "succeeded", runs
    seen = {p["name"]: p for p in probes(project)}
    assert sorted(seen["pair"]["cuda"].split(",")) == ["0", "1"] and seen["half"]["cuda"] in ("0", "1"), seen
    error = runs["huge"]["error"]
    assert runs["huge"]["status"] == "failed" and "\n" not in error and "GPU=4" in error \
        and "no node of the Ray cluster has that" in error, error
    assert "huge" not in seen  # it never ran
