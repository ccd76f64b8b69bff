"""Readers (runs, show, compare, logs, metrics, status) never write, work on a project they cannot
write, and derive a dead runner's runs as interrupted; the runner lock is never stolen by a reader;
--timeout in test mode; cancel, pause and resume return at once and are acted on."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from helpers import Project, pid_alive, tracer, wait_for

READERS = (("runs",), ("show", "1"), ("show", "2"), ("status",), ("compare", "a.py"), ("logs", "1"),
           ("metrics", "1"))


def cli_json(project, *args):
    result = project.run(*args, "--format", "json")
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return json.loads(result.stdout)


def ledger_state(project) -> tuple:
    """The ledger file's bytes (hashed) and the size of its WAL (None: no WAL)."""
    db = project.outputs / "mlpipeline.db"
    wal = Path(str(db) + "-wal")
    return hashlib.sha256(db.read_bytes()).hexdigest(), wal.stat().st_size if wal.exists() else None


def kill_runner(runner, child_pid, sig=signal.SIGKILL) -> None:
    """Signal the runner; then make sure neither it nor its version child's process group lingers."""
    runner.send_signal(sig)
    try:
        runner.communicate(timeout=15)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=10)
        if child_pid:
            try:
                os.killpg(child_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for(lambda: not pid_alive(child_pid), timeout=10, what="the version child to exit")


def read_runs(project) -> list:
    """The runs table, through a read-only connection closed at once: a connection this process left open
    (Project.runs leaves its own to the garbage collector) would checkpoint the WAL when it is collected,
    changing the very bytes these tests watch."""
    path = project.outputs / "mlpipeline.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    except sqlite3.OperationalError as exc:  # the runner created the file but not yet its tables
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def stored_status(project, run_id: int) -> str:
    """A run's status as recorded (not derived)."""
    return next(r["status"] for r in read_runs(project) if r["id"] == run_id)


def start_stuck_runner(project):
    """A runner whose first version succeeds (with metrics) and whose second runs forever."""
    project.script("a.py", tracer({"done": {}, "stuck": {"action": "forever"}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: (project.root / "started-stuck").exists(), proc=runner, what="the stuck version to start")
    child = wait_for(lambda: next((r["child_pid"] for r in read_runs(project) if r["version"] == "stuck"
                                   and r["child_pid"]), None), proc=runner, what="the child pid")
    return runner, child


@pytest.fixture
def dead_runner(project):
    """A project whose runner was SIGKILLed while version 'stuck' (run 2) ran; nobody ran status since."""
    runner, child = start_stuck_runner(project)
    kill_runner(runner, child)
    return project


# --- 1. readers never write -------------------------------------------------------------------------


def test_readers_leave_the_ledger_bytes_and_wal_alone_after_a_runner_died(dead_runner):
    """Defect: opening the ledger wrote (migrations, checkpoints) and status marked runs interrupted."""
    before = ledger_state(dead_runner)
    assert before[1], "a SIGKILLed runner leaves a WAL behind; this test needs one"
    for args in READERS:
        for fmt in ("json", "table"):
            if args[0] == "logs" and fmt == "json":
                continue
            result = dead_runner.run(*args, *(("--format", fmt) if args[0] != "logs" else ()))
            assert result.returncode == 0, f"{args}: {result.stderr}"
            assert ledger_state(dead_runner) == before, f"mlpipeline {' '.join(args)} --format {fmt} wrote the ledger"
    assert stored_status(dead_runner, 2) == "running"  # status did not record the interruption it reports


def test_status_reports_a_dead_runner_without_recording_anything(dead_runner):
    """Defect: status wrote: it marked a dead runner's runs interrupted (and took the lock to learn who lived)."""
    before = ledger_state(dead_runner)
    for _ in range(3):
        state = cli_json(dead_runner, "status")
        assert state["runner"]["alive"] is False and state["running"] == []
        assert state["interrupted"] == [2]
        assert ledger_state(dead_runner) == before
    assert stored_status(dead_runner, 2) == "running"


# --- 1b. readers work for another user, and in a read-only folder --------------------------------------

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="acting as another user needs root and setpriv")


@pytest.fixture
def public_project():
    """A project in a folder every user may traverse (pytest's tmp root is private to its owner)."""
    root = Path(tempfile.mkdtemp(prefix="mlp-public-"))
    os.chmod(root, 0o755)
    proj = Project(root / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True, exist_ok=True)
    yield proj
    for folder, dirs, _ in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root)


def make_read_only(root: Path) -> None:
    """Everyone may read the project; no one but root may change it."""
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)


