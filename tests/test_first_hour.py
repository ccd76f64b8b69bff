"""The first hour with mlpipeline: what a newcomer types and reads. Real CLI
runs on real projects; permissions checked as a real non-root user."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, Project, tracer, wait_for

MLPIPELINE = str(Path(sys.executable).parent / "mlpipeline")
VERSION = "3.0.0.dev0"
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_version_flag_prints_the_version():
    result = subprocess.run([MLPIPELINE, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert VERSION in result.stdout + result.stderr, (result.stdout, result.stderr)


def test_package_version_is_set_in_setup_and_at_runtime():
    assert re.search(r"""version\s*=\s*["']3\.0\.0\.dev0["']""", (REPO / "setup.py").read_text())
    result = subprocess.run([sys.executable, "-c", "import mlpipeline; print(mlpipeline.__version__)"],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == VERSION, (result.stdout, result.stderr)


def test_readme_explains_installing_into_your_own_project():
    headings = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("#")]
    assert any("your own project" in line.lower() for line in headings), headings


def test_run_from_a_subfolder_finds_the_project(project):
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    result = subprocess.run([MLPIPELINE], cwd=project.models, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert any(line.startswith("a.py:v:") for line in project.trace()), (project.trace(), result.stderr[-2000:])
    deeper = project.models / "notes" / "deeper"
    deeper.mkdir(parents=True)
    result = subprocess.run([MLPIPELINE, "runs", "--format", "csv"], cwd=deeper, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "models/a.py" in result.stdout, (result.stdout, result.stderr)


def test_watch_prints_one_idle_line_when_it_starts_waiting(project):
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    proc = subprocess.Popen([MLPIPELINE, "-r", "--watch"], cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), name="watch-output")
    reader.start()
    try:
        wait_for(lambda: project.runs() and project.runs()[0]["status"] == "succeeded", timeout=30,
                 what="the version to succeed")
        try:
            wait_for(lambda: any("waiting for" in line for line in lines), timeout=5, what="an idle line")
        finally:
            time.sleep(2)  # idle a while: still one line
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    idle = [line for line in lines if "waiting for" in line]
    assert len(idle) == 1, "".join(lines)[-2000:]


def test_typo_in_models_config_is_named_in_the_summary_and_fails_the_batch(project):
    project.script("resnet.py", tracer({"v": {}}))
    project.configure(["resnet.py", "resnt.py"])
    first = project.run("-r")
    assert first.returncode == 1, first.stderr[-2000:]
    assert "resnt.py" in first.stderr.strip().splitlines()[-1], first.stderr[-2000:]
    again = project.run("-r", "-u")
    assert again.returncode == 1, again.stderr[-2000:]
    last = again.stderr.strip().splitlines()[-1]
    assert "resnt.py" in last, again.stderr[-2000:]
    assert "every listed version already succeeded" not in again.stderr, again.stderr[-2000:]


def test_tables_fit_the_terminal_and_wide_shows_everything(project):
    long_name = "a_rather_long_script_name_for_an_experiment.py"
    project.script(long_name, tracer({"a_fairly_long_version_name": {"action": "raise"},
                                       "another_fairly_long_version_name": {}}))
    project.configure([long_name])
    project.run("-r")
    narrow = project.run("runs", env={"COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    too_long = [f"{len(line)} chars: {line}" for line in narrow.stdout.splitlines() if len(line) > 80]
    assert not too_long, "\n".join(too_long)
    wide = project.run("runs", "--wide", env={"COLUMNS": "80"})
    assert wide.returncode == 0, wide.stderr
    header = wide.stdout.splitlines()[0].split()
    for column in ("id", "script", "version", "mode", "status", "started", "duration", "metrics", "error"):
        assert column in header, header
    assert "failed on purpose" in wide.stdout, wide.stdout


def test_cancel_is_not_printed_as_an_error(project):
    project.script("a.py", tracer({"long": {"action": "forever"}, "after": {}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    try:
        wait_for(lambda: (project.root / "started-long").exists(), proc=runner, what="the version to start")
        run = project.runs()[0]
        cancel = project.run("cancel", str(run["id"]))
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert cancel.returncode == 0, cancel.stderr
    assert "error" not in (cancel.stdout + cancel.stderr).lower(), (cancel.stdout, cancel.stderr)
    cancelled = [line for line in err.splitlines() if "cancel" in line and "long" in line]
    assert cancelled, err
    assert not any("error:" in line for line in cancelled), cancelled
    assert project.runs()[0]["status"] == "cancelled"


@pytest.fixture
def shared_project():
    """A project in a folder a non-root user can reach (pytest's tmp is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="mlp-perm-", dir="/tmp"))
    os.chmod(folder, 0o755)
    proj = Project(folder / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.script("a.py", tracer({"v": {}}))
    proj.configure(["a.py"])
    yield proj
    shutil.rmtree(folder, ignore_errors=True)


def open_to_all(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)


def as_nobody(project, *args):
    if subprocess.run([*AS_NOBODY, "true"]).returncode != 0:
        pytest.fail("setpriv cannot switch to nobody here")
    return subprocess.run([*AS_NOBODY, MLPIPELINE, *args], cwd=project.root, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "HOME": "/tmp"})


def test_read_only_shm_file_is_named_in_the_error(shared_project):
    import sqlite3

    project = shared_project
    first = project.run("-r")
    assert first.returncode == 0, first.stderr
    open_to_all(project.root)
    shm = project.outputs / "mlpipeline.db-shm"
    shm.unlink(missing_ok=True)
    reader = sqlite3.connect(project.outputs / "mlpipeline.db")  # root's reader creates -shm, 0644, and holds it
    try:
        reader.execute("SELECT count(*) FROM runs").fetchone()
        assert shm.exists()
        os.chmod(shm, 0o644)
        os.chmod(project.outputs / "mlpipeline.db-wal", 0o666)
        result = as_nobody(project, "-r")
    finally:
        reader.close()
    assert result.returncode != 0, result.stderr
    assert "mlpipeline.db-shm" in result.stderr, result.stderr
    assert "free some space" not in result.stderr, result.stderr


def test_ledger_owned_by_another_user_is_named_in_the_error(shared_project):
    project = shared_project
    first = project.run("-r")
    assert first.returncode == 0, first.stderr
    open_to_all(project.root)
    os.chmod(project.outputs / "mlpipeline.db", 0o644)  # root's; -wal and -shm (if any) writable by all
    result = as_nobody(project, "-r")
    assert result.returncode != 0, result.stderr
    assert "free some space" not in result.stderr, result.stderr
    assert re.search(r"mlpipeline\.db(?!-)", result.stderr), result.stderr
    assert "permission" in result.stderr.lower() or "read-only" in result.stderr.lower() or \
        "readonly" in result.stderr.lower(), result.stderr
