"""Notifications (issue 22) against real receivers on 127.0.0.1, inside the test: an HTTP server that takes
apprise's json:// and form:// posts (or answers 500, or hangs), an SMTP server (aiosmtpd) that takes
mailto://, and a port nobody listens on. Batches are real ``mlpipeline -r`` runs; a runner that dies is a
real SIGKILL, noticed by a real ``mlpipeline serve`` or by the next runner."""
from __future__ import annotations

import email
import email.policy
import http.server
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import parse_qs

import pytest

from helpers import tracer, wait_for
from mlpipeline.core.layout import NotifySettings
from mlpipeline.core.lifecycle import OOM, Outcome, RunStatus
from mlpipeline.core.vocabulary import NotifyEvent
from mlpipeline.plan.config import find_project, split_urls
from mlpipeline.run.notify import best_metrics, mask, outcome_events, scrub

SECRET = "s3cretpass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """An HTTP server in a thread: keeps what apprise posts (``ok``), answers 500 (``500``) or holds each
    post for 30 s (``hang``)."""

    def __init__(self, mode: str = "ok"):
        self.mode, self.posts, self.release = mode, [], threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                kind = self.headers.get("Content-Type", "")
                fields = json.loads(data) if "json" in kind else {k: v[0] for k, v in parse_qs(data).items()}
                receiver.posts.append({"path": self.path, "kind": kind, **fields})
                if receiver.mode == "hang":
                    receiver.release.wait(30)
                self.send_response(500 if receiver.mode == "500" else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except OSError:  # the sender gave up on a hanging answer
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-receiver", daemon=True)
        self.thread.start()

    def url(self, scheme: str = "json", path: str = "hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def titled(self, pattern: str) -> List[dict]:
        return [post for post in self.posts if re.search(pattern, post.get("title", ""))]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Mailbox:
    """An SMTP server (aiosmtpd) that takes user/SECRET over plain SMTP and keeps each mail's subject and text."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self.mails: List[Dict[str, str]] = []
        mails = self.mails

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                mails.append({"subject": str(message["subject"]), "to": ",".join(envelope.rcpt_tos),
                              "text": message.get_body(("plain",)).get_content()})
                return "250 OK"

        def login(server, session, envelope, mechanism, auth):
            return AuthResult(success=auth.login == b"user" and auth.password == SECRET.encode())

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=login,
                                     auth_require_tls=False)
        self.controller.start()

    def url(self) -> str:
        return f"mailto://user:{SECRET}@127.0.0.1:{self.port}?to=lab@example.org&from=mlp@example.org&mode=insecure"

    def subjects(self, pattern: str) -> List[dict]:
        return [mail for mail in self.mails if re.search(pattern, mail["subject"])]

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def receivers():
    made: list = []

    def make(kind: str = "ok"):
        made.append(Mailbox() if kind == "smtp" else Receiver(kind))
        return made[-1]
    yield make
    for thing in made:
        thing.close()


def notify_config(project, urls: List[str], on: str = "", extra: str = "") -> None:
    text = "[MLP]\nmodels_dir = models\n\n[NOTIFY]\nurls = " + "\n    ".join(urls) + "\n"
    project.write("mlp.config", text + (f"on = {on}\n" if on else "") + extra)


def fields(text: str) -> Dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)


# -- the pieces -------------------------------------------------------------------------------------------------

def test_urls_are_masked_and_split_as_apprise_writes_them():
    assert mask("json://127.0.0.1:8123/hook?token=abc") == "json://127.0.0.1:8123/…"
    assert mask("slack://TokenA/TokenB/TokenC/#channel") == "slack://…"
    assert mask(f"mailto://user:{SECRET}@smtp.example.org?to=a@b.org") == "mailto://smtp.example.org/…"
    assert mask("tgram://123456:ABCdef/42") == "tgram://…" and mask("not a url") == "…"
    assert SECRET not in scrub(f"login failed for user:{SECRET}@host", f"mailto://user:{SECRET}@host")
    assert split_urls("json://a/b, form://c/d\nmailto://u@h?to=a@x.org,b@x.org slack://A/B/C/#chan") == \
        ["json://a/b", "form://c/d", "mailto://u@h?to=a@x.org,b@x.org", "slack://A/B/C/#chan"]
    assert SECRET not in repr(NotifySettings((f"mailto://u:{SECRET}@h",), frozenset()))