def run_as_nobody(project, *args):
    env = {**os.environ, "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*NOBODY, sys.executable, "-m", "mlpipeline", "-C", str(project.root), *args],
                          cwd="/", capture_output=True, text=True, timeout=60, env=env)


def check_readers(run, expected_statuses) -> None:
    """Every reader answers, in JSON where it can, with the runs as they stand."""
    listed = run("runs", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["version"], r["status"]) for r in json.loads(listed.stdout)] == expected_statuses
    shown = run("show", "1", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"] == "done"
    status = run("status", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["runner"]["alive"] is False
    compared = run("compare", "a.py", "--format", "json")
    assert compared.returncode == 0, compared.stderr
    assert {r["version"] for r in json.loads(compared.stdout)} == {v for v, _ in expected_statuses}
    logs = run("logs", "1")
    assert logs.returncode == 0 and "version done: training" in logs.stdout, logs.stderr
    metrics = run("metrics", "1", "--format", "json")
    assert metrics.returncode == 0, metrics.stderr
    assert {(m["split"], m["name"]) for m in json.loads(metrics.stdout)} >= {("test", "score")}


@needs_root
def test_readers_work_for_another_user_on_a_read_only_project(public_project):
    """Defect: runs, show and status failed on a read-only project or for another user."""
    project = public_project
    project.script("a.py", tracer({"done": {}, "second": {}}))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    make_read_only(project.root)
    before = ledger_state(project)
    check_readers(lambda *a: run_as_nobody(project, *a), [("second", "succeeded"), ("done", "succeeded")])
    assert ledger_state(project) == before


@needs_root
def test_another_user_reads_what_a_killed_runner_left_in_the_wal(public_project):
    """Defect: readers failed for another user; a killed runner's WAL (and -shm) are not theirs to write."""
    project = public_project
    runner, child = start_stuck_runner(project)
    kill_runner(runner, child)
    assert ledger_state(project)[1], "a SIGKILLed runner leaves a WAL behind; this test needs one"
    make_read_only(project.root)
    before = ledger_state(project)
    check_readers(lambda *a: run_as_nobody(project, *a), [("stuck", "interrupted"), ("done", "succeeded")])
    assert ledger_state(project) == before


@needs_root
def test_another_user_reads_the_wal_of_a_project_copied_without_its_shm(public_project):
    """Defect: readers failed for another user; with no -shm to share (a copy or backup that skipped it) the
    runs still in a killed runner's WAL must be read, not reported as an empty ledger or left out."""
    project = public_project
    runner, child = start_stuck_runner(project)
    kill_runner(runner, child)
    assert ledger_state(project)[1], "a SIGKILLed runner leaves a WAL behind; this test needs one"
    (project.outputs / "mlpipeline.db-shm").unlink()
    make_read_only(project.root)
    listed = run_as_nobody(project, "runs", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["version"], r["status"]) for r in json.loads(listed.stdout)] == [("stuck", "interrupted"),
                                                                                ("done", "succeeded")]


needs_mount = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                 reason="a read-only bind mount needs root and unshare")


def run_in_read_only_mount(project, *args):
    """Run mlpipeline (as root) where the project folder is a read-only bind mount of itself,
    in a private mount namespace that ends with the command."""
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                           str(project.root), sys.executable, "-m", "mlpipeline", "-C", str(project.root), *args],
                          capture_output=True, text=True, timeout=60)


@needs_mount
@pytest.mark.parametrize("runner_killed", [False, True], ids=["clean", "after-sigkill"])
def test_readers_work_in_a_read_only_mount(project, runner_killed):
    """Defect: readers failed on a read-only project (they opened the ledger for writing)."""
    if runner_killed:
        runner, child = start_stuck_runner(project)
        kill_runner(runner, child)
        expected = [("stuck", "interrupted"), ("done", "succeeded")]
    else:
        project.script("a.py", tracer({"done": {}, "second": {}}))
        project.configure(["a.py"])
        assert project.run("-r").returncode == 0
        expected = [("second", "succeeded"), ("done", "succeeded")]
    probe = run_in_read_only_mount(project, "--help")
    assert probe.returncode == 0, f"cannot make a read-only bind mount here: {probe.stderr}"
    before = ledger_state(project)
    check_readers(lambda *a: run_in_read_only_mount(project, *a), expected)
    assert ledger_state(project) == before


# --- 1c. a reader never takes the runner lock ----------------------------------------------------------

STATUS_LOOP = textwrap.dedent("""\
    import contextlib, io, sys
    from mlpipeline.cli import main
    root, marker = sys.argv[1], sys.argv[2]
    count = 0
    while True:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["-C", root, "status", "--format", "json"]) == 0
        count += 1
        if count == 20:
            open(marker, "w").close()
    """)


