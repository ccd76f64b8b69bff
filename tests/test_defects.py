"""Defects found from outside (issue 18; ../shared/reviews/adversarial.md and newcomer.md), each
reproduced for real: a metric that crashed the runner, a torch result dropped, a deterministic
search that stopped early, a failed run's output handed out, a fork server blind to a new
package, an orphaned Optuna trial, processes that escaped the loading probes, a runner that
grew with every run, and the first hour's friction."""
from __future__ import annotations

import gc
import json
import os
import site
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

from helpers import REPO, Project, pid_alive, wait_for

from mlpipeline.script.execute import eval_metrics
from mlpipeline.core.lifecycle import MetricRow, Outcome, RunStatus

LOADER = '''\
import os, sys, time, json
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class D(DataLoader):
    def get_train_input(self, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1
'''


def _json(project: Project, *args: str):
    done = project.run(*args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- one bad metric event fails its version, never the runner (B4) ------------------------------------------------

BAD_METRICS = LOADER + '''
from mlpipeline.script import report as _report

BAD = {
    "step_huge": lambda m: m.log_metric("loss", 1.0, step=2 ** 70),
    "null_name": lambda m: m.log_metric(None, 1.0, step=1),
    "huge_name": lambda m: m.log_metric("n" * (10 << 20), 1.0, step=1),
    "not_number": lambda m: m.log_metric("loss", "abc", step=1),
    # what a script writing to the event pipe itself would send: a null name, a value that is text
    "raw_event": lambda m: os.write(_report.current()._file.fileno(),
                                    b'{"type": "metrics", "rows": [[null, "x", null, "train"]]}\\n'),
}


class M(Model):
    def train_model(self, input_fn, steps):
        name = self.get_current_version().name
        if name in BAD:
            BAD[name](self)
            time.sleep(2)  # a version the runner ends does not get to finish on its own
            return
        for i in range(1000):
            self.log_metric("loss", 1.0 / (i + 1), step=i)
        time.sleep(0.5)

    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}


versions = Versions(D(), batch_size=1, epoc_count=1)
for name in ["good", *BAD, "later1", "later2"]:
    versions.add_version(name)
MODEL = M(versions)
'''


def test_bad_metric_events_fail_their_version_alone_and_the_queue_goes_on(project: Project):
    project.script("m.py", BAD_METRICS)
    project.configure(["m.py"])
    first = project.run("-r", "-j", "2", timeout=180)
    assert "internal error" not in first.stderr, first.stderr
    assert first.returncode == 1, first.stderr  # some versions failed: the batch says so, after finishing
    runs = {r["version"]: r for r in project.runs()}
    assert {v: r["status"] for v, r in runs.items()} == {
        "good": "succeeded", "step_huge": "failed", "null_name": "failed", "huge_name": "failed",
        "not_number": "failed", "raw_event": "failed", "later1": "succeeded", "later2": "succeeded"}
    reasons = {v: runs[v]["error"] for v in ("step_huge", "null_name", "huge_name", "not_number", "raw_event")}
    for version, reason in reasons.items():
        assert "\n" not in reason and len(reason) < 300, (version, reason)
    assert "step 1180591620717411303424 is outside the range" in reasons["step_huge"]
    assert "name must be a non-empty string, not None" in reasons["null_name"]
    assert "10485760 characters long" in reasons["huge_name"]
    assert "value 'abc' is not a number" in reasons["not_number"]
    assert reasons["raw_event"].startswith("it sent an event the runner cannot record") and \
        "name must be a non-empty string" in reasons["raw_event"]
    with project.db() as conn:
        points = conn.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ? AND step IS NOT NULL",
                              (runs["good"]["id"],)).fetchone()[0]
    assert points == 1000  # the neighbour's curve is whole
    again = project.run("-r", "-u", "-j", "2", timeout=180)
    assert "internal error" not in again.stderr, again.stderr
    rerun = [r for r in project.runs() if r["id"] > max(x["id"] for x in runs.values())]
    # -u runs again only what failed (a failure is always retried), and it fails the same way, alone
    assert sorted(r["version"] for r in rerun) == sorted(reasons) and {r["status"] for r in rerun} == {"failed"}


