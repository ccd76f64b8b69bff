"""Dashboard defects found from outside (issue 18): uploads whose checks held every worker
thread (B7), run ids past SQLite's range (B9), a pruned run under a red "Error", and the
queue page without a runner. A real ``mlpipeline serve`` over real runs."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from helpers import Project
from test_api import Server

QUICK = '''\
import os, time
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

class D(DataLoader):
    def get_train_input(self, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class M(Model):
    def train_model(self, input_fn, steps):
        for step in range(1, 4):
            self.log_metric("loss", 1.0 / step + self.get_current_version()["x"], step=step)
            time.sleep(0.3)
    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}

def propose(history):
    return {"x": len(history) + len(history.running)}

def stop(version, step, history):
    return version["params"]["x"] >= 1

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("plain", x=0)
versions.add_version("later", x=0)
versions.add_search(propose, budget=2, name="s", stopper=stop)
MODEL = M(versions)
'''

SLOW_AT_IMPORT = '''\
import time
time.sleep(8)  # a framework import, a dataset download...
from mlpipeline.helper import Model
from mlpipeline.utils import Versions
versions = Versions(None, 1, 1)
versions.add_version("v")
MODEL = Model(versions)
'''


def _project(root: Path) -> Project:
    project = Project(root)
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    project.script("q.py", QUICK)
    project.configure(["q.py"])
    return project


def test_slow_upload_checks_leave_pages_and_reads_responsive(tmp_path: Path):
    project = _project(tmp_path / "proj")
    server = Server(project)
    threads = []
    try:
        def upload(i: int) -> None:
            try:
                server.request("POST", f"/api/scripts?name=slow{i}.py", body=SLOW_AT_IMPORT.encode())
            except OSError:
                pass  # the server stopped before it answered: fine here

        for i in range(42):  # more than the thread pool's 40 workers
            thread = threading.Thread(target=upload, args=(i,), daemon=True)
            thread.start()
            threads.append(thread)
        time.sleep(2.0)  # every upload is in by now: a check holds a thread for 8 s
        started = time.monotonic()
        status, body = server.json("/api/runs?limit=1")
        took = time.monotonic() - started
        assert status == 404 or status == 200, body
        assert took < 3.0, f"a read waited {took:.1f} s behind slow upload checks"
        started = time.monotonic()
        page, _ = server.request("GET", "/queue")
        assert page == 200 and time.monotonic() - started < 3.0
    finally:
        server.stop()
        for thread in threads:
            thread.join(15)


def test_run_ids_past_sqlites_range_are_not_found(tmp_path: Path):
    project = _project(tmp_path / "proj")
    assert project.run("-r", "--version", "plain").returncode == 0
    server = Server(project)
    try:
        for path in ("/api/runs/99999999999999999999999", "/runs/99999999999999999999", "/api/runs/9223372036854775808",
                     "/api/runs/99999999999999999999999/metrics"):
            status, body = server.request("GET", path)
            assert status == 404, (path, status, body[:200])
    finally:
        server.stop()
    shown = project.run("show", "99999999999999999999999")
    assert shown.returncode == 2 and "not found" in shown.stderr and "internal error" not in shown.stderr


def test_a_pruned_run_reads_as_stopped_not_as_an_error_and_the_queue_shows_the_plan(tmp_path: Path):
    project = _project(tmp_path / "proj")
    server = Server(project)
    try:
        status, state = server.json("/api/status")  # nothing ever loaded the script: the queue says so
        assert status == 200 and state["preview"]
        assert [(q["script"], q["version"], q["reason"]) for q in state["queue"]] == [
            ("models/q.py", None, "not loaded yet: its versions are learnt when a runner starts")]
        assert project.run("-r", "--version", "plain").returncode == 0
        status, state = server.json("/api/status")
        assert [(q["version"], q["state"]) for q in state["queue"]] == [("plain", "skipped"), ("later", "queued"),
                                                                        ("s", "queued")]
        assert state["queue"][2]["reason"] == "search: 0 of 2 points tried, up to 1 at a time"
        page, html = server.request("GET", "/queue")
        assert page == 200 and b"would run now" in html and b"no runner: nothing queued" not in html
        done = project.run("-r", timeout=180)
        assert done.returncode == 0, done.stderr
        pruned = next(r for r in project.runs() if r["status"] == "pruned")
        page, html = server.request("GET", f"/runs/{pruned['id']}")
        assert page == 200 and b"Why it stopped" in html and b"<h2>Error</h2>" not in html
        page, html = server.request("GET", "/")
        assert page == 200 and b'class="reason-cell"' in html
        status, state = server.json("/api/status")
        assert [(q["version"], q["state"]) for q in state["queue"]] == [("plain", "skipped"), ("later", "skipped"),
                                                                        ("s", "skipped")]
        assert state["queue"][2]["reason"] == "search: its budget of 2 points is spent (-u)"
    finally:
        server.stop()
