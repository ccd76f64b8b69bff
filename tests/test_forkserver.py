"""The fork server (issue 13): versions forked from a warm interpreter that has
imported mlpipeline's child side and nothing of the user's. Real processes,
real signals: who forked a version, what it inherited, how it ends, and that
a SIGKILL of the runner leaves neither a version nor the server behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from helpers import pid_alive, tag_of, wait_for

from mlpipeline.execution.forkserver import enabled
from mlpipeline.execution.local import LocalExecutor
from mlpipeline.core.lifecycle import Job, Outcome, RunStatus, VersionSpec
from mlpipeline.proc.system import MARK_PROJECT, MARK_RUN, MARK_VERSION
from mlpipeline.utils import ExecutionModeKeys

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux's")

# A model script whose versions record, in <project>/seen-<version>.json, what their process looks like,
# then do what their `action` says. `first_modules` is sys.modules as the script found it when imported.
SCRIPT = '''\
import json, os, random, subprocess, sys, time
FIRST_MODULES = sorted(sys.modules)
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def proc_text(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as handle:
            return handle.read().replace(b"\\0", b"\\n").decode("utf-8", "replace")
    except OSError:
        return ""


class L(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1


class M(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.version = version

    def train_model(self, input_fn, steps):
        name, action = self.version["name"], self.version.get("action", "ok")
        if action == "import":
            import xml.dom.minidom  # noqa: F401
            import local_helper  # noqa: F401
        seen = {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
                "parent_cmdline": proc_text(os.getppid(), "cmdline"), "cmdline": proc_text(os.getpid(), "cmdline"),
                "environ": proc_text(os.getpid(), "environ").split("\\n"),
                "env": {k: v for k, v in os.environ.items() if k.startswith("MLPIPELINE_")},
                "random": [random.random() for _ in range(3)], "first_modules": FIRST_MODULES,
                "modules": sorted(sys.modules), "cwd": os.getcwd(), "argv": sys.argv[1:2]}
        if action in ("helper", "forever"):
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            seen["helper"] = helper.pid
        with open(os.path.join(ROOT, "seen-%s.json.part" % name), "w") as handle:
            json.dump(seen, handle)
        os.replace(os.path.join(ROOT, "seen-%s.json.part" % name), os.path.join(ROOT, "seen-%s.json" % name))
        if action in ("helper", "forever"):
            while True:
                time.sleep(0.05)

    def evaluate_model(self, input_fn, steps):
        return {"x": 1.0}


versions = Versions(L(), 1, 1)
__ADDS__
MODEL = M(versions)
'''


def write_project(root: Path, versions: Dict[str, Dict[str, Any]]) -> Path:
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    (root / "mlp.config").write_text("[MLP]\nmodels_dir = models\n")
    for name in ("models.config", "models_test.config"):
        (root / name).write_text("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\nm.py\n")
    (models / "local_helper.py").write_text("VALUE = 1\n")
    adds = "\n".join(f"versions.add_version({name!r}, {', '.join(f'{k}={v!r}' for k, v in params.items())})"
                     for name, params in versions.items())
    script = models / "m.py"
    script.write_text(SCRIPT.replace("__ADDS__", adds))
    return script


def seen(root: Path, version: str) -> Dict[str, Any]:
    return json.loads((root / f"seen-{version}.json").read_text())


class Sink:
    def __init__(self) -> None:
        self.logs: List[Tuple[str, int]] = []
        self.where: Dict[str, Any] = {}

    def started(self, where: Dict[str, Any]) -> None:
        self.where = dict(where)

    def log(self, message: str, level: int = 20) -> None:
        self.logs.append((message, level))

    def metrics(self, rows: Any) -> None:
        pass

    def output(self, record: Any) -> None:
        pass




def submit(executor: LocalExecutor, script: Path, version: str, params: Dict[str, Any],
           sink: Optional[Sink] = None) -> int:
    spec = VersionSpec(script=str(script), rel="m.py", version=version, params={"name": version, **params})
    job = Job(spec, str(script.parent / "outputs" / version), ExecutionModeKeys.TRAIN, tag=tag_of(version))
    return executor.submit(job, sink or Sink())


def finish(executor: LocalExecutor, tickets: List[int], timeout: float = 60) -> Dict[int, Outcome]:
    outcomes: Dict[int, Outcome] = {}
    deadline = time.monotonic() + timeout
    while not set(tickets) <= set(outcomes):
        assert time.monotonic() < deadline, f"versions {set(tickets) - set(outcomes)} did not finish"
        outcomes.update(dict(executor.poll(0.1)))
    return outcomes


@pytest.fixture
def executor(tmp_path, monkeypatch):
    monkeypatch.delenv("MLPIPELINE_FORKSERVER", raising=False)
    ex = LocalExecutor(cwd=str(tmp_path), echo=False, sweep=True)
    yield ex
    ex.close()


def run_one(executor: LocalExecutor, script: Path, version: str, **params: Any) -> Outcome:
    ticket = submit(executor, script, version, params)
    return finish(executor, [ticket])[ticket]


def test_a_version_runs_in_a_child_the_fork_server_forked(tmp_path, executor):
    assert enabled()
    script = write_project(tmp_path, {"v": {}})
    outcome = run_one(executor, script, "v")
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    server = executor._server
    assert server is not None and server.alive
    got = seen(tmp_path, "v")
    assert got["ppid"] == server.pid != os.getpid()
    assert "mlpipeline.execution.forkserver" in got["parent_cmdline"]
    assert got["pgid"] == got["pid"]  # its own process group, as with start_new_session ...
    assert got["sid"] == os.getsid(server.pid) != os.getsid(0)  # ... in the server's session, which has no terminal
    assert got["cwd"] == str(tmp_path)
    assert got["argv"] == ["run"]  # sys.argv as a spawned child has it
    # the markers are where kill_marked reads them (/proc/PID/environ), not only in os.environ
    assert f"{MARK_RUN}={tag_of('v')}" in got["environ"]
    assert f"{MARK_PROJECT}={executor.project_mark}" in got["environ"]
    assert any(line.startswith(f"{MARK_VERSION}=") and "_" * 20 not in line for line in got["environ"])
    assert got["env"][MARK_RUN] == tag_of("v")
    assert f"mlpipeline version {script} v" in got["cmdline"].replace("\n", " ")


def test_the_server_holds_nothing_of_the_users_and_one_versions_imports_never_reach_the_next(tmp_path, executor):
    script = write_project(tmp_path, {"a": {"action": "import"}, "b": {}})
    assert run_one(executor, script, "a").status is RunStatus.SUCCEEDED
    assert run_one(executor, script, "b").status is RunStatus.SUCCEEDED
    a, b = seen(tmp_path, "a"), seen(tmp_path, "b")
    assert a["ppid"] == b["ppid"] == executor._server.pid  # type: ignore[union-attr]
    assert "xml.dom.minidom" in a["modules"] and "local_helper" in a["modules"]
    assert "xml.dom.minidom" not in b["modules"] and "local_helper" not in b["modules"]
    # what a version finds when its script is imported: mlpipeline and the standard library, nothing else
    bare = set(json.loads(subprocess.run([sys.executable, "-c", "import sys, json; print(json.dumps(list(sys.modules)))"],
                                         capture_output=True, text=True, check=True).stdout))  # site's .pth hooks
    foreign = [m for m in b["first_modules"] if m not in bare and m.split(".")[0] not in sys.stdlib_module_names
               and m.split(".")[0] not in ("mlpipeline", "__main__", "m")]
    assert not foreign, foreign
    for heavy in ("numpy", "tensorflow", "torch", "tabulate", "watchdog", "sqlite3", "multiprocessing"):
        assert heavy not in b["first_modules"], heavy


def test_forked_versions_do_not_share_the_servers_random_state(tmp_path, executor):
    script = write_project(tmp_path, {"a": {}, "b": {}, "c": {}})
    for name in "abc":
        assert run_one(executor, script, name).status is RunStatus.SUCCEEDED
    draws = [tuple(seen(tmp_path, name)["random"]) for name in "abc"]
    assert len(set(draws)) == 3, draws
    assert len({seen(tmp_path, name)["ppid"] for name in "abc"}) == 1


@pytest.mark.parametrize("how", ["cold", "warm", "timeout"])
def test_cancel_and_timeout_end_the_forked_versions_whole_group(tmp_path, executor, how):
    """A cancel signals the version's process group: the version and the helper it started both go."""
    script = write_project(tmp_path, {"v": {"action": "helper"}})
    ticket = submit(executor, script, "v", {"action": "helper"})
    wait_for(lambda: (tmp_path / "seen-v.json").exists() or executor.poll(0.05) and False, timeout=30,
             what="the version to start")
    got = seen(tmp_path, "v")
    assert got["ppid"] == executor._server.pid  # type: ignore[union-attr]
    status = RunStatus.TIMEOUT if how == "timeout" else RunStatus.CANCELLED
    executor.cancel(ticket, status, "timed out after 1 s" if how == "timeout" else "cancelled", cold=how != "warm")
    outcome = finish(executor, [ticket])[ticket]
    assert outcome.status is status
    assert outcome.signal in (signal.SIGKILL, signal.SIGTERM)
    wait_for(lambda: not pid_alive(got["pid"]) and not pid_alive(got["helper"]), timeout=5,
             what="the version and its helper to end")