def test_metric_points_are_checked_where_they_enter():
    from mlpipeline.core.lifecycle import BadMetric, metric_row

    assert metric_row("loss", 1, 3) == MetricRow("loss", 1.0, 3, "train")
    assert metric_row("acc", None, 2.0, "test") == MetricRow("acc", None, 2, "test")
    for args, words in [(("loss", 1.0, 2 ** 63), "outside the range"), (("loss", 1.0, 1.5), "not a whole number"),
                        (("", 1.0), "non-empty"), ((5, 1.0), "non-empty string, not 5"),
                        (("loss", 1 + 2j), "not a number"), (("loss", [1, 2]), "not a number"),
                        (("loss", 1.0, None, None), "split"), (("x" * 1025, 1.0), "at most 1024")]:
        with pytest.raises(BadMetric, match=words):
            metric_row(*args)


def test_packed_points_are_checked_again_where_they_enter_the_runner():
    import base64
    import marshal

    from mlpipeline.core.lifecycle import BadMetric, pack_rows, unpack_rows

    rows = [("loss", 0.5, 1, "train"), ("loss", 0.25, 2, "train"), ("acc", 1, None, "test")]
    assert unpack_rows(pack_rows(rows)) == [MetricRow("loss", 0.5, 1, "train"), MetricRow("loss", 0.25, 2, "train"),
                                            MetricRow("acc", 1.0, None, "test")]
    packed = lambda value: base64.b64encode(marshal.dumps(value)).decode()  # noqa: E731 - what a child could send
    for text, words in [("not base64!", "cannot be read"), (packed({"a": 1}), "not a list"),
                        (packed([("loss", 1.0, 2)]), "is not \\(name"), (packed([("loss", 1.0, 2 ** 64, "t")]), "range"),
                        (packed([("loss", 1.0, 1, "train"), ("", 1.0, 2, "train")]), "non-empty"), (5, "not text")]:
        with pytest.raises(BadMetric, match=words):
            unpack_rows(text)


def test_the_childs_reporter_sends_every_point_in_order_and_refuses_a_bad_one_in_the_caller():
    from mlpipeline.core.lifecycle import BadMetric, unpack_rows
    from mlpipeline.script import report
    from mlpipeline.script.command import log_metric

    import threading

    read_fd, write_fd = os.pipe()
    received: list = []
    reader = threading.Thread(target=lambda: received.append(os.fdopen(read_fd).read()))
    reader.start()  # the runner's side of the pipe
    reporter = report.PipeReporter(write_fd)
    previous = report.install(reporter)
    try:
        for i in range(5000):
            log_metric("loss", float(i), step=i)
        log_metric("acc", 1, split="test")  # an int: converted on the slow path
        with pytest.raises(BadMetric, match="outside the range"):
            log_metric("loss", 1.0, step=2 ** 64)
        reporter.log("done")
        reporter.close()
    finally:
        report.install(previous)
    reporter._file.close()
    reader.join(timeout=30)
    events = [json.loads(line) for line in received[0].splitlines()]
    points = [row for e in events if e["type"] == "metrics" for row in unpack_rows(e["packed"])]
    assert points[:5000] == [MetricRow("loss", float(i), i, "train") for i in range(5000)]
    assert points[5000:] == [MetricRow("acc", 1.0, None, "test")]
    assert events[-1]["type"] == "log"  # the points went before the event that followed them


