"""The dashboard left open for a week: the project's ledger deleted and made
again under it, a ledger it cannot read, and a run whose log is 100 MB. Real
``mlpipeline serve`` processes over ledgers written by real runners; the log in
a real browser.
"""
from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

from conftest import Server
from helpers import Project, wait_for

SCRIPT = '''
import os, sys
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

class Data(DataLoader):
    def get_train_input(self, mode=None, **kw): return lambda: [1]
    def get_test_input(self, **kw): return lambda: [1]
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class Talker(Model):
    def train_model(self, input_fn, steps):
        line = ("%07d " + "y" * 91 + "\\n").encode()
        for mb in range(int(os.environ.get("TALK_MB", "0"))):
            sys.stdout.buffer.write(b"".join(line % (mb * 10000 + i) for i in range(10000)))
        sys.stdout.write("the last line\\n")
    def evaluate_model(self, input_fn, steps): return {"score": 1.0}

versions = Versions(Data(), batch_size=1, epoc_count=1)
versions.add_version("v")
MODEL = Talker(versions)
'''


def project_at(root: Path) -> Project:
    project = Project(root)
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    project.script("talk.py", SCRIPT)
    project.configure(["talk.py"])
    return project


def run_once(project: Project, talk_mb: int = 0) -> None:
    result = project.run("-r", env={"TALK_MB": str(talk_mb)}, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


def listen(server: Server, seen: List[tuple], stop: threading.Event) -> None:
    """Every (event, data) the server's event stream sends, until ``stop``."""
    conn = http.client.HTTPConnection(server.base.split("//")[1], timeout=30)
    conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {server.token}"})
    response = conn.getresponse()
    event = None
    while not stop.is_set():
        line = response.fp.readline().decode()
        if not line:
            break
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            seen.append((event, json.loads(line[5:])))
    conn.close()


def test_a_ledger_deleted_and_made_again_is_the_one_shown(tmp_path):
    """``rm -rf outputs`` and new runs while the dashboard stays up: the API and
    the event stream follow the new ledger (pooled connections to the deleted
    file would show its runs for good, and new runs with old ids never appear)."""
    project = project_at(tmp_path / "proj")
    server = Server(project, tmp_path)
    seen: List[tuple] = []
    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(server, seen, stop), daemon=True)
    try:
        listener.start()
        wait_for(lambda: any(name == "hello" for name, _ in seen), 10, what="the event stream to open")
        run_once(project)
        assert [r["uid"] for r in server.api("/api/runs")["runs"]] == [r["uid"] for r in project.runs()]
        # the stream watches the first ledger before it goes (on a loaded machine its first look can come late)
        wait_for(lambda: any(name == "runs" for name, _ in seen), 20, what="the stream to show the first run")
        shutil.rmtree(project.outputs)
        run_once(project)
        run_once(project)
        fresh = project.runs()
        assert len(fresh) == 2
        assert [r["uid"] for r in server.api("/api/runs")["runs"]] == [r["uid"] for r in reversed(fresh)]
        assert server.api(f"/api/runs/{fresh[0]['id']}")["uid"] == fresh[0]["uid"]
        ended = lambda: {r["id"] for name, data in seen if name == "runs"  # noqa: E731
                         for r in data["runs"] if r["status"] == "succeeded"} >= {1, 2}
        wait_for(lambda: ended() and any(name == "reload" for name, _ in seen), 20,
                 what="the stream to say the ledger changed and to send the new ledger's runs")
        second = [data for name, data in seen if name == "runs" and any(r["id"] == 2 for r in data["runs"])]
        assert second, seen
    finally:
        stop.set()
        server.stop()
        listener.join(5)


def test_an_unreadable_ledger_is_reported_once_not_five_times_a_second(tmp_path):
    project = project_at(tmp_path / "proj")
    project.outputs.mkdir(parents=True)
    (project.outputs / "mlpipeline.db").write_text("not a ledger\n")
    server = Server(project, tmp_path)
    try:
        request_error = None
        try:
            server.api("/api/runs")
        except Exception as exc:  # noqa: BLE001 - urllib raises on the error status
            request_error = exc.read().decode()  # type: ignore[attr-defined]
        assert request_error and "not a usable SQLite ledger" in request_error
        time.sleep(2)  # ten looks of the event watcher
    finally:
        server.stop()
    said = server.err.read_text()
    assert said.count("reading the ledger for live updates failed") == 1 and "Traceback" not in said, said


@pytest.mark.browser
def test_a_100_mb_log_leaves_the_run_page_responsive(tmp_path, page: Any):
    """The page shows the log's last 2 MiB with a note naming the CLI for the
    rest, instead of appending 100 one-MiB reads to one element (the tab froze)."""
    project = project_at(tmp_path / "proj")
    run_once(project, talk_mb=100)
    server = Server(project, tmp_path)
    try:
        page.goto(server.entry("/runs/1"))
        log = page.locator("#log")
        log.filter(has_text="the last line").wait_for(timeout=20_000)
        started = time.monotonic()
        assert page.evaluate("1 + 1") == 2
        assert time.monotonic() - started < 1.0
        text = log.text_content() or ""
        assert text.startswith("(the log's first ") and "mlpipeline logs 1 prints it all" in text.splitlines()[0]
        assert len(text) < 2.2 * 2**20
        assert "the last line" in text and text.rstrip().endswith("eval on test set: score: 1.0000")
    finally:
        server.stop()