def test_a_version_killed_by_a_signal_reports_it_as_a_spawned_one_would(tmp_path, executor):
    script = tmp_path / "models" / "k.py"
    write_project(tmp_path, {})
    script.write_text(textwrap.dedent('''\
        import os, signal
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions
        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1
        class M(Model):
            def train_model(self, input_fn, steps):
                if self.get_current_version()["name"] == "exit3":
                    os._exit(3)
                os.kill(os.getpid(), signal.SIGSEGV)
            def evaluate_model(self, input_fn, steps): return {"x": 1.0}
        versions = Versions(L(), 1, 1)
        versions.add_version("exit3")
        versions.add_version("segv")
        MODEL = M(versions)
        '''))
    outcomes = {name: run_one(executor, script, name) for name in ("exit3", "segv")}
    assert (outcomes["exit3"].status, outcomes["exit3"].exit_code) == (RunStatus.FAILED, 3)
    assert (outcomes["segv"].status, outcomes["segv"].signal) == (RunStatus.FAILED, signal.SIGSEGV)
    assert "SIGSEGV" in outcomes["segv"].error


def test_changed_interpreter_settings_spawn_the_version(tmp_path, executor, monkeypatch):
    """sys.path is computed once at an interpreter's start: a version whose PYTHONPATH (or any other
    PYTHON* setting) is not the server's is spawned, so it sees the path it was given."""
    script = write_project(tmp_path, {"a": {}, "b": {}})
    assert run_one(executor, script, "a").status is RunStatus.SUCCEEDED
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "extra"), os.environ.get("PYTHONPATH", "")]))
    assert run_one(executor, script, "b").status is RunStatus.SUCCEEDED
    assert seen(tmp_path, "a")["ppid"] == executor._server.pid  # type: ignore[union-attr]
    assert seen(tmp_path, "b")["ppid"] == os.getpid()  # spawned by this process
    assert executor._server is not None and executor._server.alive  # still used for the next one