def test_a_torch_scalar_returned_by_evaluate_model_is_a_metric():
    torch = pytest.importorskip("torch")
    import numpy as np

    metrics, text = eval_metrics({"t": torch.tensor(0.8), "acc": np.float32(0.5), "one": np.array([0.25]),
                                  "grad": torch.tensor(0.5, requires_grad=True), "many": torch.tensor([1.0, 2.0])})
    assert metrics == {"t": pytest.approx(0.8), "acc": 0.5, "one": 0.25, "grad": 0.5}
    assert "many: tensor([1., 2.])" in text  # not a number: kept as text, as a str result is


# -- a deterministic search with parallel >= 2 runs its whole budget (B1) ---------------------------------------

def test_a_deterministic_propose_with_parallel_points_runs_its_whole_budget(project: Project):
    project.script("s.py", LOADER + '''
class M(Model):
    def train_model(self, input_fn, steps):
        time.sleep(0.3)
    def evaluate_model(self, input_fn, steps):
        return {"loss": (self.get_current_version()["x"] - 3) ** 2}

def propose(history):  # a pure function of the finished history: repeats a running point until a result is in
    return {"x": len(history)}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_search(propose, budget=5, parallel=2, name="det")
MODEL = M(versions)
''')
    project.configure(["s.py"])
    done = project.run("-r", "-u", "-j", "2", timeout=180)
    assert done.returncode == 0, done.stderr
    assert "the search ended" not in done.stderr
    runs = project.runs(mode="run")
    assert sorted(json.loads(r["params"])["x"] for r in runs) == [0, 1, 2, 3, 4]
    assert {r["status"] for r in runs} == {"succeeded"}


# -- outputs.load never hands out a failed run's output (B5) -----------------------------------------------------

def test_load_returns_the_newest_succeeded_runs_output_and_outputs_shows_status(project: Project):
    project.script("o.py", LOADER + '''
import numpy as np

class M(Model):
    def train_model(self, input_fn, steps):
        self.save_output("preds", np.full(4, float(os.environ["VAL"])))
        if os.environ.get("FAIL"):
            raise RuntimeError("failed after saving")
    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("v1")
MODEL = M(versions)
''')
    project.configure(["o.py"])
    assert project.run("-r", env={"VAL": "1"}).returncode == 0
    assert project.run("-r", env={"VAL": "9", "FAIL": "1"}).returncode == 1
    load = "from mlpipeline.outputs import load; print(load('models/o.py', 'v1', 'preds', {}).tolist())"
    newest_good = subprocess.run([sys.executable, "-c", load.format("")], cwd=project.root, capture_output=True,
                                 text=True, timeout=60)
    assert newest_good.stdout.strip() == "[1.0, 1.0, 1.0, 1.0]", newest_good.stderr
    asked = subprocess.run([sys.executable, "-c", load.format("run=2")], cwd=project.root, capture_output=True,
                           text=True, timeout=60)
    assert asked.stdout.strip() == "[9.0, 9.0, 9.0, 9.0]", asked.stderr
    listed = _json(project, "outputs")
    assert [(r["run"], r["status"]) for r in listed] == [(2, "failed"), (1, "succeeded")]
    assert "status" in project.run("outputs").stdout.splitlines()[0]


def test_load_says_when_only_unsuccessful_runs_saved_the_output(project: Project):
    project.script("o.py", LOADER + '''
class M(Model):
    def train_model(self, input_fn, steps):
        self.save_output("preds", [1, 2])
        raise RuntimeError("failed after saving")
    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("v1")
MODEL = M(versions)
''')
    project.configure(["o.py"])
    assert project.run("-r").returncode == 1
    code = ("from mlpipeline.outputs import load\ntry:\n    load('o', 'v1', 'preds')\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)")
    said = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True, timeout=60)
    assert "OutputError" in said.stdout and "no succeeded run saved 'preds'" in said.stdout, said.stdout + said.stderr
    assert "run 1, failed: pass run=1" in said.stdout


