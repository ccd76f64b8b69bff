"""SIGKILL the runner at 20 moments across a batch, restarting it with -r -u
each time: nothing recorded is lost or duplicated, nothing is left running,
the ledger stays intact and no child process outlives its runner."""
from __future__ import annotations

import random
import sqlite3
import time

from reliability_support import integrity, pid_alive, processes_mentioning, tracer, wait_for

SEED = 20240607

# How each of the 20 kills lands. Fault points (mlpipeline.core.faults.fault_point) make the runner SIGKILL itself:
#   fault:planned  right after reading the configs and loading the scripts' versions ("during load")
#   fault:started  after a run was recorded as running, before its child starts ("during a version")
#   fault:record   after a finished version's metrics were written, before its status ("during the ledger write")
# The others are a SIGKILL from outside at a random moment:
#   load     a random 0-0.3 s after starting the runner (imports, lock, ledger, planning)
#   version  a random fraction of the way through the first version this runner starts
#   between  a random 0-50 ms after a version's success is recorded (planning and starting the next)
# Only "between" kills let a version finish, so the batch is never done before the final run
# and every fault point is reached.
PLAN = ["fault:planned"] * 3 + ["fault:started"] * 3 + ["fault:record"] * 3 + ["load"] * 3 + \
       ["version"] * 4 + ["between"] * 4
FAULTS = ("planned", "started", "record")


def spin_rate() -> float:
    """Iterations per second of the tracer's spin loop on this machine."""
    began, total = time.perf_counter(), 0
    for i in range(300_000):
        total += i * i
    return 300_000 / (time.perf_counter() - began)


def make_versions(rng: random.Random) -> dict:
    """Six versions of 0.1-0.5 s each: four sleep, two spin the CPU."""
    versions = {}
    rate = spin_rate()
    for i in range(6):
        seconds = round(rng.uniform(0.1, 0.5), 2)
        if i % 3 == 2:
            versions[f"v{i}"] = {"action": "spin", "iterations": int(seconds * rate), "expect": seconds}
        else:
            versions[f"v{i}"] = {"action": "sleep", "seconds": seconds, "expect": seconds}
    return versions


def ledger_runs(project) -> list:
    """The runs, or none while a starting runner has created the ledger file
    but not yet its tables."""
    try:
        return project.runs()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def new_runs(project, after_id: int) -> list:
    return [r for r in ledger_runs(project) if r["id"] > after_id]


def check_ledger(project, succeeded_before: dict) -> dict:
    """No succeeded run lost (every earlier one still succeeded) or duplicated."""
    runs = project.runs()
    succeeded = {r["id"]: r["version"] for r in runs if r["status"] == "succeeded"}
    lost = {i: v for i, v in succeeded_before.items() if succeeded.get(i) != v}
    assert not lost, f"succeeded runs lost or changed: {lost}; runs: {[(r['id'], r['version'], r['status']) for r in runs]}"
    versions = list(succeeded.values())
    assert len(versions) == len(set(versions)), f"a version succeeded twice: {sorted(versions)}"
    return succeeded


def assert_no_children_left(project, after_id: int) -> None:
    """The children of the runs this runner started are gone within a few
    seconds, and so is any other process working on this project (a child
    killed before its pid reached the ledger, a describe child)."""
    child_pids = [r["child_pid"] for r in new_runs(project, after_id) if r["child_pid"]]
    try:
        wait_for(lambda: not any(pid_alive(pid) for pid in child_pids), timeout=5)
        wait_for(lambda: not processes_mentioning(str(project.root)), timeout=5)
    except AssertionError:
        raise AssertionError(f"left behind after the runner was killed: recorded child pids still alive "
                             f"{[p for p in child_pids if pid_alive(p)]}; processes of this project "
                             f"{processes_mentioning(str(project.root))}") from None


