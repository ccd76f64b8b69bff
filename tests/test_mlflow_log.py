"""``[MLFLOW] tracking_uri`` (issue 24): each execution-mode run is also logged to MLflow — real MLflow, read
back through its own ``mlflow.search_runs``: a local file store, and a real ``mlflow server`` on 127.0.0.1
started by this module (it boots while the first tests run). Batches are real ``mlpipeline -r`` runs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from mlpipeline.plan.config import find_project, tracking_uri
from mlpipeline.run.mlflowlog import flat_params, metric_key, mlflow_key, shown

QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}

SCRIPT = '''
import os, time
from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import Versions

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return lambda: [1, 2, 3]
    def get_test_input(self, **kw): return lambda: [4, 5]
    def get_train_sample_count(self): return 4
    def get_test_sample_count(self): return 2

class Curves(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.version, self.model_dir = version, model_dir

    def train_model(self, input_fn, steps):
        lr = self.version["lr"]
        for step in range(6):
            self.log_metric("loss", lr * (6 - step), step=step)
            self.log_metric("acc", step / 10, step=step, split="val")
            if step == 2:
                time.sleep(self.version["pause"])  # a run longer than a second: its points go in two batches
        if self.version["fail"]:
            raise ValueError("failed on purpose")
        os.makedirs(os.path.join(self.model_dir, "ckpt"), exist_ok=True)
        with open(os.path.join(self.model_dir, "ckpt", "weights.txt"), "w") as f:
            f.write("lr=%s" % lr)

    def evaluate_model(self, input_fn, steps):
        return {"score": self.version["lr"] * 10}

versions = Versions(Loader(), 1, 1)
versions.add_version("fast", lr=0.5, fail=False, pause=1.2, net={"depth": 2, "act": "relu"}, note="x" * 9000)
versions.add_version("slow", lr=0.25, fail=False, pause=0)
'''
BROKEN = 'versions.add_version("broken", lr=1.0, fail=True, pause=0)\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """A real ``mlflow server`` (sqlite backend, artifacts served) on a free port of 127.0.0.1."""
    where = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(where / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{where}/mlflow.db",
                             "--artifacts-destination", str(where / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=where,
                            env={**os.environ, **QUIET}, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers: a graceful stop takes seconds
        proc.wait(10)
        log.close()


@pytest.fixture(autouse=True, scope="module")
def booting(server) -> None:
    """The server starts with the module, so its boot (about 8 s) overlaps the tests before its own (the last)."""


@pytest.fixture
def reading(monkeypatch) -> Iterator[None]:
    for name, value in QUIET.items():
        monkeypatch.setenv(name, value)
    import mlflow

    yield
    mlflow.set_tracking_uri(None)


def make(project, uri: str, broken: bool = True) -> None:
    project.script("curves.py", SCRIPT + (BROKEN if broken else "") + "MODEL = Curves(versions)\n")
    project.configure(["curves.py"])
    project.write("mlp.config", f"[MLP]\nmodels_dir = models\n\n[MLFLOW]\ntracking_uri = {uri}\n")


def batch(project, *args: str, env: Dict[str, str] = QUIET, code: int = 1) -> subprocess.CompletedProcess:
    result = project.run("-r", *args, env=env, timeout=120)
    assert result.returncode == code, result.stdout[-3000:] + result.stderr[-3000:]  # 1: "broken" failed
    return result


def logged(uri: str) -> Dict[str, Any]:
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs: List = mlflow.search_runs(experiment_names=["curves.py"], output_format="list")
    return {run.info.run_name: run for run in runs}


def check(project, uri: str) -> None:
    import mlflow

    runs = logged(uri)
    ledger = {row["version"]: row for row in project.runs()}
    assert sorted(runs) == ["broken", "fast", "slow"]
    assert {name: run.info.status for name, run in runs.items()} == \
        {"fast": "FINISHED", "slow": "FINISHED", "broken": "FAILED"}
    fast = runs["fast"].data
    assert fast.params["lr"] == "0.5" and fast.params["fail"] == "False" and fast.params["net.depth"] == "2"
    assert fast.params["net.act"] == "relu" and 500 <= len(fast.params["note"]) < 9000  # cut to MLflow's limit
    assert fast.tags["mlpipeline.script"] == "models/curves.py" and fast.tags["mlpipeline.version"] == "fast"
    assert fast.tags["mlpipeline.run_id"] == str(ledger["fast"]["id"]) and fast.tags["mlpipeline.status"] == "succeeded"
    assert runs["broken"].data.tags["mlpipeline.error"] == "ValueError: failed on purpose"
    assert fast.metrics["TRAIN_score"] == pytest.approx(5.0) and fast.metrics["TEST_score"] == pytest.approx(5.0)
    client = mlflow.MlflowClient(uri)
    for name, lr in (("fast", 0.5), ("slow", 0.25), ("broken", 1.0)):
        history = client.get_metric_history(runs[name].info.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == [(s, pytest.approx(lr * (6 - s))) for s in range(6)]
        assert len(client.get_metric_history(runs[name].info.run_id, "val/acc")) == 6
    stamps = sorted(m.timestamp for m in client.get_metric_history(runs["fast"].info.run_id, "loss"))
    assert stamps[-1] - stamps[0] >= 1000  # the points went as they came (two batches), not all at the end
    for name, size in (("fast", len("lr=0.5")), ("slow", len("lr=0.25"))):  # (a download leaves MLflow's threads)
        listed = client.list_artifacts(runs[name].info.run_id, "ckpt")
        assert [(a.path, a.file_size) for a in listed] == [("ckpt/weights.txt", size)]
    assert {a.path for a in client.list_artifacts(runs["broken"].info.run_id)} == {"curves.py"}  # no ckpt/


def test_runs_are_logged_to_a_local_file_store(project, reading):
    make(project, "file:mlruns")  # relative: to the project folder, as 2.x read it
    began = time.monotonic()
    result = batch(project, "-j", "3")
    took = time.monotonic() - began
    assert "MLflow" not in result.stderr, result.stderr
    assert (project.root / "mlruns").is_dir()
    check(project, (project.root / "mlruns").as_uri())
    assert took < 30


def test_the_2x_flag_names_the_store_in_place_of_the_config(project, reading):
    """``mlpipeline --mlflow_tracking_uri URI run`` (2.x's command line): relative to the current folder."""
    make(project, "mlruns", broken=False)
    result = project.run("--mlflow_tracking_uri", "file:flagged", "run", env=QUIET)
    assert result.returncode == 0 and "MLflow" not in result.stderr, result.stderr
    assert not (project.root / "mlruns").exists()
    runs = logged((project.root / "flagged").as_uri())
    assert sorted(runs) == ["fast", "slow"] and {r.info.status for r in runs.values()} == {"FINISHED"}


def test_an_unreachable_store_costs_one_warning_and_the_batch_goes_on(project, reading):
    make(project, f"http://127.0.0.1:{free_port()}")
    env = {**QUIET, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    result = batch(project, env=env)
    said = [line for line in result.stderr.splitlines() if "MLflow" in line]
    assert len(said) == 1 and "could not be logged to MLflow at http://127.0.0.1:" in said[0], result.stderr
    assert {row["version"]: row["status"] for row in project.runs()} == \
        {"fast": "succeeded", "slow": "succeeded", "broken": "failed"}


def test_the_config_section_and_the_uri_forms(project, tmp_path):
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n[MLFLOW]\ntracking_uri = _mlruns\ncolour = red\n")
    found = find_project(str(project.root))
    assert found.mlflow_uri == "file://" + str(project.root / "_mlruns")
    assert len(found.warnings) == 1
    assert found.warnings[0].endswith("mlp.config:5: unknown key 'colour' in [MLFLOW] is ignored (known: tracking_uri)")
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n[MLFLOW]\ntracking_uri =\n")
    empty = find_project(str(project.root))
    assert empty.mlflow_uri is None and "mlp.config:4: tracking_uri is empty" in empty.warnings[0]
    for given, uri in [("/abs/m", "file:///abs/m"), ("file:m", "file:///p/m"), ("file:///abs/m", "file:///abs/m"),
                       ("./a/../m", "file:///p/m"), ("sqlite:///m.db", "sqlite:////p/m.db"),
                       ("sqlite:////abs/m.db", "sqlite:////abs/m.db"), ("http://h:5000", "http://h:5000"),
                       ("databricks", "databricks"), ("  ", None)]:
        assert tracking_uri(given, "/p") == uri, given
    assert shown("https://me:token@host/x") == "https://…@host/x"
    assert dict(flat_params({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2]})) == {"a.b": "1", "a.c.d": "None",
                                                                                 "e": "[1, 2]"}
    assert metric_key("train", "loss") == "loss" and metric_key("val", "acc") == "val/acc"
    assert mlflow_key("a*b/../c") == "a_b_.._c" and mlflow_key("/x") == "_x" and len(mlflow_key("k" * 999)) == 250


def test_without_mlflow_one_warning_and_the_batch_runs(project, tmp_path):
    """mlflow that cannot be imported (a folder first on PYTHONPATH whose mlflow raises ImportError): one
    warning in execution mode, none in test mode, and the runs are in the ledger."""
    shim = tmp_path / "shim" / "mlflow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named mlflow (a test)')\n")
    make(project, "mlruns", broken=False)
    env = {**QUIET, "PYTHONPATH": str(shim.parent)}
    tested = project.run(env=env)  # test mode logs nothing, and says nothing of it
    assert tested.returncode == 0 and "mlflow" not in tested.stderr.lower(), tested.stderr
    result = batch(project, env=env, code=0)
    said = [line for line in result.stderr.splitlines() if "mlflow" in line.lower()]
    assert len(said) == 1, result.stderr
    assert ("[MLFLOW] tracking_uri is set but the mlflow package is not installed: pip install mlflow; runs are "
            "recorded in the ledger only") in said[0]
    assert not (project.root / "mlruns").exists() and len(project.runs(mode="run")) == 2


def test_runs_are_logged_to_a_real_mlflow_server(project, reading, server):
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(server + "/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not start within 60 s")
            time.sleep(0.2)
    make(project, server)
    result = batch(project, "-j", "3")
    assert "MLflow" not in result.stderr, result.stderr
    check(project, server)