def test_acquiring_the_lock_is_never_refused_while_status_polls(project, tmp_path):
    """Defect: status tested the lock by taking it, so 213 of 3 000 acquires were refused with no runner alive."""
    from mlpipeline.store.lock import LockHeld, RunnerLock

    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0  # a ledger and a runner row for status to look at
    marker = tmp_path / "polling"
    pollers = [subprocess.Popen([sys.executable, "-c", STATUS_LOOP, str(project.root), str(marker)])
               for _ in range(2)]
    try:
        wait_for(marker.exists, timeout=30, what="status to be polling")
        lock = RunnerLock(str(project.outputs))
        refused = 0
        for _ in range(3000):
            try:
                lock.acquire("here", "run")
            except LockHeld:
                refused += 1
            else:
                lock.release()
        assert all(p.poll() is None for p in pollers), "a status loop died"
    finally:
        for p in pollers:
            p.kill()
            p.wait(timeout=10)
    assert refused == 0, f"{refused} of 3000 acquires refused while status polled, with no runner alive"


IN_CLOSE_WRITE, IN_NONBLOCK = 0x8, 0x800


def close_write_events(folder: Path, act) -> list:
    """The names in ``folder`` of files that were opened for writing (and closed) while ``act()`` ran,
    as the kernel's inotify reports them."""
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_NONBLOCK)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        assert libc.inotify_add_watch(fd, str(folder).encode(), IN_CLOSE_WRITE) >= 0
        act()
        names, data = [], b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            data += chunk
        while data:
            _, mask, _, length = struct.unpack_from("iIII", data)
            names.append(data[16:16 + length].rstrip(b"\0").decode())
            data = data[16 + length:]
        return names
    finally:
        os.close(fd)


def test_status_never_opens_the_runner_lock_for_writing(project):
    """Defect: status checked the lock by taking it (opened runner.lock read-write and flock'd it)."""
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    assert (project.outputs / "runner.lock").exists()
    control = close_write_events(project.outputs, lambda: (project.outputs / "runner.lock").open("r+").close())
    assert control == ["runner.lock"]  # the watch sees a write-open of the lock
    seen = close_write_events(project.outputs, lambda: [cli_json(project, "status") for _ in range(3)])
    assert "runner.lock" not in seen, seen
    assert "mlpipeline.db" not in seen, seen  # nor the ledger itself (SQLite may open its -wal and -shm read-write)


# --- 2. a dead runner's runs read interrupted, without anyone running status ---------------------------


def check_reads_interrupted(project) -> None:
    first = {r["version"]: r for r in cli_json(project, "runs")}
    assert first["stuck"]["status"] == "interrupted" and first["stuck"]["ended_at"] is not None
    assert first["done"]["status"] == "succeeded"
    time.sleep(1.0)
    again = {r["version"]: r for r in cli_json(project, "runs")}
    assert again["stuck"]["duration"] == first["stuck"]["duration"], "the duration of a dead run still grows"
    shown = cli_json(project, "show", "2")
    assert shown["status"] == "interrupted" and shown["ended_at"] is not None
    table = project.run("show", "2")
    assert "interrupted" in table.stdout and "running" not in table.stdout.split("error")[0]
    compared = {r["version"]: r for r in cli_json(project, "compare", "a.py")}
    assert compared["stuck"]["status"] == "interrupted"
    began = time.time()
    follower = project.start("logs", "2", "-f")
    try:
        out, err = follower.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        follower.kill()
        follower.communicate()
        raise AssertionError("logs -f kept following the run of a dead runner")
    assert follower.returncode == 0, err
    assert time.time() - began < 5
    assert stored_status(project, 2) == "running"  # all of that was derived at read time, nothing recorded


def test_runs_show_compare_and_logs_follow_see_a_sigkilled_runner_as_interrupted(dead_runner):
    """Defect: after a runner died, its run read `running` forever, growing, and logs -f never returned."""
    check_reads_interrupted(dead_runner)


def test_logs_follow_started_before_the_runner_died_returns(project):
    """Defect: `logs -f` on a run whose runner then died never returned."""
    runner, child = start_stuck_runner(project)
    follower = project.start("logs", "2", "-f")
    try:
        time.sleep(0.8)
        assert follower.poll() is None  # still following a run that truly runs
        kill_runner(runner, child)
        out, err = follower.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError("logs -f kept following after the runner died")
    finally:
        for proc in (follower, runner):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert follower.returncode == 0, err
    assert "version stuck: training" in out