# -- the fork server sees a package installed after it started (B3) ---------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux's")
def test_a_package_installed_while_the_runner_works_is_seen_by_the_next_version(project: Project, tmp_path: Path):
    from mlpipeline.execution.local import LocalExecutor
    from mlpipeline.core.lifecycle import Job, VersionSpec
    from mlpipeline.utils import ExecutionModeKeys

    module = f"mlp_late_{uuid.uuid4().hex[:8]}"
    script = project.script("t.py", LOADER + f'''
class M(Model):
    def train_model(self, input_fn, steps):
        if self.get_current_version().name == "imports":
            import {module}
            print("late value", {module}.VALUE)
    def evaluate_model(self, input_fn, steps):
        return {{"acc": 1.0}}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("first")
versions.add_version("imports")
MODEL = M(versions)
''')
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / f"{module}.py").write_text("VALUE = 42\n")
    pth = Path(site.getsitepackages()[0]) / f"{module}.pth"  # what `pip install -e ./lib` adds
    events: list = []

    class Sink:
        def started(self, where): pass
        def log(self, message, level=20): events.append(message)
        def metrics(self, rows): pass
        def output(self, record): pass
        def data(self, fingerprint): pass

    def run(executor: LocalExecutor, version: str) -> Outcome:
        spec = VersionSpec(script=str(script), rel="models/t.py", version=version, params={"name": version})
        executor.submit(Job(spec, str(tmp_path / version), ExecutionModeKeys.TRAIN), Sink())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for _, outcome in executor.poll(0.1):
                return outcome
        raise AssertionError(f"{version} did not finish")

    executor = LocalExecutor(cwd=str(project.root), echo=False)
    try:
        assert run(executor, "first").status == RunStatus.SUCCEEDED
        assert executor._server is not None, "the first version was not forked"
        pth.write_text(str(lib) + "\n")
        outcome = run(executor, "imports")
        assert outcome.status == RunStatus.SUCCEEDED, outcome.error
        assert any("fork server:" in e and "changed since it started" in e for e in events), events
    finally:
        pth.unlink(missing_ok=True)
        executor.close()


# -- an Optuna trial asked just before a runner died is not left RUNNING (B2) ------------------------------------