def test_how_a_run_ended_is_told_and_its_best_metrics_read_from_its_summaries():
    assert outcome_events(Outcome(RunStatus.FAILED, reason=OOM)) == {NotifyEvent.FAILED, NotifyEvent.OOM}
    assert outcome_events(Outcome(RunStatus.TIMEOUT)) == {NotifyEvent.FAILED}
    assert outcome_events(Outcome(RunStatus.STALLED, reason="stalled")) == {NotifyEvent.STALLED}
    assert outcome_events(Outcome(RunStatus.SUCCEEDED)) == {NotifyEvent.SUCCEEDED}
    assert outcome_events(Outcome(RunStatus.CANCELLED)) == outcome_events(Outcome(RunStatus.PRUNED)) == set()
    row = {"split": "val", "name": "loss", "has_final": 0, "final": None, "count": 3, "min": 0.25, "max": 0.9,
           "last": 0.3}
    assert best_metrics([row, {**row, "name": "acc", "max": 0.8, "last": 0.7},
                         {**row, "split": "sys", "name": "rss_mb"}]) == \
        "val/loss best 0.25 (min, last 0.3); val/acc best 0.8 (max, last 0.7)"


def test_the_notify_section_is_read_with_warnings_for_typos_and_a_file_others_can_read(project):
    notify_config(project, ["json://127.0.0.1:1/a", "form://127.0.0.1:1/b"], on="failed, faild, batch_done",
                  extra="dashboard_url = http://gpu-box:8765/\ncolour = red\n")
    os.chmod(project.root / "mlp.config", 0o644)
    found = find_project(str(project.root))
    assert found.notify is not None and found.notify.urls == ("json://127.0.0.1:1/a", "form://127.0.0.1:1/b")
    assert found.notify.on == {"failed", "batch_done"} and found.notify.dashboard_url == "http://gpu-box:8765"
    said = "\n".join(found.warnings)
    assert "unknown event 'faild'" in said and "unknown key 'colour'" in said and "chmod 600 mlp.config" in said
    os.chmod(project.root / "mlp.config", 0o600)
    assert not any("chmod" in w for w in find_project(str(project.root)).warnings)
    notify_config(project, ["json://127.0.0.1:1/a"])
    assert find_project(str(project.root)).notify.on == {"failed", "oom", "stalled", "batch_done", "runner_died"}


# -- a batch, its receivers, and receivers that do not answer -----------------------------------------------------

def test_a_failing_version_and_the_batch_end_reach_the_http_and_smtp_receivers(project, receivers):
    http, mailbox = receivers("ok"), receivers("smtp")
    project.script("t.py", tracer({"bad": {"action": "raise"}, "good": {"action": "ok"}}))
    project.configure(["t.py"])
    notify_config(project, [http.url("json"), http.url("form", "form"), mailbox.url()],
                  on="failed, succeeded, batch_done", extra="dashboard_url = http://gpu-box:8765\n")
    result = project.run("-r")
    assert result.returncode == 1, result.stderr
    runs = {r["version"]: r["id"] for r in project.runs()}
    assert "chmod 600 mlp.config" in result.stderr and SECRET not in result.stderr + result.stdout
    wait_for(lambda: len(http.posts) >= 6 and len(mailbox.mails) >= 3, timeout=10, what="three messages each")
    for post in http.posts:  # json:// and form:// alike
        assert post["path"] in ("/hook", "/form") and {"title", "message"} <= set(post)
    failed = http.titled(r"^mlpipeline: models/t\.py bad failed$")
    assert len(failed) == 2  # once as JSON, once as a form
    sent = fields(failed[0]["message"])
    assert sent["project"] == "proj" and sent["script"] == "models/t.py" and sent["version"] == "bad"
    assert sent["run"] == str(runs["bad"]) and sent["status"] == "failed" and re.match(r"\d+:\d\d$", sent["duration"])
    assert sent["error"] == "ValueError: version bad failed on purpose"
    assert sent["link"] == f"http://gpu-box:8765/runs/{runs['bad']}"
    good = fields(http.titled(r"good succeeded$")[0]["message"])
    assert "score=" in good["best so far"]  # what evaluate_model returned, from the run's metric summary
    done = http.titled(r"^mlpipeline: proj: batch done: ")
    assert len(done) == 2 and "1 failed" in done[0]["title"] and "1 succeeded" in done[0]["title"]
    assert "models/t.py bad (run" in fields(done[0]["message"])["failures"]
    mail = mailbox.subjects(r"^mlpipeline: models/t\.py bad failed$")
    assert len(mail) == 1 and mail[0]["to"] == "lab@example.org"
    assert fields(mail[0]["text"])["error"] == "ValueError: version bad failed on purpose"
    assert mailbox.subjects(r"batch done: .*1 failed")


