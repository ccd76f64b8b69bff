"""The browser suite's fixtures: real ledgers made by real runs of the web
fixture scripts, real ``mlpipeline serve`` processes, a real runner with
``--watch``, and Debian's chromium driven by Playwright.

Everything expensive is module-scoped (one ledger, one server, one browser per
module); every page gets a fresh context that fails its test if the page throws,
opens a dialog or asks anything of a host other than 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest

from helpers import FIXTURES, Project, pid_alive, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1300, "height": 900}
WEB_FIXTURES = FIXTURES / "web"
LONG_SLEEP = "30"   # seconds per step of curves.py 'long' on the live project: 50 steps never finish here


def _new_project(root: Path, scripts: List[str], whitelist: List[str]) -> Project:
    proj = Project(root)
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True, exist_ok=True)
    for name in scripts:
        shutil.copy(WEB_FIXTURES / name, proj.models / name)
    proj.configure(whitelist)
    return proj


def _stop(proc: subprocess.Popen, *signals: Tuple[int, float]) -> None:
    """Send each (signal, seconds to wait for the exit) in turn, then SIGKILL."""
    for signum, grace in signals:
        if proc.poll() is not None:
            return
        proc.send_signal(signum)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


class Server:
    """One ``mlpipeline serve --port 0`` on a project, its address read from the
    first line it prints."""

    def __init__(self, proj: Project, logs: Path):
        self.proj = proj
        self.out, self.err = logs / "serve.out", logs / "serve.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", "serve", "-C", str(proj.root),
                                          "--port", "0"], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            line = wait_for(self._first_line, timeout=30, what="mlpipeline serve to print its address")
        except AssertionError:
            self.stop()
            raise AssertionError(f"mlpipeline serve printed no address: {self.err.read_text()[-2000:]}") from None
        match = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert match, f"mlpipeline serve's first line has no http://127.0.0.1:PORT/?token=T: {line!r}"
        self.base, self.token = match.group(1), match.group(2)
        self.url = f"{self.base}/?token={self.token}"

    def _first_line(self) -> Optional[str]:
        if self.proc.poll() is not None:
            raise AssertionError(f"mlpipeline serve exited ({self.proc.returncode}): {self.err.read_text()[-2000:]}")
        text = self.out.read_text()
        return text.split("\n", 1)[0] if "\n" in text else None

    def entry(self, path: str = "/") -> str:
        """``path`` with the token: the guard sets the cookie and redirects to ``path``."""
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        """GET (or POST ``body`` as JSON) an API path with the token as a Bearer header."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        _stop(self.proc, (signal.SIGINT, 10.0))
        assert not pid_alive(self.proc.pid)


class Runner:
    """``mlpipeline -r --watch`` on a project, output to files (a pipe nobody
    reads would stall it)."""

    def __init__(self, proj: Project, logs: Path, env: Dict[str, str]):
        self.proj = proj
        self.out, self.err = logs / "runner.out", logs / "runner.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", "-r", "--watch"], cwd=proj.root,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **env})

    def log(self) -> str:
        return self.err.read_text()[-3000:]

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        """``predicate``'s first truthy value; fails at once, with the runner's
        output, if the runner exits meanwhile."""
        def check() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError(f"the runner exited ({self.proc.returncode}) while waiting for {what}: "
                                     f"{self.log()}")
            return predicate()
        return wait_for(check, timeout=timeout, what=what)

    def whitelisted(self, script: str) -> bool:
        """Whether models.config lists ``script`` in its whitelist now."""
        text = (self.proj.root / "models.config").read_text()
        section = text.split("[WHITELISTED_MODELS]", 1)[1].split("[BLACKLISTED_MODELS]", 1)[0]
        return script in section.split()

    def stop(self) -> None:
        """Two SIGTERMs, as a user's two Ctrl+C: the first lets a running version
        finish ('long' would not), the second kills it. Then no version's
        process may outlive the runner."""
        _stop(self.proc, (signal.SIGTERM, 1.0), (signal.SIGTERM, 10.0))
        alive = [r["child_pid"] for r in self.proj.runs() if r.get("child_pid") and pid_alive(r["child_pid"])]
        for pid in alive:  # not left to run on, whatever the assertion below says
            os.kill(pid, signal.SIGKILL)
        assert not pid_alive(self.proc.pid)
        assert not alive, f"version processes outlived the runner: {alive}; {self.log()}"


