"""A shared GPU box, end to end: a real runner and real versions, with a fake ``pynvml`` first on the path
(NVML is the one thing that cannot run here) saying what the GPUs hold. A GPU another user's process fills
is never handed out, two half-GPU versions share one GPU at once, a 2-GPU version gets two ids, a version
asking for more than there is fails alone in one line, and why a version waits shows in ``status`` and on
the queue page."""
from __future__ import annotations

import http.cookiejar
import json
import urllib.request
from pathlib import Path

from conftest import Server
from helpers import FIXTURES, tracer, wait_for

GIB = 1 << 30


def _nvml(path: Path, foreign: list) -> None:
    path.write_text(json.dumps({"gpus": [
        {"uuid": "GPU-aaaa", "name": "Fake A100", "total": 40 * GIB, "util": 10, "processes": []},
        {"uuid": "GPU-bbbb", "name": "Fake A100", "total": 40 * GIB, "util": 90, "processes": foreign}]}))


def _page(server: Server, path: str) -> str:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(server.entry(path), timeout=30) as response:
        return response.read().decode()


def test_gpus_are_packed_around_another_users_job_and_waiting_says_why(project, tmp_path):
    state = tmp_path / "nvml.json"
    _nvml(state, [[1, 5 * GIB]])  # pid 1, not one of ours, holds 5 GiB of GPU 1
    project.script("gpu.py", tracer({
        "half1": {"action": "wait", "resources": {"gpus": 0.5}},
        "half2": {"action": "wait", "resources": {"gpus": 0.5}},
        "pair": {"resources": {"gpus": 2}},
        "huge": {"resources": {"gpus": 4}},
    }))
    project.configure(["gpu.py"])
    env = {"PYTHONPATH": str(FIXTURES / "fake_nvml"), "MLP_FAKE_NVML": str(state)}
    runner = project.start("-r", "-j", "4", env=env)
    server = None
    try:
        wait_for(lambda: (project.root / "started-half1").exists() and (project.root / "started-half2").exists(),
                 timeout=60, proc=runner, what="both half-GPU versions running at once")
        assert (project.root / "env-half1").read_text() == (project.root / "env-half2").read_text() == "0"

        def pair_waits():
            status = project.run("status", env=env).stdout
            return status if "waits for 2 GPUs" in status else None
        status = wait_for(pair_waits, timeout=30, proc=runner, what="status to say why pair waits")
        assert "GPU 1 is busy: pid 1 (" in status and "holds 5 GiB" in status, status
        server = Server(project, tmp_path)
        page = _page(server, "/queue")
        assert "waits for 2 GPUs" in page and "GPU 1 is busy: pid 1" in page
        queue = server.api("/api/status")["queue"]
        assert any("waits for 2 GPUs" in (q["reason"] or "") for q in queue if q["version"] == "pair"), queue

        _nvml(state, [])  # the other user's job ended
        (project.root / "go").touch()
        out, err = runner.communicate(timeout=90)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        if server is not None:
            server.stop()
    assert runner.returncode == 1, err  # huge failed
    runs = {r["version"]: r for r in project.runs()}
    assert {v: runs[v]["status"] for v in runs} == {"half1": "succeeded", "half2": "succeeded",
                                                     "pair": "succeeded", "huge": "failed"}
    assert runs["half1"]["gpu"] == runs["half2"]["gpu"] == "0" and runs["half1"]["gpu_uuids"] == "GPU-aaaa"
    assert runs["pair"]["gpu"] == "0,1" and runs["pair"]["gpu_uuids"] == "GPU-aaaa,GPU-bbbb"
    assert (project.root / "env-pair").read_text() == "0,1"
    assert json.loads(runs["half1"]["resources"]) == {"gpus": 0.5}
    error = runs["huge"]["error"]
    assert "\n" not in error and "asks for 4 GPUs; the GPUs this runner may use: 2 (GPU 0, GPU 1)" in error, error
    assert not (project.root / "env-huge").exists()  # it never ran
    # the 2-GPU version needed GPU 0 whole: it started only once both halves had given it back
    assert runs["pair"]["started_at"] >= max(runs["half1"]["ended_at"], runs["half2"]["ended_at"])