def test_after_sighup_the_run_reads_running_only_while_its_runner_lives(project):
    """Defect: SIGHUP killed the runner and its run then read `running` until someone ran status."""
    runner, child = start_stuck_runner(project)
    try:
        runner.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        if runner.poll() is None:  # the runner now takes SIGHUP as a warm stop: its run is truly running
            state = cli_json(project, "status")
            assert state["runner"]["alive"] and [r["id"] for r in state["running"]] == [2]
            assert {r["version"]: r["status"] for r in cli_json(project, "runs")}["stuck"] == "running"
            runner.kill()  # then it dies hard, as in a lost terminal that escalates
        kill_runner(runner, child)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    check_reads_interrupted(project)


def test_a_sigkilled_test_session_leaves_its_run_interrupted(project):
    """Defect: a test session (an in-process runner) that died left its run `running` forever."""
    project.script("a.py", tracer({"done": {}, "stuck": {"action": "forever"}}))
    project.configure(["a.py"])
    session = project.start()
    wait_for(lambda: (project.root / "started-stuck").exists(), proc=session)
    session.kill()
    session.communicate(timeout=10)
    listed = {r["version"]: r for r in cli_json(project, "runs")}
    assert listed["stuck"]["status"] == "interrupted" and listed["stuck"]["mode"] == "test"
    assert cli_json(project, "show", "2")["status"] == "interrupted"
    follower = project.start("logs", "2", "-f")
    try:
        follower.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        follower.kill()
        follower.communicate()
        raise AssertionError("logs -f kept following the run of a dead test session")


@pytest.mark.parametrize("mode", ["test", "run"])
def test_a_dead_runners_run_reads_about_as_long_as_it_ran(project, mode):
    """Defect: a dead runner's run read `running` with a growing duration; derived, it ends at its last
    heartbeat, which must be recent (a test session that never heartbeats reads 0 s after minutes)."""
    project.script("a.py", tracer({"stuck": {"action": "forever"}}))
    project.configure(["a.py"])
    session = project.start(*(("-r",) if mode == "run" else ()))
    wait_for(lambda: (project.root / "started-stuck").exists(), proc=session)
    time.sleep(5.0)
    child = read_runs(project)[0]["child_pid"]
    kill_runner(session, child)
    run = cli_json(project, "runs")[0]
    assert (run["mode"], run["status"]) == (mode, "interrupted")
    assert run["duration"] >= 3.0, f"ran 5 s, reads {run['duration']} s"


def test_liveness_reads_a_reused_pid_as_interrupted(tmp_path):
    """Defect: liveness trusted a bare pid; a live process that reused the runner's pid is someone else."""
    from mlpipeline.store.ledger import Ledger, Mode
    from mlpipeline.store.liveness import Liveness
    from mlpipeline.outputs import hostname
    from mlpipeline.proc.system import process_start

    ledger = Ledger(str(tmp_path / "mlpipeline.db"))
    me, started = os.getpid(), process_start()
    assert started is not None
    runners = {}
    for name, pid_start in (("mine", started), ("reused", started + 1)):
        runner_id = ledger.register_runner(Mode.RUN, hostname(), {}, pid_start)
        runners[name] = ledger.start_run(script="models/a.py", version=name, mode=Mode.RUN, host=hostname(),
                                         pid=me, pid_start=pid_start, runner_id=runner_id)
    loose = {name: ledger.start_run(script="models/b.py", version=name, mode=Mode.TEST, host=hostname(),
                                    pid=me, pid_start=pid_start)
             for name, pid_start in (("mine", started), ("reused", started + 1))}
    liveness = Liveness(ledger.conn, host=hostname())
    for rows in (runners, loose):
        assert liveness.derive(rows["mine"])["status"] == "running"
        derived = liveness.derive(rows["reused"])
        assert derived["status"] == "interrupted" and derived["ended_at"] is not None
    ledger.close()


# --- 3. --timeout in test mode ---------------------------------------------------------------------------


def test_timeout_ends_a_version_in_test_mode(project):
    """Defect: --timeout was silently ignored in-process (test mode)."""
    project.script("slow.py", tracer({"slow": {"action": "sleep", "seconds": 60}}))
    path = project.models / "slow.py"
    path.write_text(path.read_text().replace(
        '                    time.sleep(self.version["seconds"])',
        '                    deadline = time.time() + self.version["seconds"]\n'
        '                    while time.time() < deadline:\n'
        '                        time.sleep(0.05)'))
    assert "time.sleep(0.05)" in path.read_text()
    project.configure(["slow.py"])
    began = time.time()
    session = project.start("--timeout", "1")
    try:
        out, err = session.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        session.kill()
        session.communicate()
        raise AssertionError("test mode ignored --timeout: the version still ran after 15 s")
    assert time.time() - began < 10, "test mode ignored --timeout"
    assert session.returncode == 1, err
    assert [(r["version"], r["mode"], r["status"]) for r in read_runs(project)] == [("slow", "test", "timeout")]


