"""--backend slurm against a real one-node Slurm: each version one job, the queue kept by the runner,
GPUs from Slurm's gres, cancel and timeouts through scancel, a dead runner's jobs adopted by the next
one, a node set DOWN read as node_lost and retried, and the dashboard showing job and node."""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List


TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers import Project, wait_for  # noqa: E402

JOB = """
import argparse, os, time
from mlpipeline import log_metric

parser = argparse.ArgumentParser()
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()
print("visible", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
for step in range(args.steps):
    log_metric("loss", 1.0 / (step + 1), step=step)
    time.sleep(args.sleep / args.steps)
print("done", flush=True)
"""


def make_project(tmp_path: Path, versions: Dict[str, str], extra_config: str = "") -> Project:
    proj = Project(tmp_path / "proj")
    proj.write("mlp.config", f"[MLP]\nmodels_dir = models\nbackend = slurm\n\n[SLURM]\npoll = 0.5\n{extra_config}")
    proj.script("job.py", JOB)
    lines = "\n".join(f"{name} = {args}" for name, args in versions.items())
    for name in ("models.config", "models_test.config"):
        proj.write(name, f"[MLP]\nuse_blacklist = False\n\n[WHITELISTED_MODELS]\njob.py\n\n[job.py]\n{lines}\n")
    return proj


def env(slurm) -> Dict[str, str]:
    return {**slurm.env, "PYTHONUNBUFFERED": "1"}


def live_jobs(slurm) -> List[str]:
    """Jobs Slurm still has pending or running (or completing)."""
    return [line for line in slurm.run("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i|%T").split() if line]


def marked(uid: str) -> List[int]:
    """Processes on this node carrying the run's mark (a version's child and anything it started)."""
    found = []
    needle = f"MLPIPELINE_RUN={uid}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_versions_get_distinct_gpus_and_a_third_waits(slurm, tmp_path):
    proj = make_project(tmp_path, {"a": "--sleep 3", "b": "--sleep 3", "c": "--sleep 1"})
    done = proj.run("-r", "-u", "--backend", "slurm", "--gpus-per-version", "1", env=env(slurm), timeout=120)
    assert done.returncode == 0, done.stderr
    runs = {r["version"]: r for r in proj.runs()}
    assert {r["status"] for r in runs.values()} == {"succeeded"}
    assert {runs["a"]["gpu"], runs["b"]["gpu"]} == {"0", "1"}
    assert all(r["slurm_job_id"] and r["node"] == slurm.node for r in runs.values())
    # a and b ran side by side; c waited for one of them to end
    assert runs["b"]["started_at"] < runs["a"]["ended_at"]
    assert runs["c"]["started_at"] >= min(runs["a"]["ended_at"], runs["b"]["ended_at"]) - 0.5
    assert "visible 0" in (Path(runs["a"]["run_dir"]) / "output.log").read_text() + \
        (Path(runs["b"]["run_dir"]) / "output.log").read_text()
    with proj.db() as conn:
        points = conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'loss'").fetchone()[0]
    assert points == 9  # three steps each, none lost, none twice
    again = proj.run("-r", "-u", env=env(slurm), timeout=60)  # -u skips as locally
    assert again.returncode == 0 and "nothing to run" in again.stderr
    assert len(proj.runs()) == 3
    assert not live_jobs(slurm)


def test_cancel_and_timeout_leave_no_job_and_no_process(slurm, tmp_path):
    proj = make_project(tmp_path, {"long": "--sleep 60 --steps 60", "slow": "--sleep 60 --steps 60"})
    runner = proj.start("-r", "--version", "long", "--timeout", "4", env=env(slurm))
    out, err = runner.communicate(timeout=90)
    (timed,) = proj.runs(version="long")
    assert timed["status"] == "timeout", err
    wait_for(lambda: not live_jobs(slurm), timeout=20, what="the timed-out job to leave squeue")
    wait_for(lambda: not marked(timed["uid"]), timeout=10, what="the timed-out version's processes to end")

    runner = proj.start("-r", "--version", "slow", env=env(slurm))
    run = wait_for(lambda: [r for r in proj.runs(version="slow") if r["child_pid"]], proc=runner, timeout=60,
                   what="the version to start on its node")[0]
    assert marked(run["uid"])  # it runs here, marked
    cancel = proj.run("cancel", str(run["id"]), env=env(slurm))
    assert cancel.returncode == 0, cancel.stderr
    out, err = runner.communicate(timeout=60)
    (ended,) = proj.runs(version="slow")
    assert ended["status"] == "cancelled", err
    wait_for(lambda: not live_jobs(slurm), timeout=20, what="the cancelled job to leave squeue")
    wait_for(lambda: not marked(run["uid"]), timeout=10, what="the cancelled version's processes to end")

    runner = proj.start("-r", "--version", "long", env=env(slurm))  # Ctrl+C twice: scancel, then exit
    run = wait_for(lambda: [r for r in proj.runs(version="long")[1:] if r["child_pid"]], proc=runner, timeout=60,
                   what="the version to start again")[0]
    runner.send_signal(signal.SIGINT)
    time.sleep(0.5)
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode != 0
    assert proj.runs(version="long")[-1]["status"] == "interrupted", err
    wait_for(lambda: not live_jobs(slurm), timeout=20, what="the interrupted job to leave squeue")
    wait_for(lambda: not marked(run["uid"]), timeout=10, what="the interrupted version's processes to end")


