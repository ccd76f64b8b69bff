"""The dashboard's JSON API and its event stream against a real server
(``mlpipeline serve`` in a child process) over a ledger made by real runs."""
from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import FIXTURES, Project, wait_for

TOKEN = "api-test-token-0123456789"


class Server:
    def __init__(self, project: Project, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", "serve", "--port", "0", "--token", TOKEN,
                                      *args], cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + self.proc.stderr.read()
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def request(self, method: str, path: str, body=None, headers=None, token: bool = True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {TOKEN}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def json(self, path: str, method: str = "GET", body=None):
        status, data = self.request(method, path, body)
        return status, json.loads(data)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _project(root: Path) -> Project:
    project = Project(root)
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    project.models.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "web" / "curves.py", project.models / "curves.py")
    return project


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("api") / "proj")
    project.write("models.config", "# the queue\n[MLP]\nuse_blacklist = False\n\n[WHITELISTED_MODELS]\n"
                                   "curves.py = slow, fast  # two of three\n\n[BLACKLISTED_MODELS]\n")
    result = project.run("-r", env={"WEB_TEST_SLEEP": "0"})
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture(scope="module")
def server(ran):
    served = Server(ran)
    yield served
    served.stop()


def test_runs_filter_sort_and_page_like_the_cli(server, ran):
    status, body = server.json("/api/runs")
    assert status == 200 and body["total"] == 2 and [r["version"] for r in body["runs"]] == ["fast", "slow"]
    cli = json.loads(ran.run("runs", "--format", "json").stdout)
    assert [r["id"] for r in cli] == [r["id"] for r in body["runs"]]
    _, best = server.json("/api/runs?sort=test/acc&desc=1")
    assert [r["version"] for r in best["runs"]] == ["slow", "fast"]  # acc = 1 - rate/10
    _, page = server.json("/api/runs?limit=1&offset=1")
    assert page["total"] == 2 and [r["version"] for r in page["runs"]] == ["slow"]
    _, found = server.json("/api/runs?q=FAST")
    assert [r["version"] for r in found["runs"]] == ["fast"]
    status, bad = server.json("/api/runs?status=done")
    assert status == 400 and "status" in bad["error"]


def test_a_run_its_curves_log_and_files(server):
    _, runs = server.json("/api/runs?version=slow")
    run_id = runs["runs"][0]["id"]
    status, run = server.json(f"/api/runs/{run_id}")
    assert status == 200 and run["params"]["rate"] == 1.0
    assert {f["path"] for f in run["files"]} >= {"curves.py", "ckpt/weights.txt"}
    assert run["results"]["test"]["text"] == "rate 1.0"
    _, metrics = server.json(f"/api/runs/{run_id}/metrics?max_points=10")
    loss = next(c for c in metrics["curves"] if c["name"] == "loss")
    assert loss["points"] == 50 and loss["decimated"] and len(loss["steps"]) <= 10
    assert loss["steps"][0] == 0 and loss["steps"][-1] == 49
    _, log = server.json(f"/api/runs/{run_id}/log?offset=0")
    assert "trained with rate 1.0" in log["data"] and log["offset"] == log["size"] and not log["running"]
    _, rest = server.json(f"/api/runs/{run_id}/log?offset={log['offset']}")
    assert rest["data"] == ""
    status, data = server.request("GET", f"/api/runs/{run_id}/files/ckpt/weights.txt")
    assert status == 200 and data == b"rate=1.0\n"
    status, data = server.request("GET", f"/api/runs/{run_id}/files.zip")
    import io
    import zipfile
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert status == 200 and any(n.endswith("ckpt/weights.txt") for n in names)
    status, missing = server.json("/api/runs/999")
    assert status == 404 and "999" in missing["error"]


def test_compare_groups_and_status(server):
    status, detail = server.json("/api/compare?script=curves.py&metric=train/loss")
    assert status == 200 and [v["version"] for v in detail["versions"]] == ["slow", "fast"]
    assert "rate" in detail["differing"]
    assert all(len(v["curves"]) == 1 for v in detail["versions"])
    status, state = server.json("/api/status")
    assert status == 200 and state["runner"]["alive"] is False
    listed = {s["script"]: s for s in state["config"]["scripts"]}
    assert listed["curves.py"]["whitelisted"] and listed["curves.py"]["versions"] == ["slow", "fast"]


