"""Tags, notes, delete, gc and keep-best-N from the CLI (with and without a live runner), the dashboard's
curation API, and ``mlpipeline.runs()`` / ``curves()`` — over ledgers written by real runs."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from helpers import tracer, wait_for
from mlpipeline.cli import main

ACCURACY = [0.5, 0.9, 0.7, 0.95, 0.6, 0.8]  # of versions v0 ... v5
SCRIPT = """\
    import os
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    class M(Model):
        def pre_execution_hook(self, version, model_dir, exec_mode="test"):
            self.version, self.model_dir = version, model_dir

        def train_model(self, input_fn, steps):
            for step in range(3):
                self.log_metric("loss", 1.0 / (step + 1), step=step)
            with open(os.path.join(self.model_dir, "weights.txt"), "w") as handle:
                handle.write(self.version["name"])
            self.save_output("own", {"version": self.version["name"]})
            self.save_output("shared", [1, 2, 3])

        def evaluate_model(self, input_fn, steps):
            return {"accuracy": self.version["acc"]}

    versions = Versions(L(), 1, 1)
    for i, acc in enumerate(%r):
        versions.add_version("v%%d" %% i, acc=acc)
    MODEL = M(versions)
    """ % (ACCURACY,)


@pytest.fixture
def ran(project):
    """Six succeeded runs of s.py (ids 1 ... 6 = versions v0 ... v5), each with a model dir, a run
    folder, a curve, a test/accuracy result and two cached outputs (one shared by all of them)."""
    project.script("s.py", SCRIPT)
    project.configure(["s.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 0, result.stderr
    return project


def mlp(project, *args, rc=0, stdin=""):
    """``mlpipeline -C PROJECT ARGS`` (its exit status checked): the batch (``-r``) in a child process, the
    curation and query commands in this one, through ``cli.main`` as the command line calls it (a child's
    start would cost each of them a third of a second)."""
    if "-r" in args:
        result = project.run(*args)
    else:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                mock.patch.object(sys, "stdin", io.StringIO(stdin)), mock.patch.dict(os.environ, {"COLUMNS": ""}):
            code = main(["-C", str(project.root), *args])
        result = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    assert result.returncode == rc, (result.returncode, result.stdout, result.stderr)
    return result


def listed(project, *args):
    return [r["id"] for r in json.loads(mlp(project, "runs", "--limit", "0", "--format", "json", *args).stdout)]


def files(project):
    """Per run: its model dir, its run folder, and the paths of the cached outputs it recorded."""
    with project.db() as conn:
        runs = {r["id"]: dict(r) for r in conn.execute("SELECT id, model_dir, run_dir FROM runs")}
        for run in runs.values():
            run["outputs"] = {r["name"]: project.outputs / r["path"] for r in conn.execute(
                "SELECT name, path FROM outputs WHERE run_id = ?", (run["id"],))}
    return runs


def test_tags_and_notes_without_a_runner(ran):
    assert mlp(ran, "tag", "1", "baseline", "good").stdout == "run 1: tagged baseline, good\n"
    mlp(ran, "tag", "2", "baseline")
    mlp(ran, "tag", "2", "baseline")  # again: nothing more
    assert listed(ran, "--tag", "baseline") == [2, 1]
    assert listed(ran, "--tag", "baseline", "--tag", "good") == [1]
    table = mlp(ran, "runs").stdout.splitlines()
    assert table[0].split()[:4] == ["id", "script", "version", "tags"]
    assert "baseline, good" in table[-1]
    mlp(ran, "untag", "1", "good")
    assert listed(ran, "--tag", "good") == []
    mlp(ran, "note", "2", "loss", "spiked", "at", "step", "2")
    shown = json.loads(mlp(ran, "show", "2", "--format", "json").stdout)
    assert (shown["tags"], shown["note"]) == (["baseline"], "loss spiked at step 2")
    assert "note:" in mlp(ran, "show", "2").stdout and "tags:" in mlp(ran, "show", "2").stdout
    assert mlp(ran, "note", "2").stdout == "run 2: note cleared\n"
    assert json.loads(mlp(ran, "show", "2", "--format", "json").stdout)["note"] is None
    bad = mlp(ran, "tag", "1", "two words", rc=2).stderr
    assert bad.count("\n") == 1 and "without spaces, commas" in bad
    assert "run '99' not found" in mlp(ran, "tag", "99", "x", rc=2).stderr
    with ran.db() as conn:
        assert [tuple(r) for r in conn.execute("SELECT run_id, tag FROM run_tags ORDER BY run_id")] == [
            (1, "baseline"), (2, "baseline")]


def test_delete_hides_runs_from_listings_while_history_and_u_stay_exact(ran):
    refused = mlp(ran, "delete", "1", "2", rc=1, stdin="n\n")
    assert "delete 2 run(s) (1, 2)?" in refused.stderr and "nothing deleted" in refused.stderr
    assert listed(ran) == [6, 5, 4, 3, 2, 1]
    assert "deleted 2 run(s): 1, 2" in mlp(ran, "delete", "1", "2", stdin="y\n").stdout
    assert "no runs match" in mlp(ran, "delete", "--script", "s.py", "--before", "2000-01-01").stderr
    assert listed(ran) == [6, 5, 4, 3]
    everything = json.loads(mlp(ran, "runs", "--all", "--format", "json").stdout)
    assert [(r["id"], r["deleted_at"] is not None) for r in everything] == [
        (6, False), (5, False), (4, False), (3, False), (2, True), (1, True)]
    assert "succeeded (deleted)" in mlp(ran, "runs", "--all").stdout
    compared = json.loads(mlp(ran, "compare", "s.py", "--format", "json").stdout)
    assert [r["version"] for r in compared] == ["v2", "v3", "v4", "v5"]
    again = mlp(ran, "-r", "-u", "-n")  # the deleted runs succeeded: -u still skips their versions
    assert "nothing to run" in again.stderr
    assert len(ran.runs()) == 6
    assert json.loads(mlp(ran, "show", "1", "--format", "json").stdout)["deleted"]


def test_gc_after_deleting_half_keeps_every_kept_runs_files(ran):
    before = files(ran)
    deleted, kept = [1, 3, 5], [2, 4, 6]
    mlp(ran, "delete", *map(str, deleted), "--yes")
    dry = mlp(ran, "gc", "--dry-run").stdout
    assert "would free" in dry and [line.split()[:3] for line in dry.splitlines() if "model dirs" in line] == [
        ["model", "dirs", "3"]]
    assert all(os.path.isdir(before[i]["model_dir"]) and os.path.isdir(before[i]["run_dir"]) for i in deleted)
    assert "nothing removed" in mlp(ran, "gc", rc=1, stdin="").stderr  # no answer: no
    done = mlp(ran, "gc", "--yes")
    assert "removed 3 model dir(s), 3 run folder(s), 3 cached output(s)" in done.stderr
    for run_id in kept:  # every kept run's files are there
        run = before[run_id]
        assert Path(run["model_dir"], "weights.txt").read_text() == f"v{run_id - 1}"
        assert Path(run["run_dir"]).is_dir()
        assert set(run["outputs"]) == {"own", "shared"} and all(p.is_file() for p in run["outputs"].values())
    for run_id in deleted:  # the deleted ones' are gone, bar the output a kept run shares
        run = before[run_id]
        assert not os.path.exists(run["model_dir"]) and not os.path.exists(run["run_dir"])
        assert not run["outputs"]["own"].exists() and run["outputs"]["shared"].exists()
    assert {r["run_id"] for r in ran.db().execute("SELECT run_id FROM outputs")} == set(kept)
    assert len(ran.runs()) == 6  # the rows stay
    collected = json.loads(mlp(ran, "show", "1", "--format", "json").stdout)["collected"]
    assert set(collected) == {"model_dir", "run_dir"}
    loaded = json.loads(mlp(ran, "outputs", "--format", "json").stdout)
    assert {r["run"] for r in loaded} == set(kept)
    assert "nothing to run" in mlp(ran, "-r", "-u", "-n").stderr  # history is exact
    assert "nothing to collect" in mlp(ran, "gc", "--yes").stderr


def test_keep_best_three_model_dirs_by_a_metric(ran):
    ran.write("models.config", "[MLP]\nkeep = 3 by test/accuracy\n\n[WHITELISTED_MODELS]\ns.py\n")
    before = files(ran)
    assert "unknown key" not in mlp(ran, "-r", "-u", "-n").stderr  # the runner knows the key
    mlp(ran, "gc", "--yes")
    best = sorted(range(6), key=lambda i: -ACCURACY[i])[:3]  # v3, v1, v5
    kept = sorted(os.path.basename(before[i + 1]["model_dir"]) for i in best)
    assert sorted(os.listdir(ran.outputs / "model_ckpts")) == sorted(
        kept + [f".{name}.mlpipeline-version" for name in kept])  # each with the marker beside it
    assert listed(ran) == [6, 5, 4, 3, 2, 1]  # every run stays, with its run folder and outputs
    assert all(Path(run["run_dir"]).is_dir() for run in before.values())
    shown = json.loads(mlp(ran, "show", "1", "--format", "json").stdout)
    assert list(shown["collected"]) == ["model_dir"]
    assert "collected.model_dir:" in mlp(ran, "show", "1").stdout
    ran.write("models.config", "[MLP]\nkeep = best\n\n[WHITELISTED_MODELS]\ns.py\n")
    error = mlp(ran, "gc", "--dry-run", rc=2).stderr
    assert error.count("\n") == 1 and "models.config:2: keep = 'best' is not 'N by METRIC'" in error


def test_tag_note_delete_and_gc_while_a_runner_works(project):
    project.script("t.py", tracer({"first": {}, "waits": {"action": "wait"}}))
    project.configure(["t.py"])
    runner = project.start("-r", "--watch", "-n")
    try:
        wait_for(lambda: (project.root / "started-waits").exists(), proc=runner, what="the second version")
        first, waits = (r["id"] for r in project.runs())
        via = f"(through the runner pid {runner.pid})"
        assert mlp(project, "tag", str(first), "baseline").stdout == f"run {first}: tagged baseline {via}\n"
        assert mlp(project, "note", str(first), "the", "reference").stdout == f"run {first}: note set {via}\n"
        assert "is running; cancel it first" in mlp(project, "delete", str(waits), "--yes", rc=2).stderr
        assert f"pid {runner.pid}" in mlp(project, "gc", "--yes", rc=2).stderr
        assert via in mlp(project, "delete", str(first), "--yes").stdout
        assert "would free" in mlp(project, "gc", "--dry-run").stdout  # a dry run reads only
        assert listed(project, "--all", "--tag", "baseline") == [first] and listed(project) == [waits]
        (project.root / "go").touch()
        wait_for(lambda: project.runs()[-1]["status"] == "succeeded", proc=runner, what="the waiting version")
    finally:
        (project.root / "go").touch()
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=30)
    with project.db() as conn:
        asked = [tuple(r) for r in conn.execute("SELECT kind, consumed_by IS NOT NULL, result FROM requests "
                                                "ORDER BY id")]
        assert asked == [("tag", 1, "tagged"), ("note", 1, "noted"), ("delete", 1, "deleted 1")]
        assert conn.execute("SELECT note FROM runs WHERE id = ?", (first,)).fetchone()[0] == "the reference"
    assert mlp(project, "untag", str(first), "baseline").stdout == f"run {first}: untagged baseline\n"  # no runner
    mlp(project, "gc", "--yes")
    assert not project.runs(id=first)[0]["run_dir"] or not os.path.exists(project.runs(id=first)[0]["run_dir"])


def test_python_api_matches_runs_all_and_parquet(ran):
    import pandas as pd

    import mlpipeline

    mlp(ran, "tag", "2", "baseline")
    mlp(ran, "delete", "1", "--yes")
    frame = mlpipeline.runs(project=ran.root, all=True)
    rows = json.loads(mlp(ran, "runs", "--all", "--limit", "0", "--format", "json").stdout)
    assert list(frame["id"]) == [r["id"] for r in rows] == [6, 5, 4, 3, 2, 1]
    assert list(frame.columns[:12]) == ["id", "uid", "script", "version", "mode", "status", "started", "ended",
                                        "duration", "tags", "note", "deleted"]
    for row in rows:
        mine = frame.set_index("id").loc[row["id"]]
        assert {k: mine[k] for k in row["metrics"]} == row["metrics"]
        assert mine["params.acc"] == ACCURACY[int(row["version"][1:])] and mine["uid"] == row["uid"]
    assert frame.set_index("id").loc[2, "tags"] == ["baseline"] and pd.isna(frame.set_index("id").loc[2, "deleted"])
    assert str(frame["started"].dtype) == "datetime64[ns, UTC]"
    assert list(mlpipeline.runs(project=ran.root)["id"]) == [6, 5, 4, 3, 2]
    assert list(mlpipeline.runs(project=str(ran.root), tag="baseline")["id"]) == [2]
    curves = mlpipeline.curves(2, project=ran.root)
    assert curves.to_dict("list") == {"split": ["train"] * 3, "name": ["loss"] * 3, "step": [0, 1, 2],
                                      "value": [1.0, 0.5, 1.0 / 3]}
    mlp(ran, "runs", "--all", "--format", "parquet", "--output", str(ran.root / "runs.parquet"))
    assert list(pd.read_parquet(ran.root / "runs.parquet")["id"]) == [6, 5, 4, 3, 2, 1]
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.modules['pyarrow'] = None; import mlpipeline; "
                            "mlpipeline.runs; print('pandas' in sys.modules); from mlpipeline.cli import main; "
                            "sys.exit(main(['runs', '--format', 'parquet', '--output', 'x.parquet']))"],
                           cwd=ran.root, capture_output=True, text=True, timeout=60)
    assert (probe.returncode, probe.stdout) == (2, "False\n"), probe.stderr
    assert "pip install pyarrow" in probe.stderr and not (ran.root / "x.parquet").exists()


class Server:
    """``mlpipeline serve`` on the project, asked with the token as a Bearer header."""

    def __init__(self, project):
        self.proc = subprocess.Popen([sys.executable, "-m", "mlpipeline", "serve", "--port", "0", "--token", TOKEN],
                                     cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + self.proc.stderr.read()
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Host": f"127.0.0.1:{self.port}", "Authorization": f"Bearer {TOKEN}",
                   "Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def json(self, path, method="GET", body=None):
        status, data = self.request(method, path, body)
        return status, json.loads(data)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=10)


TOKEN = "curate-test-token-0123456789"


def test_dashboard_edits_tags_and_notes_and_hides_deleted_runs(ran):
    mlp(ran, "delete", "1", "--yes")
    server = Server(ran)
    try:
        status, body = server.json("/api/runs/2/tags", "POST", {"add": ["baseline", "odd"]})
        assert (status, body["tags"]) == (200, ["baseline", "odd"])
        status, body = server.json("/api/runs/2/tags", "POST", {"remove": ["odd"]})
        assert body["tags"] == ["baseline"]
        status, body = server.json("/api/runs/2/note", "POST", {"note": "a fine run"})
        assert (status, body["note"]) == (200, "a fine run")
        assert server.json("/api/runs/2/tags", "POST", {"add": ["a b"]})[0] == 400
        listed_rows = server.json("/api/runs?tag=baseline")[1]["runs"]
        assert [(r["id"], r["tags"], r["note"]) for r in listed_rows] == [(2, ["baseline"], "a fine run")]
        assert [r["id"] for r in server.json("/api/runs")[1]["runs"]] == [6, 5, 4, 3, 2]
        assert [r["id"] for r in server.json("/api/runs?all=1")[1]["runs"]] == [6, 5, 4, 3, 2, 1]
        one = server.json("/api/runs/2")[1]
        assert (one["tags"], one["note"]) == (["baseline"], "a fine run")
        page = server.request("GET", "/runs/1")[1].decode()
        assert 'id="run-deleted"' in page and 'id="tag-form"' in page
    finally:
        server.stop()
    assert mlp(ran, "runs", "--tag", "baseline", "--format", "csv").stdout.count("a fine run") == 1


# -- found by an outside attack on these commands ------------------------------------------------------------------

def test_delete_names_runs_or_filters_not_both_and_says_what_was_deleted_already(ran):
    error = mlp(ran, "delete", "1", "--status", "failed", "--yes", rc=2).stderr  # run 1 succeeded
    assert "not both" in error and error.count("\n") == 1, error
    assert listed(ran) == [6, 5, 4, 3, 2, 1]
    mlp(ran, "delete", "2", "--yes")
    again = mlp(ran, "delete", "2", "--yes")
    assert "run(s) 2: already deleted" in again.stderr and "deleted 1 run(s)" not in again.stdout, again


def test_parquet_export_never_writes_over_the_ledger_a_script_or_a_folder(ran):
    ledger = (ran.outputs / "mlpipeline.db").read_bytes()
    script = (ran.models / "s.py").read_text()
    for target, said in ((ran.outputs / "mlpipeline.db", "inside the project's outputs folder"),
                         (ran.models / "s.py", "not a parquet file"),
                         (ran.root / "models", "is a folder"),
                         (ran.root / "nowhere" / "x.parquet", "does not exist")):
        error = mlp(ran, "runs", "--format", "parquet", "--output", str(target), rc=2).stderr
        assert said in error and error.count("\n") == 1, (target, error)
    assert (ran.outputs / "mlpipeline.db").read_bytes() == ledger and (ran.models / "s.py").read_text() == script
    export = ran.root / "runs.parquet"
    mlp(ran, "runs", "--format", "parquet", "--output", str(export))
    mlp(ran, "delete", "1", "--yes")
    mlp(ran, "runs", "--format", "parquet", "--output", str(export))  # an earlier export is replaced
    import pandas

    assert sorted(pandas.read_parquet(export)["id"]) == [2, 3, 4, 5, 6]
    assert not [p.name for p in ran.root.iterdir() if p.name.startswith(".runs-")]  # no temporary file left


def test_keep_ranks_only_model_dirs_gc_may_take_and_says_when_no_run_recorded_its_metric(project):
    """A ``rerun --exact`` of the best run ties with it and trains in its checkout: it must not take the one
    best place (gc would then take the best model dir under model_ckpts, and the checkout goes later)."""
    project.script("s.py", SCRIPT)
    project.configure(["s.py"])
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project.root, check=True)
    subprocess.run([*git, "commit", "-qm", "i"], cwd=project.root, check=True)
    assert project.run("-r", "-n").returncode == 0
    best = files(project)[4]["model_dir"]  # v3, accuracy 0.95
    rerun = project.run("rerun", "4", "--exact")
    assert rerun.returncode == 0, rerun.stderr
    rerun = files(project)[7]["model_dir"]
    assert "rerun" in Path(rerun).parts, rerun
    project.write("models.config", "[MLP]\nkeep = 1 by test/accuracy\n\n[WHITELISTED_MODELS]\ns.py\n")
    mlp(project, "gc", "--yes")
    assert Path(best).is_dir() and Path(rerun).is_dir()
    assert len(os.listdir(project.outputs / "model_ckpts")) == 2  # v3's dir and its marker: the rest went
    project.write("models.config", "[MLP]\nkeep = 1 by nosuch\n\n[WHITELISTED_MODELS]\ns.py\n")
    said = mlp(project, "gc", "--dry-run").stderr
    assert "no run of models/s.py recorded test/nosuch" in said, said


def test_gc_frees_the_files_of_a_deleted_run_whose_runner_was_killed(project):
    project.script("t.py", tracer({"waits": {"action": "wait"}}))
    project.configure(["t.py"])
    runner = project.start("-r", "-n")
    try:
        wait_for(lambda: (project.root / "started-waits").exists(), proc=runner, what="the version")
        runner.kill()
        runner.communicate(timeout=30)
    finally:
        (project.root / "go").touch()  # the orphaned version ends too
    run = project.runs()[0]
    assert run["status"] == "running" and Path(run["run_dir"]).is_dir()  # as the killed runner left the row
    mlp(project, "delete", str(run["id"]), "--yes")
    said = mlp(project, "gc", "--yes").stderr
    assert "removed" in said and not Path(run["run_dir"]).exists(), said


def test_bad_text_and_dates_are_one_line_errors(ran):
    for args, said in ((("tag", "1", "a\u200bb"), "invisible characters"), (("tag", "1", "--", "-x"), "not starting"),
                       (("note", "1", "\x1b[31mred"), "control character"),
                       (("delete", "--before", "0001-01-01", "--yes"), "cannot count"),
                       (("runs", "--since", "0001-01-01"), "cannot count"),
                       (("tag", "1", "\udcff"), "invisible characters"),
                       (("note", "1", "\udcff\udcfe"), "not valid UTF-8"),
                       (("importance", "s.py", ""), "METRIC is empty"),
                       (("importance", "nosuch.py", "accuracy"), "script 'nosuch.py': no runs of it")):
        error = mlp(ran, *args, rc=2).stderr
        assert said in error and error.count("\n") == 1, (args, error)


def test_rerun_exact_checks_before_it_checks_anything_out(ran):
    subprocess.run(["git", "init", "-q"], cwd=ran.root, check=True)
    assert "positive number" in mlp(ran, "rerun", "1", "--exact", "--timeout", "0", rc=2).stderr
    ran.run()  # a test-mode run
    test_run = ran.runs(mode="test")[0]["id"]
    assert "is a test-mode run" in mlp(ran, "rerun", str(test_run), "--exact", rc=2).stderr
    assert not (ran.outputs / "rerun").exists()