def test_a_killed_runner_leaves_its_job_running_and_the_next_adopts_it(slurm, tmp_path):
    proj = make_project(tmp_path, {"adopted": "--sleep 8 --steps 8"})
    runner = proj.start("-r", env=env(slurm))
    wait_for(lambda: any(r["child_pid"] for r in proj.runs()), proc=runner, timeout=60, what="the job to start")
    time.sleep(1.5)  # some points recorded by this runner
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)
    (run,) = proj.runs()
    assert live_jobs(slurm)  # the job goes on without its runner
    shown = proj.run("runs", env=env(slurm))
    assert "running (detached)" in shown.stdout
    status = proj.run("status", env=env(slurm))  # the README's command: the job, its node and its id
    assert "running (detached)" in status.stdout and run["slurm_job_id"] in status.stdout, status.stdout
    adopter = proj.run("-r", "-u", env=env(slurm), timeout=90)
    assert adopter.returncode == 0, adopter.stderr
    assert "adopted run" in adopter.stderr
    (done,) = proj.runs()
    assert done["id"] == run["id"] and done["status"] == "succeeded"
    with proj.db() as conn:
        steps = [r[0] for r in conn.execute("SELECT step FROM metrics WHERE name = 'loss' ORDER BY step")]
    assert steps == list(range(8))  # every point once: none lost with the runner, none twice
    assert not live_jobs(slurm)


def test_a_node_set_down_is_node_lost_and_the_version_is_retried(slurm, tmp_path):
    proj = make_project(tmp_path, {"fragile": "--sleep 6 --steps 6"})
    runner = proj.start("-r", "--retry-delay", "1", env=env(slurm))
    wait_for(lambda: any(r["child_pid"] for r in proj.runs()), proc=runner, timeout=60, what="the job to start")
    slurm.set_node("DOWN")
    try:
        wait_for(lambda: any(r["status"] == "interrupted" for r in proj.runs()), proc=runner, timeout=60,
                 what="the run on the lost node to end")
    finally:
        slurm.set_node("RESUME")
    out, err = runner.communicate(timeout=120)
    first, second = proj.runs()
    assert first["status"] == "interrupted" and first["reason"] == "node_lost", first
    assert second["status"] == "succeeded" and second["retry_of"] == first["id"] and second["attempt"] == 2
    assert second["model_dir"] == first["model_dir"]  # the retry resumes in the same model dir
    assert runner.returncode == 0, err


def test_a_config_edit_mid_batch_changes_what_is_submitted_next(slurm, tmp_path):
    proj = make_project(tmp_path, {"first": "--sleep 4", "second": "--sleep 0", "third": "--sleep 0"})
    runner = proj.start("-r", "-j", "1", env=env(slurm))
    wait_for(lambda: proj.runs(version="first"), proc=runner, timeout=60, what="the first version's job")
    proj.write("models.config", "[MLP]\nuse_blacklist = False\n\n[WHITELISTED_MODELS]\njob.py\n\n"
                                "[job.py]\nfirst = --sleep 4\nthird = --sleep 0\n")
    out, err = runner.communicate(timeout=90)
    assert runner.returncode == 0, err
    assert [r["version"] for r in proj.runs()] == ["first", "third"]


def test_the_dashboard_shows_the_job_id_and_node(slurm, tmp_path):
    proj = make_project(tmp_path, {"shown": "--sleep 0"})
    assert proj.run("-r", env=env(slurm)).returncode == 0
    (run,) = proj.runs()
    server = proj.start("serve", "--port", "0", env={**env(slurm), "MLPIPELINE_TOKEN": "slurm-test-token"})
    try:
        base = wait_for(lambda: _url(server), timeout=30, what="the dashboard to listen")

        def get(path: str) -> str:
            request = urllib.request.Request(base + path, headers={"Authorization": "Bearer slurm-test-token"})
            return urllib.request.urlopen(request, timeout=10).read().decode()

        page = get(f"/runs/{run['id']}")
        assert "slurm_job_id" in page and f">{run['slurm_job_id']}<" in page and slurm.node in page
        record = json.loads(get(f"/api/runs/{run['id']}"))
        record = record.get("run", record)
        assert record["slurm_job_id"] == run["slurm_job_id"] and record["node"] == slurm.node
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=20)


def _url(server) -> str:
    import select

    ready, _, _ = select.select([server.stderr, server.stdout], [], [], 0.2)
    for stream in ready:
        match = re.search(r"(http://127\.0\.0\.1:\d+)", stream.readline())
        if match:
            return match.group(1)
    return ""


def test_timeout_and_stall_count_from_the_start_on_the_node_not_the_wait_in_slurms_queue(slurm, tmp_path):
    proj = make_project(tmp_path, {"patient": "--sleep 2 --steps 2"})
    blocker = slurm.run("sbatch", "--parsable", "-c", "2", "-o", "/dev/null", "--wrap", "sleep 8").strip()
    try:
        runner = proj.start("-r", "--timeout", "6", "--stall-timeout", "6", env=env(slurm))
        try:
            wait_for(lambda: proj.runs() and proj.runs()[0]["slurm_job_id"], timeout=30, proc=runner,
                     what="the job's submission")
            status = proj.run("status", env=env(slurm))  # while the blocker holds the node's cpus
        finally:
            out, err = runner.communicate(timeout=90)
    finally:
        slurm.run("scancel", blocker)
    (run,) = proj.runs()
    assert runner.returncode == 0 and run["status"] == "succeeded", err  # it waited ~8 s, ran ~2 s
    # Slurm's reason for the wait: Priority until its scheduler has looked, then Resources
    assert status.returncode == 0 and re.search(r"pending in Slurm \((Resources|Priority)\)", status.stdout), \
        status.stdout