def test_an_optuna_trial_orphaned_between_ask_and_its_point_is_failed(project: Project):
    pytest.importorskip("optuna")
    project.script("o.py", LOADER + '''
import optuna
from mlpipeline.sweeps import optuna_search, uniform

class M(Model):
    def train_model(self, input_fn, steps): pass
    def evaluate_model(self, input_fn, steps):
        return {"loss": (self.get_current_version()["x"] - 3) ** 2}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_search(optuna_search(lambda: optuna.create_study(storage="sqlite:///models/outputs/study.db",
                                                              study_name="s", load_if_exists=True),
                                  "test/loss", "minimize", space={"x": uniform(0, 6)}), budget=2, name="tpe")
MODEL = M(versions)
''')
    project.configure(["o.py"])
    project.outputs.mkdir(parents=True)
    orphan = ("import optuna; s = optuna.create_study(storage='sqlite:///models/outputs/study.db', study_name='s', "
              "load_if_exists=True); s.ask()")  # a runner killed right after study.ask()
    made = subprocess.run([sys.executable, "-c", orphan], cwd=project.root, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    done = project.run("-r", "-u", timeout=180)
    assert done.returncode == 0, done.stderr
    states = ("import optuna; s = optuna.load_study(study_name='s', storage='sqlite:///models/outputs/study.db'); "
              "print(sorted(t.state.name for t in s.trials))")
    seen = subprocess.run([sys.executable, "-c", states], cwd=project.root, capture_output=True, text=True,
                          timeout=120)
    assert seen.stdout.strip() == "['COMPLETE', 'COMPLETE', 'FAIL']", seen.stdout + seen.stderr


# -- what a script starts at import ends with the probe that loaded it (B6) --------------------------------------

HELPER_AT_IMPORT = LOADER + '''
import subprocess
helper = subprocess.Popen(["sleep", "300"], start_new_session=True)  # a TensorBoard, a ray.init(), ...
with open("helpers.txt", "a") as f:  # every probe and version loads it in the project root
    f.write(f"{helper.pid}\\n")

class M(Model):
    def train_model(self, input_fn, steps):
        self.save_output("preds", [1, 2])
    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("v1")
MODEL = M(versions)
'''


def test_a_process_a_script_starts_at_import_ends_with_each_probe(project: Project):
    project.script("h.py", HELPER_AT_IMPORT)
    project.configure(["h.py"])
    helpers = project.root / "helpers.txt"

    def alive() -> list:
        return [int(p) for p in helpers.read_text().split() if pid_alive(int(p))] if helpers.exists() else []

    try:
        done = project.run("-r")  # loaded by the describe child, then by the version
        assert done.returncode == 0, done.stderr
        assert len(helpers.read_text().split()) >= 2
        wait_for(lambda: not alive(), timeout=10, what="the describe child's helper to end")
        listed = project.run("outputs")  # loads the script again to tell whether the output is stale
        assert listed.returncode == 0 and "preds" in listed.stdout, listed.stderr
        from mlpipeline.plan.config import find_project
        from mlpipeline.web.files import save_script

        saved = save_script(find_project(str(project.root)), "u.py", HELPER_AT_IMPORT.encode(), False, 60.0)
        assert saved["versions"] == ["v1"]  # the dashboard's upload check loads it too
        assert len(helpers.read_text().split()) >= 4
        wait_for(lambda: not alive(), timeout=10, what="the check's helpers to end")
    finally:
        for pid in alive():
            os.kill(pid, 9)


# -- a --watch runner does not grow with every run (B8) -----------------------------------------------------------

def test_the_runner_keeps_no_more_of_a_finished_run_than_its_summary_needs(tmp_path: Path):
    from test_core import Clock, FakeDescriber, FakeExecutor

    from mlpipeline.plan.config import find_project
    from mlpipeline.store.ledger import Ledger
    from mlpipeline.run.runner import Options, Runner

    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "mlp.config").write_text("[MLP]\nmodels_dir = models\n")
    (root / "models" / "a.py").write_text("# described by the fake describer\n")
    (root / "models.config").write_text("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\na.py\n")
    versions = [f"v{i}" for i in range(700)]

    class Executor(FakeExecutor):  # every version ends at once with a result as large as a real one
        ended = 0

        def poll(self, timeout: float) -> list:
            for ticket, (job, _) in list(self.jobs.items()):
                self.ended += 1
                self.done.append((ticket, Outcome(RunStatus.SUCCEEDED, result={
                    "steps": 1, "eval_test": {"acc": 0.5}, "eval_test_text": "acc: 0.5000",
                    "model_summary": "x" * 3000, "dataloader_summary": "y" * 1000})))
            return super().poll(timeout)

    ledger = Ledger(str(root / "models" / "outputs" / "mlpipeline.db"))
    executor = Executor()
    runner = Runner(find_project(str(root)), ledger, executor, FakeDescriber({"a.py": versions}), Options(),
                    clock=Clock())
    runner.begin()
    try:
        tracemalloc.start()
        while executor.ended < 200:
            runner.run_once()
        gc.collect()
        before = tracemalloc.take_snapshot()
        while executor.ended < 700:
            runner.run_once()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        runner.end()
        ledger.close()
    growth = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert growth / 500 < 1500, f"{growth / 500:.0f} bytes kept per run"  # a result is ~4 KB; a version's key stays


def test_a_batch_keeps_counts_of_all_its_runs_and_the_last_ones_in_full():
    from mlpipeline.run.runner import Ended, Finished

    ended = Ended()
    ended.KEEP = 3
    ended.recent = type(ended.recent)(maxlen=3)
    for i, status in enumerate([RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.PRUNED,
                                RunStatus.SUCCEEDED]):
        ended.add(Finished(i, ("a", f"v{i}"), status))
    assert [f.run_id for f in ended.recent] == [2, 3, 4] and len(ended) == 5
    assert ended.counts == {"failed": 1, "succeeded": 3, "pruned": 1} and ended.failed_earlier == 1