def _wall(project, *args: str) -> float:
    began = time.monotonic()
    result = project.run("-r", *args)
    assert result.returncode == 1, result.stderr
    return time.monotonic() - began


def test_receivers_that_refuse_fail_or_hang_do_not_slow_the_batch(project, receivers):
    failing, hanging = receivers("500"), receivers("hang")
    closed = f"json://127.0.0.1:{free_port()}/nobody"
    project.script("t.py", tracer({"bad": {"action": "raise"}, "slow": {"action": "sleep", "seconds": 1.5}}))
    project.configure(["t.py"])
    plain, told, stderr = [], [], ""
    for _ in range(2):  # the lower of two each: a 2-core machine is noisy
        project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
        plain.append(_wall(project, "-n"))
        notify_config(project, [closed, failing.url(), hanging.url()])
        began = time.monotonic()
        result = project.run("-r", "-n")
        told.append(time.monotonic() - began)
        assert result.returncode == 1, result.stderr
        stderr = result.stderr
    # the receiver hangs 30 s: the batch ends within its notify_drain (2 s) and a margin for a loaded machine
    assert min(told) - min(plain) < 3.0, (plain, told)
    assert len(failing.posts) >= 2 and len(hanging.posts) >= 1  # the failure was sent, and tried again
    for url in (closed, failing.url(), hanging.url()):
        assert mask(url) in stderr and url not in stderr
    assert stderr.count(f"a notification to {mask(failing.url())} could not be sent") == 1  # said once
    assert len(re.findall(re.escape(f"notifications to {mask(hanging.url())}: ") + r"\d not sent", stderr)) == 1
    assert "notifications to " + mask(failing.url()) + ":" not in stderr


def test_notify_test_says_what_each_url_answered(project, receivers, tmp_path: Path):
    ok, failing = receivers("ok"), receivers("500")
    closed = f"json://127.0.0.1:{free_port()}/nobody"
    notify_config(project, [ok.url(), failing.url(), closed, "nonsense://x/y"])
    os.chmod(project.root / "mlp.config", 0o600)
    listed = project.run("notify")
    assert listed.returncode == 0 and f"to: {mask(ok.url())}" in listed.stdout, listed.stderr
    result = project.run("notify", "--test")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert f"{mask(ok.url())}: ok" in lines
    assert any(line.startswith(f"{mask(failing.url())}: ") and "500" in line for line in lines), lines
    assert any(line.startswith(f"{mask(closed)}: ") and line != f"{mask(closed)}: ok" for line in lines), lines
    assert "…: not a URL apprise can send to" in result.stdout and "/hook" not in result.stdout
    assert ok.titled(r"^mlpipeline: proj: a test message$")
    notify_config(project, [ok.url()])
    shim = tmp_path / "no-apprise"
    (shim / "apprise").mkdir(parents=True)
    (shim / "apprise" / "__init__.py").write_text("raise ImportError('No module named apprise')\n")
    missing = project.run("notify", "--test", env={"PYTHONPATH": str(shim)})
    assert missing.returncode == 2 and "pip install 'mlpipeline[notify]'" in missing.stderr
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    none = project.run("notify", "--test")
    assert none.returncode == 2 and "no [NOTIFY] section" in none.stderr and len(none.stderr.splitlines()) == 1


SEARCH = '''
import time
from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import Versions

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class Quadratic(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.x = version["x"]
    def train_model(self, input_fn, steps):
        self.log_metric("loss", (self.x - 0.3) ** 2, step=0)
    def evaluate_model(self, input_fn, steps):
        return {"loss": (self.x - 0.3) ** 2}

def propose(history):
    return {"x": 0.1 * (len(history) + len(history.running) + 1)}

versions = Versions(Loader(), 1, 1)
versions.add_search(propose, budget=2, parallel=1)
MODEL = Quadratic(versions)
'''