# -- the projects ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A finished project: curves.py (slow, fast, long) and evil.py run once in
    execution mode, then curves.py once in test mode. Runs 1-3 are curves.py's
    versions, run 4 is evil.py's, runs 5-7 the test-mode ones."""
    proj = _new_project(tmp_path_factory.mktemp("lab") / "proj", ["curves.py", "evil.py"], ["curves.py", "evil.py"])
    env = {"WEB_TEST_SLEEP": "0"}
    done = proj.run("-r", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    proj.configure(["curves.py", "evil.py"], test_scripts=["curves.py"])
    done = proj.run(env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = proj.runs()
    assert [(r["version"], r["mode"], r["status"]) for r in runs] == [
        ("slow", "run", "succeeded"), ("fast", "run", "succeeded"), ("long", "run", "succeeded"),
        ("<img src=x onerror=window.__xss=1>", "run", "succeeded"),
        ("slow", "test", "succeeded"), ("fast", "test", "succeeded"), ("long", "test", "succeeded")]
    return proj


@pytest.fixture(scope="module")
def lab_server(lab: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(lab, tmp_path_factory.mktemp("lab-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """A project whose runner (``-r --watch``) waits on an empty whitelist;
    curves.py is in models/ but not listed. Its 'long' version sleeps
    LONG_SLEEP s a step, so once whitelisted it stays running until cancelled."""
    proj = _new_project(tmp_path_factory.mktemp("live") / "proj", ["curves.py"], [])
    runner = Runner(proj, tmp_path_factory.mktemp("live-runner"), {"WEB_TEST_SLEEP": LONG_SLEEP})
    try:
        runner.wait(lambda: "waiting for edits" in runner.err.read_text(), "the runner to wait on its empty queue")
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def live_server(live: Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(live.proj, tmp_path_factory.mktemp("live-server"))
    yield srv
    srv.stop()


# -- the browser ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium; run `make browser` "
                    f"(apt-get install chromium)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed in this environment: run `make install` (the dev extra)",
                    pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $MLP_SCREENSHOTS, or a temp folder pytest keeps."""
    folder = os.environ.get("MLP_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _snap(page: Any, path: Path) -> None:
    """A screenshot of the viewport, written here rather than by Playwright: its
    ``path=`` (like ``set_input_files`` given paths) does file I/O in executor
    threads that outlive the test and read as leaked threads."""
    path.write_bytes(page.screenshot())


def _local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"


def _bad(message: Any) -> bool:
    """A console error worth failing for: a refusal (CSP), a script error, or a
    page asset (script, style, icon) that did not load. An API call answered
    4xx is not one: the tests check those answers themselves."""
    if message.type != "error":
        return False
    if message.text.startswith("Failed to load resource"):
        path = urlsplit(message.location.get("url") or "").path
        return path.startswith("/static/") or path == "/favicon.ico"
    return True


@pytest.fixture
def page(browser: Any, shots: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh context (no cookie, empty localStorage), 1300 px wide.
    After the test: a screenshot of where it ended, and a failure for any page
    error, dialog, or request to a host other than 127.0.0.1."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    outside: List[str] = []
    errors: List[str] = []
    dialogs: List[str] = []
    # on the context, so that a second tab a test opens is watched as well
    context.on("request", lambda r: None if _local(r.url) else outside.append(r.url))
    context.on("weberror", lambda e: errors.append(str(e.error)))
    context.on("console", lambda m: errors.append(f"console: {m.text} ({m.location.get('url')})") if _bad(m) else None)

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    context.on("dialog", on_dialog)
    tab = context.new_page()
    try:
        yield tab
        try:
            _snap(tab, shots / f"{request.node.name}-end.png")
        except Exception:  # noqa: BLE001 - an artifact only; the test's own outcome stands
            pass
    finally:
        context.close()
    assert not outside, f"the page asked hosts other than 127.0.0.1: {outside}"
    assert not errors, f"the page threw: {errors}"
    assert not dialogs, f"the page opened dialogs: {dialogs}"
