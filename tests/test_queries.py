"""runs / show / compare / logs over real runs, in every format (DESIGN §6)."""
from __future__ import annotations

import csv
import io
import json
import os
import pty
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import tracer
from mlpipeline.store.ledger import MIGRATIONS, Ledger


@pytest.fixture
def ran(project):
    """A project with succeeded, failed, killed and metric-less runs."""
    project.script("a.py", tracer({"ok": {"seed": 7}, "bad": {"action": "raise"}, "killed": {"action": "sigkill"}},
                                  defaults=", lr=0.1"))
    project.script("quiet.py", """\
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions
        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1
        class M(Model):
            def train_model(self, input_fn, steps): print("quiet training")
            def evaluate_model(self, input_fn, steps): return None
        v = Versions(L(), 1, 1)
        v.add_version("nometrics")
        MODEL = M(v)
        """)
    project.configure(["a.py", "quiet.py"])
    assert project.run("-r").returncode == 1
    return project


def cli_json(project, *args):
    result = project.run(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_in_all_formats_round_trip(ran):
    rows = cli_json(ran, "runs")
    assert [(r["version"], r["status"]) for r in rows] == [
        ("nometrics", "succeeded"), ("killed", "failed"), ("bad", "failed"), ("ok", "succeeded")]
    by_version = {r["version"]: r for r in rows}
    with ran.db() as conn:
        for row in conn.execute("SELECT * FROM runs"):
            listed = by_version[row["version"]]
            for key in ("id", "uid", "script", "status", "started_at", "ended_at", "exit_code", "signal"):
                assert listed[key] == row[key], key
        stored = {(r["split"], r["name"]): r["value"] for r in conn.execute(
            "SELECT * FROM metrics WHERE run_id = ?", (by_version["ok"]["id"],))}
    assert by_version["ok"]["metrics"] == {f"{s}/{n}": v for (s, n), v in stored.items()}
    assert by_version["nometrics"]["metrics"] == {}
    assert by_version["killed"]["signal"] == 9 and "SIGKILL" in by_version["killed"]["error"]

    table = ran.run("runs")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["id", "script", "version", "mode", "status"]
    assert "killed" in table.stdout and "test/score=9" in table.stdout and "\x1b[" not in table.stdout

    parsed = list(csv.DictReader(io.StringIO(ran.run("runs", "--format", "csv").stdout)))
    assert [r["version"] for r in parsed] == ["nometrics", "killed", "bad", "ok"]
    assert json.loads(parsed[3]["metrics"]) == by_version["ok"]["metrics"]
    assert float(parsed[3]["started_at"]) == by_version["ok"]["started_at"]


def test_runs_filters(ran):
    assert [r["version"] for r in cli_json(ran, "runs", "--status", "failed")] == ["killed", "bad"]
    assert [r["version"] for r in cli_json(ran, "runs", "--script", "quiet")] == ["nometrics"]
    assert [r["version"] for r in cli_json(ran, "runs", "--script", "models/a.py", "--version", "ok")] == ["ok"]
    assert len(cli_json(ran, "runs", "--limit", "2")) == 2
    assert cli_json(ran, "runs", "--mode", "test") == []
    assert len(cli_json(ran, "runs", "--since", "1h")) == 4
    assert cli_json(ran, "runs", "--since", "2999-01-01") == []
    bad = ran.run("runs", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since 'yesterday-ish': not a date" in bad.stderr


def test_show_everything_about_a_run(ran):
    ok = next(r for r in cli_json(ran, "runs") if r["version"] == "ok")
    record = cli_json(ran, "show", str(ok["id"]))
    assert record["params"]["seed"] == 7 and record["params"]["lr"] == 0.1
    assert record["seed"] == "7"
    assert {(m["split"], m["name"], m["last"], m["best"]) for m in record["metrics"]} == {
        ("train", "score", 6.0, 6.0), ("test", "score", 9.0, 9.0)}
    assert record["log_path"].endswith(f"runs/{ok['id']}/output.log") and os.path.exists(record["log_path"])
    assert record["model_dir"].endswith("model_ckpts/a-ok")
    assert record["python_version"].startswith("CPython 3.")
    assert record["packages"]["mlpipeline"]
    assert record["host"] and record["command"] == "mlpipeline -r"
    bad = next(r for r in cli_json(ran, "runs") if r["version"] == "bad")
    shown = ran.run("show", bad["uid"][:10])
    assert shown.returncode == 0
    assert "status:" in shown.stdout and "failed" in shown.stdout
    assert "ValueError: version bad failed on purpose" in shown.stdout
    assert "Traceback (most recent call last)" in shown.stdout
    rows = list(csv.reader(io.StringIO(ran.run("show", str(bad["id"]), "--format", "csv").stdout)))
    assert rows[0] == ["field", "value"] and ["status", "failed"] in rows


def test_run_reference_errors(ran):
    missing = ran.run("show", "999")
    assert missing.returncode == 2 and "run '999' not found" in missing.stderr
    junk = ran.run("show", "not-hex!")
    assert junk.returncode == 2 and "give a run id" in junk.stderr
    with ran.db() as conn:  # two uids sharing a prefix
        conn.execute("UPDATE runs SET uid = 'abcd' || substr(uid, 5) WHERE id IN (1, 2)")
    ambiguous = ran.run("show", "abc")
    assert ambiguous.returncode == 2 and "'abc' is ambiguous" in ambiguous.stderr
    assert "1 (abcd" in ambiguous.stderr and "2 (abcd" in ambiguous.stderr
    assert cli_json(ran, "show", "2")["id"] == 2  # digits name a run id first


def test_compare_versions(ran):
    result = cli_json(ran, "compare", "a.py")
    assert [(r["version"], r["status"]) for r in result] == [("ok", "succeeded"), ("bad", "failed"),
                                                              ("killed", "failed")]
    assert result[0]["test/score"] == 9.0 and result[1]["test/score"] is None
    assert "seed" in result[0]            # differs across versions (7 vs unset)
    assert "lr" not in result[0]          # the same everywhere: not a column
    only = cli_json(ran, "compare", "a", "--metric", "score")
    assert set(only[0]) == {"version", "run", "status", "action", "seed", "test/score", "train/score"}
    table = ran.run("compare", "a.py", "--sort", "test/score", "--desc")
    assert table.returncode == 0 and table.stdout.splitlines()[2].split()[0] == "ok"
    csv_rows = list(csv.DictReader(io.StringIO(ran.run("compare", "a.py", "--format", "csv").stdout)))
    assert csv_rows[0]["version"] == "ok"
    unknown = ran.run("compare", "nothere.py")
    assert unknown.returncode == 2 and "no runs of it are recorded" in unknown.stderr


def test_compare_shows_latest_success_over_a_later_failure(project):
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    assert project.run("-r").returncode == 0
    path = project.models / "a.py"
    path.write_text(path.read_text().replace("versions.add_version('v', )", "versions.add_version('v', action='raise')"))
    assert project.run("-r").returncode == 1
    rows = cli_json(project, "compare", "a.py")
    assert [(r["version"], r["run"], r["status"]) for r in rows] == [("v", 1, "succeeded")]


def test_logs_shows_and_follows_captured_output(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.configure(["a.py"])
    runner = project.start("-r")
    deadline = time.time() + 60
    while not (project.root / "started-waits").exists():
        assert time.time() < deadline and runner.poll() is None
        time.sleep(0.05)
    follower = project.start("logs", "1", "-f")
    time.sleep(0.5)
    assert follower.poll() is None  # still following the running version
    (project.root / "go").touch()
    out, err = follower.communicate(timeout=60)
    runner.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert "version waits: training 2 steps" in out
    assert "eval on test set: score: 9.0000" in out  # written after -f started: it followed to the end
    assert project.run("logs", "1").stdout == out


def test_older_ledger_is_read_as_is_and_migrated_only_by_the_writer(project):
    project.outputs.mkdir(parents=True)
    path = project.outputs / "mlpipeline.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, script in MIGRATIONS[:2]:
            conn.executescript(script)
            conn.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
        conn.execute("INSERT INTO runs (uid, script, version, mode, status, host, started_at, ended_at) "
                     "VALUES ('abc123', 'models/old.py', 'v0', 'run', 'succeeded', 'h', 1.0, 2.0)")
        conn.execute("INSERT INTO metrics (run_id, split, name, step, value, recorded_at) "
                     "VALUES (1, 'test', 'acc', NULL, 0.5, 2.0)")
    before = path.read_bytes()
    rows = cli_json(project, "runs")
    assert [(r["script"], r["version"], r["status"]) for r in rows] == [("models/old.py", "v0", "succeeded")]
    shown = cli_json(project, "show", "1")
    assert [(m["name"], m["last"], m["points"]) for m in shown["metrics"]] == [("acc", 0.5, 1)]
    assert path.read_bytes() == before  # readers never migrate or write
    Ledger(str(path)).close()  # the writer (a runner, a test session) migrates
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        summary = conn.execute("SELECT name, count, last, has_final, final FROM metric_summary").fetchall()
    assert names == [name for name, _ in MIGRATIONS]
    assert {"git_commit", "packages", "source", "fingerprint"} <= columns
    assert summary == [("acc", 0, None, 1, 0.5)]  # a step-less value is the run's result, no curve point


def test_newer_ledger_is_refused_by_the_cli(project):
    Ledger(str(project.outputs / "mlpipeline.db")).close()
    with sqlite3.connect(project.outputs / "mlpipeline.db") as conn:
        conn.execute("INSERT INTO migrations VALUES ('9999_from_the_future', 0)")
    result = project.run("runs")
    assert result.returncode == 2
    assert "written by a newer mlpipeline (schema 9999_from_the_future); upgrade mlpipeline" in result.stderr


def _in_pty(project, *args, env=None):
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", *args], cwd=project.root, stdout=follower,
                            stderr=subprocess.PIPE, env=env or dict(os.environ))
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color(ran):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    coloured = _in_pty(ran, "runs", env=env)
    assert "\x1b[32msucceeded" in coloured and "\x1b[31mfailed" in coloured
    plain = _in_pty(ran, "runs", env={**env, "NO_COLOR": "1"})
    assert "succeeded" in plain and "\x1b[" not in plain


def test_compare_a_training_curve_metric(project):
    project.script("c.py", """\
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions
        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 3
            def get_test_sample_count(self): return 1
        class M(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode="test"): self.rate = version["rate"]
            def train_model(self, input_fn, steps):
                for step in range(steps):
                    self.log_metric("loss", self.rate / (step + 1), step=step)
            def evaluate_model(self, input_fn, steps): return {"acc": 1.0}
        v = Versions(L(), 1, 1)
        v.add_version("slow", rate=1.0)
        v.add_version("fast", rate=3.0)
        MODEL = M(v)
        """)
    project.configure(["c.py"])
    assert project.run("-r").returncode == 0
    rows = cli_json(project, "compare", "c.py", "--metric", "loss")
    assert [(r["version"], r["train/loss (last)"]) for r in rows] == [("slow", 1.0 / 3), ("fast", 1.0)]