def test_a_dead_fork_server_ends_its_version_and_the_next_ones_are_spawned_with_one_warning(tmp_path, executor):
    script = write_project(tmp_path, {"a": {"action": "forever"}, "b": {}, "c": {}})
    ticket = submit(executor, script, "a", {"action": "forever"})
    wait_for(lambda: (tmp_path / "seen-a.json").exists() or executor.poll(0.05) and False, timeout=30,
             what="the version to start")
    server = executor._server
    assert server is not None
    os.kill(server.pid, signal.SIGKILL)
    outcome = finish(executor, [ticket])[ticket]
    assert outcome.status is RunStatus.FAILED and outcome.signal == signal.SIGKILL, outcome
    wait_for(lambda: not pid_alive(seen(tmp_path, "a")["pid"]), timeout=5, what="the version to die with its server")
    sinks = [Sink(), Sink()]
    for name, sink in zip("bc", sinks):
        ticket = submit(executor, script, name, {}, sink)
        ended = finish(executor, [ticket])[ticket]
        assert ended.status is RunStatus.SUCCEEDED, (name, ended, sink.logs)
        assert seen(tmp_path, name)["ppid"] == os.getpid()
    warnings = [m for sink in sinks for m, level in sink.logs if level >= 30 and "fork server" in m]
    assert len(warnings) == 1 and "spawned" in warnings[0], sinks[0].logs + sinks[1].logs