def kill_from_outside(project, how: str, rng: random.Random, versions: dict, last_id: int):
    runner = project.start("-r", "-u")
    alive = lambda: runner.poll() is None  # noqa: E731
    if how == "load":
        moment = rng.uniform(0.0, 0.3)
        time.sleep(moment)
    elif how == "version":
        fraction = rng.uniform(0.0, 0.9)
        run = wait_for(lambda: next((r for r in new_runs(project, last_id) if r["child_pid"]), None)
                       or (not alive() and "exited"), what="a version to start", every=0.01)
        moment = fraction * versions[run["version"]]["expect"] if run != "exited" else 0
        time.sleep(moment)
    else:
        wait_for(lambda: any(r["status"] == "succeeded" for r in new_runs(project, last_id)) or not alive(),
                 what="a version to succeed", every=0.005)
        moment = rng.uniform(0.0, 0.05)
        time.sleep(moment)
    runner.kill()
    return runner, f"{how}:{moment:.3f}"


def test_sigkill_at_random_moments_then_resume(project):
    rng = random.Random(SEED)
    versions = make_versions(rng)
    plan = list(PLAN)
    rng.shuffle(plan)
    project.script("chaos.py", tracer(versions))
    project.configure(["chaos.py"])
    succeeded: dict = {}
    outcomes = []
    for number, how in enumerate(plan, 1):
        last_id = max((r["id"] for r in ledger_runs(project)), default=0)
        if how.startswith("fault:"):
            runner = project.start("-r", "-u", env={"MLPIPELINE_FAULT": how.split(":")[1]})
            label = how
        else:
            runner, label = kill_from_outside(project, how, rng, versions, last_id)
        out, err = runner.communicate(timeout=60)
        outcomes.append((label, runner.returncode))
        assert "Traceback" not in err, err
        assert_no_children_left(project, last_id)
        succeeded = check_ledger(project, succeeded)
        assert integrity(project.outputs / "mlpipeline.db") == "ok", f"after kill {number} ({label})"

    runs = project.runs()
    shown = [(r["id"], r["version"], r["status"]) for r in runs]
    assert all(code == -9 for _, code in outcomes), (outcomes, shown)  # every kill hit a live runner
    assert len(succeeded) < len(versions), (outcomes, shown)          # ... before the batch was done
    assert any(r["status"] == "interrupted" and r["child_pid"] for r in runs), shown  # some killed mid-version

    final = project.run("-r", "-u")
    assert final.returncode == 0, final.stderr[-3000:]
    succeeded = check_ledger(project, succeeded)
    runs = project.runs()
    assert sorted(succeeded.values()) == sorted(versions), [(r["version"], r["status"]) for r in runs]
    for run in runs:
        assert run["status"] in ("succeeded", "interrupted", "failed"), (run["id"], run["version"], run["status"])
        if run["status"] != "succeeded":
            assert run["ended_at"] is not None and run["error"], dict(run)
    assert integrity(project.outputs / "mlpipeline.db") == "ok"
    assert_no_children_left(project, 0)
    print("kills:", outcomes)
    print("\n".join(str((r["id"], r["version"], r["status"], r["child_pid"])) for r in runs))


def test_restart_right_after_a_kill_does_not_overlap_the_orphaned_child(project):
    """A runner killed mid-version and restarted at once (a supervisor's
    restart, a user's up-arrow) must not start the version again while the
    killed runner's child is still training it into the same model dir."""
    project.script("a.py", tracer({"long": {"action": "sleep", "seconds": 3}}))
    project.configure(["a.py"])
    runner = project.start("-r", "-u")
    first = wait_for(lambda: next((r for r in ledger_runs(project) if r["child_pid"]), None),
                     what="the version's child to start", every=0.01)
    time.sleep(0.3)  # the child is training now
    runner.kill()
    runner.communicate(timeout=30)
    again = project.start("-r", "-u")
    second = wait_for(lambda: next((r for r in new_runs(project, first["id"]) if r["child_pid"]), None)
                      or (again.poll() is not None and "exited"), what="the version to start again", every=0.005)
    overlapped = pid_alive(first["child_pid"])
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err[-2000:]
    assert second != "exited"
    assert not overlapped, (f"run {second['id']} started child {second['child_pid']} while child "
                            f"{first['child_pid']} of the killed runner's run {first['id']} was still running "
                            f"the same version in the same model dir")