# --- 4. cancel, pause and resume return at once --------------------------------------------------------


def test_cancel_returns_at_once_and_the_run_ends_cancelled(project):
    """Defect: cancel waited (up to 15 s) for the runner and wrote the run itself."""
    project.script("a.py", tracer({"stuck": {"action": "forever"}, "next": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    try:
        wait_for(lambda: (project.root / "started-stuck").exists(), proc=runner)
        began = time.time()
        result = project.run("cancel", "1")
        took = time.time() - began
        assert result.returncode == 0, result.stderr
        assert "cancel requested" in result.stdout
        assert took < 1.0, f"cancel took {took:.2f} s"
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert [(r["version"], r["status"]) for r in read_runs(project)] == [("stuck", "cancelled"), ("next", "succeeded")]


def test_pause_holds_the_queue_and_resume_lets_it_go_on(project):
    """Defect: no way to pause a runner: the running version finishes, nothing new starts until resume."""
    project.script("a.py", tracer({"first": {"action": "wait"}, "second": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    try:
        wait_for(lambda: (project.root / "started-first").exists(), proc=runner)
        began = time.time()
        paused = project.run("pause")
        assert paused.returncode == 0 and "pause requested" in paused.stdout, paused.stderr
        assert time.time() - began < 1.0
        wait_for(lambda: cli_json(project, "status")["runner"]["paused"], timeout=10, proc=runner,
                 what="status to show the runner paused")
        (project.root / "go").touch()
        wait_for(lambda: [r["status"] for r in read_runs(project)] == ["succeeded"], timeout=30, proc=runner,
                 what="the running version to finish")
        time.sleep(1.5)
        assert [r["version"] for r in read_runs(project)] == ["first"], "a version started while paused"
        state = cli_json(project, "status")
        assert state["runner"]["alive"] and state["runner"]["paused"] is True
        assert [(q["version"], q["state"]) for q in state["queue"] if q["version"] == "second"] == [("second", "queued")]
        resumed = project.run("resume")
        assert resumed.returncode == 0 and "resume requested" in resumed.stdout, resumed.stderr
        out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert [(r["version"], r["status"]) for r in read_runs(project)] == [("first", "succeeded"), ("second", "succeeded")]


def test_status_queue_while_paused_shows_what_ended_as_ended(project):
    """Defect: status must tell what runs now; while paused, a version that finished or was cancelled still
    read `running` in the queue (the snapshot was only refreshed when scheduling)."""
    project.script("a.py", tracer({"first": {"action": "wait"}, "stuck": {"action": "forever"}, "third": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    try:
        wait_for(lambda: (project.root / "started-first").exists(), proc=runner)
        assert project.run("pause").returncode == 0
        wait_for(lambda: cli_json(project, "status")["runner"]["paused"], timeout=10, proc=runner)
        (project.root / "go").touch()
        wait_for(lambda: [r["status"] for r in read_runs(project)] == ["succeeded"], timeout=30, proc=runner)
        time.sleep(1.0)
        state = cli_json(project, "status")
        assert state["running"] == []
        assert [(q["version"], q["state"]) for q in state["queue"] if q["state"] == "running"] == [], state["queue"]
        assert project.run("resume").returncode == 0
        wait_for(lambda: (project.root / "started-stuck").exists(), proc=runner)
        assert project.run("pause").returncode == 0
        wait_for(lambda: cli_json(project, "status")["runner"]["paused"], timeout=10, proc=runner)
        assert project.run("cancel", "2").returncode == 0
        wait_for(lambda: [r["status"] for r in read_runs(project)] == ["succeeded", "cancelled"], timeout=30,
                 proc=runner)
        time.sleep(1.0)
        state = cli_json(project, "status")
        assert state["running"] == [] and len(read_runs(project)) == 2  # cancelled, and nothing new started
        assert [(q["version"], q["state"]) for q in state["queue"] if q["state"] == "running"] == [], state["queue"]
        assert project.run("resume").returncode == 0
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert [(r["version"], r["status"]) for r in read_runs(project)] == [("first", "succeeded"), ("stuck", "cancelled"),
                                                                     ("third", "succeeded")]