# -- the first hour --------------------------------------------------------------------------------------------

def test_the_readme_quick_start_says_how_to_get_mlpipeline_on_the_path_and_make_sample_what_next():
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "source .venv/bin/activate" in quick
    assert quick.index("source .venv/bin/activate") < quick.index("mlpipeline init myproject")
    sample = (REPO / "Makefile").read_text().split("\nsample:", 1)[1].split("\n\n", 1)[0]
    assert "source $(VENV)/bin/activate" in sample and "mlpipeline runs" in sample and "mlpipeline serve" in sample
    assert "split=" in readme.split("## The model-script API", 1)[1].split("\n## ", 1)[0]


CURVE_AND_RESULT = LOADER + '''
class M(Model):
    def train_model(self, input_fn, steps):
        for step in range(20):
            self.log_metric("loss", 1.0 / (step + 1), step=step)
    def evaluate_model(self, input_fn, steps):
        return {"loss": 0.04, "acc": 0.9}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("v1")
MODEL = M(versions)
'''


def test_a_curve_and_a_result_of_the_same_name_stay_apart(project: Project):
    project.script("c.py", CURVE_AND_RESULT)
    project.configure(["c.py"])
    assert project.run("-r").returncode == 0
    shown = _json(project, "show", "1")
    rows = {(m["split"], m["name"], m["kind"]): m for m in shown["metrics"]}
    curve = rows[("train", "loss", "curve")]
    assert (curve["points"], curve["last_step"], curve["last"], curve["best"]) == (20, 19, 0.05, 0.05)
    assert rows[("train", "loss", "result")]["last"] == 0.04 and rows[("test", "acc", "result")]["last"] == 0.9
    listed = _json(project, "runs")
    assert listed[0]["metrics"]["train/loss"] == 0.04  # listings and sorting use the result
    table = project.run("show", "1").stdout
    assert "curve" in table and "result" in table


def test_test_mode_ends_saying_nothing_was_trained(project: Project):
    project.script("c.py", CURVE_AND_RESULT)
    project.configure(["c.py"])
    done = project.run()
    assert done.returncode == 0, done.stderr
    assert "nothing was trained" in done.stderr.splitlines()[-1] and "mlpipeline -r -u" in done.stderr


def test_status_without_a_runner_shows_what_would_run(project: Project):
    project.script("c.py", CURVE_AND_RESULT.replace('versions.add_version("v1")',
                                                    'versions.add_version("v1")\nversions.add_version("v2")'))
    project.configure(["c.py"])
    assert project.run("-r", "--version", "v1").returncode == 0
    state = _json(project, "status")
    assert state["preview"] and state["runner"]["alive"] is False
    assert [(q["script"], q["version"], q["state"]) for q in state["queue"]] == [
        ("models/c.py", "v1", "skipped"), ("models/c.py", "v2", "queued")]
    text = project.run("status").stdout
    assert "what mlpipeline -r -u would run now" in text and "already succeeded" in text


def test_no_message_names_the_project_as_dot(project: Project):
    project.script("c.py", CURVE_AND_RESULT)
    project.configure(["c.py"])
    assert project.run("-r").returncode == 0
    paused = project.run("pause")
    assert paused.returncode == 2
    assert ".:" not in paused.stderr and str(project.root) in paused.stderr, paused.stderr


