"""A week unattended: what a runner left alone for days meets — a blocking
import, an editor saving models.config, a closed pipe, a dropped ssh session,
a version stuck in C code, leaked processes, a busy ledger, a shadowing module,
a deleted lock file, odd values and names, huge log messages and progress bars.
Each test drives the real CLI in real processes with real signals."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reliability_support import (PeakMemory, model_script, pid_alive, processes_mentioning, tracer,
                                 wait_for)

MLPIPELINE = str(Path(sys.executable).parent / "mlpipeline")  # the console script a user runs


def start(project, *args, env=None, **popen):
    """The runner as a user starts it: the installed console script (sys.path[0]
    is its bin folder, not the project root, as `python -m` would make it)."""
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kw.update(popen)
    return subprocess.Popen([MLPIPELINE, *args], cwd=project.root, env={**os.environ, **(env or {})}, **kw)


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"runner still running after {timeout} s; stderr: {err[-3000:]}") from None
    return out, err


def shown(project):
    return [(r["id"], r["script"], r["version"], r["status"], r["error"]) for r in project.runs()]


def kill_leftovers(text):
    """End processes this test's versions started (their command lines carry the project's path)."""
    for pid, _ in processes_mentioning(text):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def cleanup(project):
    yield
    kill_leftovers(str(project.root))


# 8. a module beside mlp.config must not shadow the standard library or mlpipeline in a child

@pytest.mark.parametrize("name", ["json.py", "numbers.py", "mlpipeline.py"])
def test_module_in_project_root_does_not_shadow_in_execution_mode(project, name):
    project.write(name, f"raise ImportError('the project root {name} was imported instead of the real one')\n")
    # a script that imports the module itself (numpy imports numbers, most scripts import json)
    project.script("a.py", model_script("print('trained', json.dumps([1]), numbers.Number)", imports="import json, numbers"))
    project.configure(["a.py"])
    proc = start(project, "-r")
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert [r["status"] for r in project.runs()] == ["succeeded"], (shown(project), err[-3000:])


# 4. SIGHUP (ssh dropped) is a warm stop

def test_sighup_is_a_warm_stop(project, cleanup):
    project.script("a.py", tracer({"first": {"action": "wait"}, "second": {}}))
    project.configure(["a.py"])
    proc = start(project, "-r")
    wait_for(lambda: (project.root / "started-first").exists(), proc=proc, what="the first version to start")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    (project.root / "go").touch()
    out, err = finish(proc, timeout=30)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    runs = {r["version"]: r for r in project.runs()}
    assert runs["first"]["status"] == "succeeded", shown(project)
    assert "second" not in runs or runs["second"]["status"] not in ("running", "succeeded"), shown(project)
    assert not any(r["status"] == "running" for r in project.runs()), shown(project)


def test_sighup_stops_test_mode_like_ctrl_c(project, cleanup):
    """A smoke run over ssh: SIGHUP ends it as Ctrl+C does (exit 130, the run
    recorded as ended, nothing new started), not by the default signal action."""
    project.script("a.py", tracer({"first": {"action": "wait"}, "second": {}}))
    project.configure(["a.py"])
    proc = start(project)
    wait_for(lambda: (project.root / "started-first").exists(), proc=proc, what="the first version to start")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    (project.root / "go").touch()
    out, err = finish(proc, timeout=30)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    runs = {r["version"]: r for r in project.runs()}
    assert runs["first"]["status"] in ("succeeded", "interrupted"), shown(project)
    assert "second" not in runs, shown(project)


# 3. a closed stdout (`mlpipeline -r | head -1`) never touches the batch

@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_closed_stdout_does_not_touch_the_batch(project, tmp_path, both):
    body = """
        for i in range(20000):
            print('line', i, 'of a chatty version')
        sys.stdout.flush()
        time.sleep(0.3)
        print('last line')
        """
    project.script("a.py", model_script(body, versions=("v1", "v2", "v3")))
    project.configure(["a.py"])
    with open(tmp_path / "stderr", "w") as errfile:
        proc = subprocess.Popen([MLPIPELINE, "-r"], cwd=project.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if both else errfile)
        first = proc.stdout.readline()
        proc.stdout.close()  # `| head -1`
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    err = (tmp_path / "stderr").read_text() if not both else "(stderr went to the closed pipe)"
    assert first, err[-3000:]
    runs = project.runs()
    assert [(r["version"], r["status"]) for r in runs] == [("v1", "succeeded"), ("v2", "succeeded"),
                                                           ("v3", "succeeded")], (shown(project), err[-3000:])
    assert proc.returncode == 0, (proc.returncode, err[-3000:])
    for run in runs:  # the run's own log is still written in full
        log = (project.outputs / "runs" / str(run["id"]) / "output.log").read_text()
        assert "line 19999 of a chatty version" in log and "last line" in log, log[-300:]
    logs = list(project.outputs.glob("log-*"))
    assert logs and "v3" in logs[0].read_text(), [p.name for p in project.outputs.iterdir()]


def test_closed_stdout_in_test_mode_does_not_fail_a_version(project, tmp_path):
    """`mlpipeline | head -1`: what mlpipeline itself writes (its log lines,
    self.log) to a closed stdout must not fail the version it runs in-process. The test closes its end
    after the lines mlpipeline prints before the version's code, and the version writes only then, so its
    own first line meets the closed pipe."""
    body = """
        while not os.path.exists(os.path.join(ROOT, 'closed')):
            time.sleep(0.01)
        for i in range(2000):
            self.log('step %d of a chatty version' % i)
        time.sleep(0.3)
        self.log('last line')
        """
    project.script("a.py", model_script(body, versions=("v1", "v2")))
    project.configure(["a.py"])
    with open(tmp_path / "stderr", "w") as errfile:
        proc = subprocess.Popen([MLPIPELINE], cwd=project.root, stdout=subprocess.PIPE, stderr=errfile)
        first = proc.stdout.readline()
        while first and b"training 1 step" not in first:  # what mlpipeline prints before the version's code
            first = proc.stdout.readline()
        proc.stdout.close()
        (project.root / "closed").write_text("")
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    err = (tmp_path / "stderr").read_text()
    assert first, err[-3000:]
    assert [(r["version"], r["status"]) for r in project.runs()] == [("v1", "succeeded"), ("v2", "succeeded")], \
        (shown(project), err[-3000:])
    assert proc.returncode == 0, (proc.returncode, err[-3000:])


# 10. values: numpy scalars, strict JSON, read commands that never create or change a file, application_id

NUMPY_BODY = """
    import numpy as np
    for i, kind in enumerate((np.int64, np.int32, np.uint16, np.int8)):
        self.log_metric('loss', np.float32(0.25), step=kind(i))
    self.log_metric('blowup', float('inf'), step=np.int64(7))
    self.log_metric('nan', float('nan'), step=np.int64(8))
    """


@pytest.mark.parametrize("mode", [(), ("-r",)], ids=["in-process", "child"])
def test_numpy_steps_are_stored_as_integers(project, mode):
    project.script("a.py", model_script(NUMPY_BODY))
    project.configure(["a.py"])
    proc = start(project, *mode)
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    with project.db() as conn:
        rows = conn.execute("SELECT name, step, typeof(step) AS t, typeof(value) AS tv FROM metrics "
                            "WHERE name IN ('loss', 'blowup', 'nan') ORDER BY rowid").fetchall()
    assert [(r["name"], r["step"], r["t"]) for r in rows] == [
        ("loss", 0, "integer"), ("loss", 1, "integer"), ("loss", 2, "integer"), ("loss", 3, "integer"),
        ("blowup", 7, "integer"), ("nan", 8, "integer")], [tuple(r) for r in rows]
    assert rows[0]["tv"] == "real", [tuple(r) for r in rows]


def refuse_constant(args, text):
    def refuse(token):
        raise AssertionError(f"mlpipeline {' '.join(args)} --format json printed {token}: {text[:500]}")
    return refuse


def test_json_output_is_strict(project):
    project.script("a.py", model_script(NUMPY_BODY))
    project.configure(["a.py"])
    proc = start(project, "-r")
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    run_id = str(project.runs()[0]["id"])
    for args in (("metrics", run_id), ("runs",), ("show", run_id), ("compare", "a.py")):
        result = project.run(*args, "--format", "json")
        assert result.returncode == 0, (args, result.stderr)

        data = json.loads(result.stdout, parse_constant=refuse_constant(args, result.stdout))
        if args[0] == "metrics":
            values = {(p["name"], p["step"]): p["value"] for p in data}
            assert values[("blowup", 7)] is None and values[("nan", 8)] is None, data


def ledger_files(project):
    return sorted(p.name for p in project.outputs.iterdir()) if project.outputs.exists() else []


@pytest.mark.parametrize("command", [("runs",), ("status",), ("compare", "a.py"), ("metrics", "1"), ("logs", "1")],
                         ids=["runs", "status", "compare", "metrics", "logs"])
def test_zero_byte_ledger_is_an_error_and_left_untouched(project, command):
    project.script("a.py", model_script("pass"))
    project.configure(["a.py"])
    project.outputs.mkdir(parents=True)
    ledger = project.outputs / "mlpipeline.db"
    ledger.write_bytes(b"")
    result = project.run(*command, timeout=60)
    assert result.returncode != 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "mlpipeline.db" in result.stderr, result.stderr
    assert ledger.stat().st_size == 0
    assert ledger_files(project) == ["mlpipeline.db"], ledger_files(project)
    assert not project.runs(), "a 0-byte ledger was turned into a fresh one"


@pytest.mark.parametrize("command", [("runs",), ("status",), ("compare", "a.py"), ("metrics", "1")],
                         ids=["runs", "status", "compare", "metrics"])
def test_read_command_without_a_ledger_creates_nothing(project, command):
    project.script("a.py", model_script("pass"))
    project.configure(["a.py"])
    before = sorted(str(p.relative_to(project.root)) for p in project.root.rglob("*"))
    result = project.run(*command, timeout=60)
    after = sorted(str(p.relative_to(project.root)) for p in project.root.rglob("*"))
    assert after == before, (f"mlpipeline {' '.join(command)} created {sorted(set(after) - set(before))}",
                             result.stderr)


@pytest.mark.parametrize("command", [("runs",), ("status",), ("show", "1"), ("-r", "-u")],
                         ids=["runs", "status", "show", "run-u"])
def test_foreign_sqlite_file_is_an_error_naming_it_and_left_untouched(project, command):
    project.script("a.py", model_script("pass"))
    project.configure(["a.py"])
    project.outputs.mkdir(parents=True)
    ledger = project.outputs / "mlpipeline.db"
    conn = sqlite3.connect(ledger)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    conn.execute("INSERT INTO photos (path) VALUES ('holiday.jpg')")
    conn.commit()
    conn.close()
    before = ledger.read_bytes()
    result = project.run(*command, timeout=60)
    assert result.returncode != 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "mlpipeline.db" in result.stderr, result.stderr
    assert ledger.read_bytes() == before, "the foreign database was changed"
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    assert tables == ["photos"] and mode == "delete", (tables, mode)


def test_ledger_is_marked_with_an_application_id(project):
    project.script("a.py", model_script("pass"))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    with project.db() as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] != 0


def test_newer_ledger_is_refused_before_anything_changes(project):
    project.script("a.py", model_script("pass"))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    ledger = project.outputs / "mlpipeline.db"
    conn = sqlite3.connect(ledger)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("CREATE TABLE IF NOT EXISTS migrations_probe (x)")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    table = next(t for t in tables if "migration" in t and t != "migrations_probe")
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    conn.execute("DROP TABLE migrations_probe")
    values = {c: ("9999_from_the_future" if c in ("name", "id", "migration") else time.time()) for c in columns}
    conn.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                 tuple(values.values()))
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {version + 100}")
    conn.commit()
    conn.close()
    for name in ("mlpipeline.db-wal", "mlpipeline.db-shm"):
        assert not (project.outputs / name).exists(), ledger_files(project)
    before = ledger.read_bytes()
    for command in (("runs",), ("-r", "-u")):
        result = project.run(*command, timeout=60)
        assert result.returncode != 0, (command, result.stdout[-1000:], result.stderr[-1000:])
        assert "mlpipeline.db" in result.stderr and "newer" in result.stderr, (command, result.stderr)
        conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            conn.close()
        assert mode == "delete", f"mlpipeline {' '.join(command)} switched a newer ledger to {mode} before refusing it"
        assert ledger.read_bytes() == before, f"mlpipeline {' '.join(command)} changed a newer ledger"


# 11. names

@pytest.mark.parametrize("char", ["\n", "\r", "\x1b"], ids=["newline", "cr", "escape"])
def test_control_character_in_a_version_name_is_refused_at_load_in_one_line(project, char):
    name = f"bad{char}name"
    project.script("a.py", model_script("print('trained')", versions=(name,)))
    project.configure(["a.py"])
    proc = start(project, "-r")
    out, err = finish(proc)
    assert proc.returncode in (1, 2), (proc.returncode, err[-2000:])
    runs = project.runs()
    assert not any(r["child_pid"] or r["status"] == "succeeded" for r in runs), shown(project)
    lines = err.splitlines()
    assert any("bad" in line and "name" in line and "a.py" in line for line in lines), err
    assert not any(line.startswith("name") for line in lines), f"the name split a line: {err!r}"
    assert not any("\r" in line or "\x1b" in line for line in lines), f"a raw control character was printed: {err!r}"


def test_version_name_too_long_for_the_file_system_is_refused_at_load(project):
    name = "v" * 300
    project.script("a.py", model_script("print('trained')", versions=(name,)))
    project.configure(["a.py"])
    proc = start(project, "-r")
    out, err = finish(proc)
    assert proc.returncode in (1, 2), (proc.returncode, err[-2000:])
    assert "File name too long" not in err and "Traceback" not in err, err[-3000:]
    runs = project.runs()
    assert not any(r["child_pid"] or r["started_at"] and r["status"] == "running" for r in runs), shown(project)
    assert not any(r["error"] and "File name too long" in r["error"] for r in runs), shown(project)
    lines = [line for line in err.splitlines() if "a.py" in line and ("long" in line or "255" in line)]
    assert lines, err


def test_queries_match_script_paths_exactly(project):
    project.script("Case.py", model_script("pass", versions=("upper",)))
    project.script("case.py", model_script("pass", versions=("lower",)))
    project.configure(["Case.py", "case.py"])
    result = project.run("-r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(r["version"] for r in project.runs()) == ["lower", "upper"], shown(project)

    def versions(*args):
        result = project.run(*args, "--format", "json")
        assert result.returncode == 0, (args, result.stderr)
        return sorted({row["version"] for row in json.loads(result.stdout)})

    assert versions("compare", "models/Case.py") == ["upper"]
    assert versions("compare", "models/case.py") == ["lower"]
    assert versions("runs", "--script", "Case.py") == ["upper"]
    assert versions("runs", "--script", "case.py") == ["lower"]


# 9. the lock survives deletion of runner.lock

def test_deleting_runner_lock_does_not_let_a_second_runner_in(project, cleanup):
    project.script("a.py", tracer({"long": {"action": "wait"}}))
    project.configure(["a.py"])
    first = start(project, "-r")
    wait_for(lambda: (project.root / "started-long").exists(), proc=first, what="the first runner's version")
    lock = project.outputs / "runner.lock"
    assert lock.exists(), ledger_files(project)
    lock.unlink()
    second = start(project, "-r")
    try:
        try:
            out2, err2 = second.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            second.kill()
            out2, err2 = second.communicate()
            raise AssertionError(f"a second runner was let in after runner.lock was deleted: {shown(project)}; "
                                 f"its stderr: {err2[-2000:]}") from None
    finally:
        (project.root / "go").touch()
    out1, err1 = finish(first, timeout=30)
    assert second.returncode == 2, (second.returncode, err2[-2000:])
    assert str(first.pid) in err2, err2
    assert first.returncode == 0, err1[-3000:]
    assert [(r["version"], r["status"]) for r in project.runs()] == [("long", "succeeded")], shown(project)


# 6. processes a version starts and forgets are ended with it

LEAK = """
    import subprocess
    sleeper = [sys.executable, '-c', 'import time; time.sleep(600)']
    plain = subprocess.Popen(sleeper + [os.path.join(ROOT, 'leak-plain')])
    detached = subprocess.Popen(sleeper + [os.path.join(ROOT, 'leak-setsid')], start_new_session=True)
    with open(os.path.join(ROOT, 'leaked'), 'w') as f:
        f.write('%d %d' % (plain.pid, detached.pid))
    if os.path.exists(os.path.join(ROOT, 'hang')):
        time.sleep(600)
    """


@pytest.mark.parametrize("ending", ["success", "cancel", "timeout"])
def test_processes_a_version_leaves_behind_are_ended_with_it(project, cleanup, ending):
    project.script("a.py", model_script(LEAK))
    project.configure(["a.py"])
    if ending != "success":
        (project.root / "hang").touch()
    proc = start(project, "-r", *(("--timeout", "3") if ending == "timeout" else ()))
    leaked = project.root / "leaked"
    wait_for(lambda: leaked.exists() and leaked.read_text().strip(), proc=proc, what="the version to leak")
    pids = [int(p) for p in leaked.read_text().split()]
    assert all(pid_alive(pid) for pid in pids)
    if ending == "cancel":
        run = project.runs()[0]
        result = project.run("cancel", str(run["id"]))
        assert result.returncode == 0, result.stderr
    out, err = finish(proc, timeout=30)
    expected = {"success": "succeeded", "cancel": "cancelled", "timeout": "timeout"}[ending]
    assert [r["status"] for r in project.runs()] == [expected], (shown(project), err[-2000:])
    try:
        wait_for(lambda: not any(pid_alive(pid) for pid in pids), timeout=3, what="the leaked processes to end")
    except AssertionError:
        alive = {name: pid for name, pid in zip(("plain child", "setsid child"), pids) if pid_alive(pid)}
        raise AssertionError(f"after the version {expected}, processes it started are still alive: {alive}") from None


def test_processes_an_in_process_version_leaves_behind_are_ended_with_it(project, cleanup, tmp_path):
    """Test mode runs the version in mlpipeline's own process: what it starts
    and forgets (setsid'd or not) still ends with the version."""
    project.script("a.py", model_script(LEAK))
    project.configure(["a.py"])
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:  # a leak would hold a pipe open
        proc = start(project, stdout=out, stderr=err)
        proc.wait(timeout=30)
    assert proc.returncode == 0, (tmp_path / "err").read_text()[-2000:]
    pids = [int(p) for p in (project.root / "leaked").read_text().split()]
    try:
        wait_for(lambda: not any(pid_alive(pid) for pid in pids), timeout=3, what="the leaked processes to end")
    except AssertionError:
        alive = {name: pid for name, pid in zip(("plain child", "setsid child"), pids) if pid_alive(pid)}
        raise AssertionError(f"after the in-process version succeeded, processes it started are still alive: "
                             f"{alive}") from None


# 5. a version holding the GIL in C code dies with its SIGKILLed runner

GIL = """
    import re
    grandchild_file = os.path.join(ROOT, 'grandchild')
    if os.path.exists(os.path.join(ROOT, 'started')):  # run again after the kill
        if os.path.exists(grandchild_file):
            try:  # alive unless gone or a zombie
                state = open('/proc/%s/stat' % open(grandchild_file).read()).read().rsplit(')', 1)[1].split()[0]
            except OSError:
                state = 'gone'
            if state not in ('gone', 'Z'):
                open(os.path.join(ROOT, 'overlap'), 'w').close()
        return
    if os.path.exists(os.path.join(ROOT, 'with-grandchild')):
        import subprocess
        helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)',
                                   os.path.join(ROOT, 'grandchild-proc')], start_new_session=True)
        with open(grandchild_file, 'w') as f:
            f.write(str(helper.pid))
    with open(os.path.join(ROOT, 'started'), 'w') as f:
        f.write(str(os.getpid()))
    re.match(r'(a+)+$', 'a' * 40 + 'b')  # catastrophic backtracking: hours in C, holding the GIL
    """


def start_gil_version(project, with_grandchild=False):
    project.script("gil.py", model_script(GIL))
    project.configure(["gil.py"])
    if with_grandchild:
        (project.root / "with-grandchild").touch()
    runner = start(project, "-r", "-u")
    started = project.root / "started"
    wait_for(lambda: started.exists() and started.read_text(), proc=runner, what="the version to start")
    time.sleep(0.5)  # deep in the regex now
    pid = int(started.read_text())
    runner.kill()
    runner.communicate(timeout=10)
    return pid


def test_version_stuck_in_c_code_dies_with_its_sigkilled_runner(project, cleanup):
    pid = start_gil_version(project)
    try:
        wait_for(lambda: not pid_alive(pid), timeout=2, what="the version's process to die")
    except AssertionError:
        raise AssertionError(f"the version's process {pid} outlived its SIGKILLed runner by 2 s") from None


def test_no_process_of_an_earlier_run_is_alive_when_a_version_starts_again(project, cleanup):
    start_gil_version(project, with_grandchild=True)
    again = start(project, "-r", "-u")
    out, err = finish(again, timeout=30)
    assert again.returncode == 0, err[-3000:]
    statuses = [(r["version"], r["status"]) for r in project.runs()]
    assert statuses[-1] == ("v", "succeeded"), shown(project)
    assert not (project.root / "overlap").exists(), \
        "the version started again while a process of its killed run (a setsid'd helper) was still alive"


# 2. an editor saving an unchanged models.config never ends a batch

@pytest.mark.parametrize("torn", ["empty", "partial"])
def test_saving_an_unchanged_config_in_place_never_ends_the_batch(project, torn):
    versions = {f"v{i}": {"action": "sleep", "seconds": 0.3} for i in range(6)}
    project.script("a.py", tracer(versions))
    project.configure(["a.py"])
    config = project.root / "models.config"
    text = config.read_text()
    # "empty": nothing is on disk mid-save; "partial": the header and an empty list are (a.py not yet)
    head = "" if torn == "empty" else text[:text.index("a.py")]
    stop = threading.Event()
    saves = []

    def editor():
        while not stop.is_set():
            with open(config, "w") as f:  # truncate ...
                f.write(head)
                f.flush()
                time.sleep(0.05)
                f.write(text[len(head):])  # ... then write the rest, as editors and `cat >` do
            saves.append(time.time())
            time.sleep(0.1)               # empty a third of the time, settled for 0.1 s between saves

    thread = threading.Thread(target=editor, name="editor-saving-models.config")
    thread.start()
    try:
        proc = start(project, "-r")
        # save all through the batch; stop once every version ran (a runner may wait for the file to settle)
        try:
            wait_for(lambda: sum(r["status"] == "succeeded" for r in project.runs()) == len(versions) or
                     proc.poll() is not None, timeout=30, what="the batch")
        except AssertionError:
            proc.kill()
            raise AssertionError(f"the batch did not finish in 30 s under {len(saves)} saves: {shown(project)}; "
                                 f"stderr: {proc.communicate()[1][-2000:]}") from None
    finally:
        stop.set()
        thread.join()
    out, err = finish(proc, timeout=15)
    ran = [(r["version"], r["status"]) for r in project.runs()]
    assert ran == [(v, "succeeded") for v in versions], (f"{len(saves)} saves", ran, err[-3000:])
    assert proc.returncode == 0, err[-3000:]
    assert len(saves) > 10, saves  # the test really saved through the batch


# 1. a model script whose import blocks

HANG_IMPORTS = """\
import os, time
with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'loading'), 'w') as _f:
    _f.write(str(os.getpid()))
time.sleep(3600)  # a blocking import: a lock, a network mount, a prompt
"""


def hang_project(project):
    project.script("hang.py", model_script("pass", imports=HANG_IMPORTS))
    project.script("ok.py", model_script("print('trained')"))
    project.configure(["hang.py", "ok.py"])


def test_hanging_import_times_out_and_the_queue_goes_on(project, cleanup):
    hang_project(project)
    began = time.time()
    proc = start(project, "-r", "--timeout", "3")
    out, err = finish(proc, timeout=30)
    took = time.time() - began
    runs = {r["script"]: r for r in project.runs()}
    assert runs.get("models/ok.py", {}).get("status") == "succeeded", (shown(project), err[-3000:])
    hang = runs.get("models/hang.py")
    assert hang and hang["status"] == "failed" and "took longer than" in (hang["error"] or ""), \
        (shown(project), err[-3000:])
    assert proc.returncode == 1, err[-3000:]
    assert took < 15, took
    pid = int((project.root / "loading").read_text())
    wait_for(lambda: not pid_alive(pid), timeout=3, what="the hanging loader to be killed")


def test_hanging_import_times_out_in_test_mode(project, cleanup):
    hang_project(project)
    began = time.time()
    proc = start(project, "--timeout", "3")
    out, err = finish(proc, timeout=20)
    took = time.time() - began
    assert proc.returncode == 1, (proc.returncode, err[-3000:])
    assert any("hang.py" in line and "took longer than" in line for line in err.splitlines()), err[-3000:]
    assert took < 15, took
    pid = int((project.root / "loading").read_text())
    wait_for(lambda: not pid_alive(pid), timeout=3, what="the hanging loader to be killed")


@pytest.mark.parametrize("mode", [("-r",), ()], ids=["execution", "test-mode"])
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c-twice"])
def test_a_runner_stuck_loading_a_script_stops_on_a_signal(project, cleanup, how, mode):
    hang_project(project)
    proc = start(project, *mode)
    loading = project.root / "loading"
    wait_for(lambda: loading.exists() and loading.read_text(), proc=proc, what="the load to hang")
    loader = int(loading.read_text())
    time.sleep(0.3)
    began = time.time()
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the runner ignored {how} while loading a script for 5 s: {err[-2000:]}") from None
    assert time.time() - began < 5
    try:
        wait_for(lambda: not pid_alive(loader), timeout=2, what="the describe child to be gone")
    except AssertionError:
        raise AssertionError(f"the process loading hang.py ({loader}) outlived the runner stopped by {how}") from None
    # test mode may die of the signal itself; a runner says it was interrupted
    assert proc.returncode == 130 or (not mode and proc.returncode == -signal.SIGTERM), \
        (proc.returncode, err[-2000:])
    assert not any(r["status"] == "running" for r in project.runs()), shown(project)


# 7. a busy ledger (another client holding the write lock) is waited out

def test_runner_waits_out_a_ledger_locked_by_another_client(project):
    project.script("a.py", tracer({"v": {"action": "wait"}}))
    project.configure(["a.py"])
    proc = start(project, "-r")
    wait_for(lambda: (project.root / "started-v").exists(), proc=proc, what="the version to start")
    other = sqlite3.connect(project.outputs / "mlpipeline.db", timeout=10, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a second client holds the write lock ...
        (project.root / "go").touch()     # ... while the version finishes
        deadline = time.time() + 8  # four times the writer's 2 s busy timeout: it backs off and waits
        while time.time() < deadline:
            assert proc.poll() is None, f"the runner exited ({proc.returncode}) while the ledger was busy: " \
                                        f"{proc.communicate()[1][-3000:]}"
            time.sleep(0.2)
        other.execute("ROLLBACK")
    finally:
        other.close()
    out, err = finish(proc, timeout=60)
    assert proc.returncode == 0, err[-3000:]
    runs = project.runs()
    assert [(r["version"], r["status"]) for r in runs] == [("v", "succeeded")], (shown(project), err[-3000:])
    assert runs[0]["exit_code"] in (0, None) and runs[0]["signal"] is None, dict(runs[0])


# 12. big log messages are linear; a progress bar does not grow the runner

def log_run_seconds(project, mib):
    project.script("big.py", model_script(f"self.log('x' * ({mib} << 20))"))
    project.configure(["big.py"])
    proc = start(project, "-r", "--timeout", "12", stdout=subprocess.DEVNULL)
    out, err = finish(proc, timeout=60)
    run = project.runs()[-1]
    assert run["status"] == "succeeded", (mib, shown(project)[-1], err[-2000:])
    assert proc.returncode == 0, err[-2000:]
    return run["ended_at"] - run["started_at"]


def test_a_huge_log_message_takes_linear_time(project):
    small = log_run_seconds(project, 32)
    assert small < 5, f"a 32 MiB log message took {small:.1f} s"
    small = min(small, log_run_seconds(project, 32))  # best of two: a run's time is noisy at this size
    large = min(log_run_seconds(project, 64), log_run_seconds(project, 64))
    print(f"32 MiB log message: {small:.2f} s, 64 MiB: {large:.2f} s")
    assert large < 2.5 * max(small, 1.0), f"32 MiB: {small:.1f} s, 64 MiB: {large:.1f} s"


PROGRESS = """
    if os.path.exists(os.path.join(ROOT, 'progress')):
        block = ''.join('progress %8d\\r' % i for i in range(100000))  # 1.8 MB, no newline
        for _ in range(28):  # 50 MB in 2.8 million updates
            sys.stdout.write(block)
            sys.stdout.flush()
        sys.stdout.write('done\\n')
    else:
        time.sleep(1.5)
    """


def peak_runner_mib(project, tmp_path, label):
    with open(tmp_path / f"{label}.out", "w") as output:
        proc = start(project, "-r", "-j", "2", "--timeout", "15", stdout=output)
        with PeakMemory(proc.pid) as memory:
            out, err = finish(proc, timeout=30)
    assert proc.returncode == 0, err[-2000:]
    return memory.peak_kib / 1024


def test_a_carriage_return_progress_bar_does_not_grow_the_runner(project, tmp_path):
    project.script("a.py", model_script(PROGRESS, versions=("one", "two")))
    project.configure(["a.py"])
    baseline = peak_runner_mib(project, tmp_path, "baseline")
    (project.root / "progress").touch()
    bar = peak_runner_mib(project, tmp_path, "progress")
    runs = project.runs()
    print(f"runner peak RSS: {baseline:.0f} MiB without a progress bar, {bar:.0f} MiB with one")
    assert [r["status"] for r in runs] == ["succeeded"] * 4, shown(project)
    assert bar <= baseline + 40, f"runner peak RSS {bar:.0f} MiB with a \\r progress bar, {baseline:.0f} MiB without"


# a version that reports its result but leaves a non-daemon thread running

def test_a_version_that_leaves_a_thread_running_is_recorded_and_the_queue_goes_on(project):
    """Defect (found in review): a version whose train_model started a non-daemon thread (a
    prefetcher that never ends) kept its child process alive after sending its result; the run
    stayed `running` for ever, nothing after it started, and a second Ctrl+C recorded it interrupted
    with its result thrown away."""
    body = """
        import threading
        threading.Thread(target=lambda: time.sleep(10 ** 6), name='forgotten-prefetcher').start()
        """
    project.script("a.py", model_script(body, versions=("v1", "v2")))
    project.configure(["a.py"])
    began = time.monotonic()
    proc = start(project, "-r", env={"MLPIPELINE_TIMINGS": "threads_grace=1"})  # the grace, shortened
    out, err = finish(proc, timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert [(r["version"], r["status"]) for r in project.runs()] == [("v1", "succeeded"), ("v2", "succeeded")]
    assert time.monotonic() - began < 60  # each child left within its grace, not never
    assert not processes_mentioning(str(project.root / "models" / "a.py"))