def test_mlpipeline_forkserver_0_spawns(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPELINE_FORKSERVER", "0")
    script = write_project(tmp_path, {"v": {}})
    executor = LocalExecutor(cwd=str(tmp_path), echo=False)
    try:
        assert run_one(executor, script, "v").status is RunStatus.SUCCEEDED
        assert executor._server is None
    finally:
        executor.close()
    got = seen(tmp_path, "v")
    assert got["ppid"] == os.getpid()
    assert "mlpipeline.script.child" in got["parent_cmdline"] or "mlpipeline.script.child" in got["cmdline"]


def children(pid: int) -> List[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(name))
    return found


def the_spare(server_pid: int, versions: Tuple[int, ...] = ()) -> int:
    """The fork server's spare: its one live child that is not one of ``versions``."""
    spares = wait_for(lambda: [pid for pid in children(server_pid) if pid not in versions], timeout=10,
                      what="the fork server's spare")
    assert len(spares) == 1, spares
    return spares[0]


def test_the_next_version_runs_in_the_spare_the_server_forked_and_set_up_ahead_of_it(tmp_path, executor):
    script = write_project(tmp_path, {"a": {}, "b": {}})
    assert run_one(executor, script, "a").status is RunStatus.SUCCEEDED
    server = executor._server
    assert server is not None
    spare = the_spare(server.pid)
    assert spare != seen(tmp_path, "a")["pid"]
    assert os.getpgid(spare) == spare  # set up already: its own group, ...
    with open(f"/proc/{spare}/environ", "rb") as handle:
        assert f"{MARK_RUN}={'_' * 20}".encode() in handle.read()  # ... but no version's markers yet
    assert run_one(executor, script, "b").status is RunStatus.SUCCEEDED
    got = seen(tmp_path, "b")
    assert got["pid"] == spare and got["pgid"] == spare and got["ppid"] == server.pid
    assert f"{MARK_RUN}={tag_of('b')}" in got["environ"]
    assert the_spare(server.pid) not in (spare, seen(tmp_path, "a")["pid"])  # a fresh one, never one reused


def test_a_dead_spare_is_never_reported_and_the_next_version_still_forks(tmp_path, executor):
    script = write_project(tmp_path, {"a": {}, "b": {}, "c": {}})
    assert run_one(executor, script, "a").status is RunStatus.SUCCEEDED
    server = executor._server
    assert server is not None
    spare = the_spare(server.pid)
    os.kill(spare, signal.SIGKILL)
    # reaped by the server, not only a zombie: a spare that dies as it is handed a request takes that version along
    wait_for(lambda: not os.path.exists(f"/proc/{spare}"), timeout=5, what="the server to reap the spare")
    assert run_one(executor, script, "b").status is RunStatus.SUCCEEDED
    assert seen(tmp_path, "b")["ppid"] == server.pid and seen(tmp_path, "b")["pid"] != spare
    assert run_one(executor, script, "c").status is RunStatus.SUCCEEDED
    assert server.alive and spare not in server._statuses
    server.drain()
    assert spare not in server._statuses


def test_the_spare_ends_with_the_server_closed_or_killed(tmp_path, executor):
    script = write_project(tmp_path, {"a": {}})
    assert run_one(executor, script, "a").status is RunStatus.SUCCEEDED
    server = executor._server
    assert server is not None
    spare = the_spare(server.pid)
    executor.close()
    assert not pid_alive(spare)  # the server ended it before it left: nothing is left after close()
    second = LocalExecutor(cwd=str(tmp_path), echo=False, sweep=True)
    try:
        assert run_one(second, script, "a").status is RunStatus.SUCCEEDED
        assert second._server is not None
        spare = the_spare(second._server.pid)
        os.kill(second._server.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(spare), timeout=5, what="the spare to die with its server")
    finally:
        second.close()


# -- the real CLI --------------------------------------------------------------------------------------------


def start_runner(root: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlpipeline", *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("forkserver", ["1", "0"])
def test_a_sigkilled_runner_leaves_no_version_and_no_fork_server_behind(tmp_path, forkserver):
    """Runner -> fork server -> version: each dies with the one above it, through the kernel
    (PR_SET_PDEATHSIG), even while the version is busy."""
    write_project(tmp_path, {"v": {"action": "forever"}})
    runner = start_runner(tmp_path, "-r", env={"MLPIPELINE_FORKSERVER": forkserver})
    try:
        wait_for(lambda: (tmp_path / "seen-v.json").exists(), timeout=60, proc=runner, what="the version to start")
        got = seen(tmp_path, "v")
        forked = "mlpipeline.execution.forkserver" in got["parent_cmdline"]
        assert forked == (forkserver == "1"), got["parent_cmdline"]
        assert got["ppid"] == (got["ppid"] if forked else runner.pid)
        spare = the_spare(got["ppid"], (got["pid"],)) if forked else None
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=30)
        wait_for(lambda: not pid_alive(got["pid"]), timeout=5, what="the version to die with its runner")
        if forked:
            wait_for(lambda: not pid_alive(got["ppid"]), timeout=5, what="the fork server to die with its runner")
            wait_for(lambda: not pid_alive(spare), timeout=5, what="the spare to die with the fork server")
        # what the version itself started is ended by the next runner of the project (it carries the markers)
        assert pid_alive(got["helper"])
        (tmp_path / "models" / "m.py").write_text((tmp_path / "models" / "m.py").read_text()
                                                  .replace("'action': 'forever'", "'action': 'ok'")
                                                  .replace("action='forever'", "action='ok'"))
        again = start_runner(tmp_path, "-r", env={"MLPIPELINE_FORKSERVER": forkserver})
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        wait_for(lambda: not pid_alive(got["helper"]), timeout=5, what="the next runner to end the helper")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        for name in ("pid", "helper"):
            pid = seen(tmp_path, "v").get(name) if (tmp_path / "seen-v.json").exists() else None
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