def test_a_cancelled_run_is_not_resumed_as_an_interrupted_one(project: Project):
    project.script("w.py", LOADER + '''
class M(Model):
    def train_model(self, input_fn, steps):
        if not os.path.exists(os.path.join(ROOT, "go")):
            open(os.path.join(ROOT, "started"), "w").close()
            time.sleep(60)
    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}

versions = Versions(D(), batch_size=1, epoc_count=1)
versions.add_version("v1")
MODEL = M(versions)
''')
    project.configure(["w.py"])
    runner = project.start("-r")
    try:
        wait_for(lambda: (project.root / "started").exists(), proc=runner, what="the version to start")
        wait_for(lambda: project.run("cancel", "1").returncode == 0, what="the cancel request")
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert project.runs()[0]["status"] == "cancelled"
    (project.root / "go").touch()
    again = project.run("-r")
    assert again.returncode == 0, again.stderr
    assert "interrupted" not in again.stdout + again.stderr
    assert "resuming in" in again.stdout + again.stderr


def test_the_init_example_logs_a_curve(tmp_path: Path):
    made = subprocess.run([sys.executable, "-m", "mlpipeline", "init", str(tmp_path / "p")], capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    project = Project(tmp_path / "p")
    assert project.run("-r").returncode == 0
    shown = _json(project, "show", "1")
    assert any(m["kind"] == "curve" and m["points"] >= 10 for m in shown["metrics"]), shown["metrics"]


def test_the_torch_example_prints_no_warning(tmp_path: Path):
    pytest.importorskip("torch")
    import shutil

    shutil.copytree(REPO / "examples" / "torch-project", tmp_path / "t", ignore=shutil.ignore_patterns("outputs"))
    smoke = Project(tmp_path / "t").run(timeout=300)
    assert smoke.returncode == 0, smoke.stderr
    assert "Warning" not in smoke.stdout + smoke.stderr, (smoke.stdout + smoke.stderr)[-3000:]


PRUNED_WITH_DATA = '''\
import os, time
import numpy as np
from mlpipeline.data import ArrayLoader
from mlpipeline.helper import Model
from mlpipeline.utils import Versions

data = ArrayLoader(np.arange(40.0).reshape(20, 2), np.arange(20) % 2, test_size=0.25, seed=0)

class M(Model):
    def train_model(self, input_fn, steps):
        for step in range(1, 4):
            self.log_metric("loss", 1.0 / step + self.get_current_version()["x"], step=step)
            time.sleep(0.5)
    def evaluate_model(self, input_fn, steps):
        return {"acc": 1.0}

def propose(history):
    return {"x": len(history) + len(history.running)}

def stop(version, step, history):
    return version["params"]["x"] >= 1 and step >= 1

versions = Versions(data, batch_size=4, epoc_count=1)
versions.add_search(propose, budget=2, name="s", stopper=stop)
MODEL = M(versions)
'''


def test_a_pruned_run_is_no_failure_and_keeps_its_data_fingerprint(project: Project):
    project.script("p.py", PRUNED_WITH_DATA)
    project.configure(["p.py"])
    done = project.run("-r", timeout=180)
    assert done.returncode == 0, done.stderr
    runs = project.runs()
    assert sorted(r["status"] for r in runs) == ["pruned", "succeeded"]
    assert len({r["data_fingerprint"] for r in runs}) == 1 and runs[0]["data_fingerprint"].startswith("array:")
    pruned_lines = [line for line in done.stderr.splitlines() if "pruned after" in line]
    assert pruned_lines and not any("warning" in line for line in pruned_lines), pruned_lines
    compared = _json(project, "compare", "p")
    assert all("data" not in row for row in (compared if isinstance(compared, list) else compared["versions"]))


@pytest.mark.slow
def test_the_keras_sample_versions_end_apart(tmp_path: Path):
    pytest.importorskip("tensorflow")
    import shutil

    shutil.copytree(REPO / "examples" / "sample-project", tmp_path / "s", ignore=shutil.ignore_patterns("outputs"))
    project = Project(tmp_path / "s")
    done = project.run("-r", "-n", timeout=600)
    assert done.returncode == 0, done.stderr
    accuracy = {r["version"]: r["metrics"]["test/accuracy"] for r in _json(project, "runs")}
    assert accuracy["small"] > 0.9
    assert max(accuracy.values()) - min(accuracy.values()) > 0.05, accuracy