def test_steering_needs_a_runner_and_says_so(server):
    status, body = server.json("/api/runner/pause", method="POST")
    assert status == 409 and "no runner" in body["error"]


def test_queue_edits_keep_the_comments(server, ran):
    ran.script("other.py", (FIXTURES / "web" / "curves.py").read_text())
    status, body = server.json("/api/queue", "POST", {"action": "whitelist", "script": "other.py"})
    assert status == 200, body
    text = (ran.root / "models.config").read_text()
    assert "# the queue" in text and "# two of three" in text and "other.py" in text
    status, body = server.json("/api/queue", "POST", {"action": "reorder", "order": ["other.py", "curves.py"]})
    assert status == 200
    listed = [s["script"] for s in body["state"]["config"]["scripts"] if s["whitelisted"]]
    assert listed == ["other.py", "curves.py"]
    status, body = server.json("/api/queue", "POST", {"action": "whitelist", "script": "../mlp.config"})
    assert status == 400
    status, body = server.json("/api/queue", "POST", {"action": "unlist", "script": "other.py"})
    assert status == 200 and "other.py" not in (ran.root / "models.config").read_text()


def _events(server: Server, seen: list, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {TOKEN}",
                                                "Host": f"127.0.0.1:{server.port}"})
    response = conn.getresponse()
    event = None
    while not stop.is_set():
        line = response.fp.readline().decode()
        if not line:
            break
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            seen.append((time.monotonic(), event, json.loads(line[5:])))
    conn.close()


def test_live_events_follow_a_real_batch(tmp_path):
    """A page that listens sees the runner start, each run appear and end —
    within a second of the ledger changing — with a server started before any
    ledger existed."""
    project = _project(tmp_path / "proj")
    project.configure(["curves.py"])
    served = Server(project)
    seen: list = []
    stop = threading.Event()
    listener = threading.Thread(target=_events, args=(served, seen, stop), daemon=True)
    try:
        status, body = served.json("/api/runs")
        assert status == 404 and "no runs recorded" in body["error"]
        listener.start()
        wait_for(lambda: any(e[1] == "hello" for e in seen), 10)
        result = project.run("-r", env={"WEB_TEST_SLEEP": "0"})
        assert result.returncode == 0, result.stderr
        ended = {}
        with project.db() as conn:
            for row in conn.execute("SELECT id, ended_at FROM runs"):
                ended[row["id"]] = row["ended_at"]

        def finished() -> bool:
            done = {r["id"] for _, name, data in seen if name == "runs" for r in data["runs"]
                    if r["status"] == "succeeded"}
            return done == set(ended)
        wait_for(finished, 10)
        assert any(name == "queue" and data["runner"] for _, name, data in seen)
    finally:
        stop.set()
        served.stop()
        listener.join(5)


def test_serve_refuses_a_public_host_without_a_token(ran):
    result = ran.run("serve", "--host", "0.0.0.0", "--allow-remote", "--port", "0", timeout=20)
    assert result.returncode == 2 and "--token" in result.stderr


def test_ctrl_c_ends_the_server_with_a_page_listening(ran):
    """An open event stream must not hold a stopping server (a page left open all week)."""
    served = Server(ran)
    seen: list = []
    stop = threading.Event()
    listener = threading.Thread(target=_events, args=(served, seen, stop), daemon=True)
    listener.start()
    wait_for(lambda: any(e[1] == "hello" for e in seen), 10)
    served.proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    code = served.proc.wait(timeout=15)
    took = time.monotonic() - began
    errors = served.proc.stderr.read()
    served.stop()
    stop.set()
    listener.join(5)
    assert code == 0 and took < 5, (code, took)
    assert "Traceback" not in errors and "ERROR" not in errors, errors
    assert not listener.is_alive()  # the stream ended: the page sees the end and reconnects later