def test_a_watching_runner_tells_when_its_search_is_done_and_its_queue_is_empty(project, receivers):
    http = receivers("ok")
    project.script("search.py", SEARCH)
    project.configure(["search.py"])
    notify_config(project, [http.url()], on="search_done, queue_empty")
    runner = project.start("-r", "--watch", "-n")
    try:
        wait_for(lambda: http.titled("queue empty"), timeout=60, proc=runner, what="queue_empty")
        done = http.titled(r"^mlpipeline: models/search\.py search \w+ done$")
        assert len(done) == 1 and "budget of 2 points is spent" in fields(done[0]["message"])["why"]
        assert fields(http.titled("queue empty")[0]["message"])["since the runner started"] == "2 succeeded"
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=30)


# -- a runner that died ----------------------------------------------------------------------------------------

def _serve(project, logs: Path) -> subprocess.Popen:
    out = open(logs / "serve.out", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", "serve", "-C", str(project.root), "--port", "0"],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "MLPIPELINE_TIMINGS": "notify_check=0.3"})
    out.close()
    wait_for(lambda: "http://127.0.0.1:" in (logs / "serve.out").read_text(), timeout=30, proc=proc,
             what="mlpipeline serve to start")
    return proc


def _start_and_kill(project, version: str) -> int:
    runner = project.start("-r", "-n", "--version", version)
    wait_for(lambda: (project.root / f"started-{version}").exists(), timeout=30, proc=runner, what="a running version")
    runner.kill()
    runner.communicate()
    return runner.pid


def _died(receiver: Receiver, pid: Optional[int] = None) -> List[dict]:
    return receiver.titled(r"runner died \(pid " + (str(pid) if pid else r"\d+"))


def test_a_killed_runner_is_told_by_the_dashboard_and_else_by_the_next_runner(project, receivers, tmp_path):
    http = receivers("ok")
    project.script("t.py", tracer({"one": {"action": "forever"}, "two": {"action": "forever"},
                                   "quick": {"action": "ok"}}))
    project.configure(["t.py"])
    notify_config(project, [http.url()])  # the default events: runner_died among them
    server = _serve(project, tmp_path)
    try:
        first = _start_and_kill(project, "one")
        began = time.monotonic()
        wait_for(lambda: _died(http, first), timeout=60, proc=server, what="runner_died from mlpipeline serve")
        assert time.monotonic() - began < 60
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=15)
    sent = fields(_died(http, first)[0]["message"])
    assert sent["noticed by"].startswith("mlpipeline serve") and "models/t.py one (run" in sent["it left running"]
    second = _start_and_kill(project, "two")  # it finds the first one's leftovers: already told, not again
    assert project.run("-r", "-n", "--version", "quick").returncode == 0
    wait_for(lambda: _died(http, second), timeout=10, what="runner_died from the next runner")
    assert fields(_died(http, second)[0]["message"])["noticed by"].startswith("the next runner")
    assert len(_died(http)) == 2  # each death told once


def test_a_retry_and_a_stall_are_told(project, receivers):
    """issue 22's retry and stall watch, as the receiver hears them: 'retried (attempt 2 of 2)' with the
    failed attempt's error, then 'stalled' with the silence."""
    http = receivers("ok")
    project.script("t.py", tracer({"flaky": {"action": "hang_once"}}))
    project.configure(["t.py"])
    notify_config(project, [http.url("json")], on="retried, stalled, succeeded")
    result = project.run("-r", "--stall-timeout", "2", "--retries", "1", "--retry-delay", "0", timeout=120)
    assert result.returncode == 0, result.stderr  # stalled on attempt 1, succeeded on attempt 2
    wait_for(lambda: len(http.posts) >= 3, timeout=10, what="stalled, retried and succeeded")
    stalled = http.titled(r"t\.py flaky stalled")
    assert len(stalled) == 1 and "no output line and no metric" in fields(stalled[0]["message"])["error"]
    retried = http.titled(r"t\.py flaky retried \(attempt 2 of 2\)")
    assert len(retried) == 1, [p["title"] for p in http.posts]
    assert http.titled(r"t\.py flaky succeeded")
