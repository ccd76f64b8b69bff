"""Rich results from evaluate_model (results.json) and predictions in a child process, on real runs."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers import FIXTURES, Project, pid_alive
from mlpipeline.plan.config import find_project
from mlpipeline.core.errors import UsageError
from mlpipeline.run.predict import PredictError, list_predictions, load_prediction, run_predict
from mlpipeline.script.results import fit, load_results, save_results

MODULE_PREDICT = """\
    import os
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    class M(Model):
        def train_model(self, input_fn, steps): pass
        def evaluate_model(self, input_fn, steps): return {"acc": 1.0}

    def predict(input_path, model_dir):
        return 0.5 if os.path.isdir(model_dir) else -1.0

    v = Versions(L(), 1, 1)
    v.add_version("only")
    MODEL = M(v)
    """

NO_PREDICT = MODULE_PREDICT.replace("def predict(", "def not_predict(")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Project:
    """One project trained once (-r) and tested once, shared by the tests below:
    rich_model.py's rich (results), plain (metrics only) and failing versions."""
    project = Project(tmp_path_factory.mktemp("results") / "proj")
    project.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    project.models.mkdir(parents=True)
    shutil.copy(FIXTURES / "rich_model.py", project.models / "rich_model.py")
    project.script("module_predict.py", MODULE_PREDICT)
    project.script("no_predict.py", NO_PREDICT)
    project.configure(["rich_model.py", "module_predict.py", "no_predict.py"], test_scripts=["module_predict.py"])
    result = project.run("-r")
    assert result.returncode == 1, result.stderr  # the failing version
    assert project.run().returncode == 0
    project.write("input.txt", "hello world foo\n")
    return project


def run_of(project: Project, version: str, mode: str = "run", script: str = "rich_model.py") -> dict:
    return next(r for r in project.runs(version=version, mode=mode, script=f"models/{script}"))


def test_evaluate_results_are_saved_and_metrics_unaffected(trained):
    run = run_of(trained, "rich")
    assert run["status"] == "succeeded"
    results = json.loads((Path(run["run_dir"]) / "results.json").read_text())
    assert results == load_results(run["run_dir"])
    assert set(results) == {"train", "test"}
    train = results["train"]
    assert train["columns"] == ["x", "y", "missing", "n"]  # from the rows' dict keys
    assert train["data"] == [[1.0, 2.0, None, 0], [2.0, 4.0, None, 1], [3.0, 6.0, None, 2]]  # NaN → null, numpy → int
    assert train["text"] == "3 points, scale 2.0"
    assert results["test"]["data"] == [[4.0, 8.0, None, 0], [5.0, 10.0, None, 1]]
    graphs = train["graphs"]  # the plotly-like dict kept, the figure object converted, the int left out
    assert graphs[0]["data"][0]["type"] == "scatter" and graphs[0]["layout"] == {"title": "y"}
    assert graphs[1]["data"][0]["y"] == [1, 2] and len(graphs) == 2
    with trained.db() as conn:
        metrics = {(r["split"], r["name"]): r["value"]
                   for r in conn.execute("SELECT * FROM metrics WHERE run_id = ?", (run["id"],))}
    assert metrics == {("train", "accuracy"): 0.75, ("train", "loss"): 0.25,
                       ("test", "accuracy"): 0.75, ("test", "loss"): 0.25}
    assert run["eval_test_text"] == "accuracy: 0.7500    loss: 0.2500"  # no table or text dumped into it
    log = (Path(run["run_dir"]) / "output.log").read_text()
    assert "graphs[2] (int) is not a plotly figure" in log
    assert "results (train: table 3×4, 2 graphs, text; test: table 2×4, 2 graphs, text) saved" in log
    plain = run_of(trained, "plain")
    assert plain["status"] == "succeeded" and load_results(plain["run_dir"]) is None


def test_results_beyond_the_cap_keep_a_cut_table(tmp_path):
    rows = [[i, "x" * 50] for i in range(2000)]
    results = {"test": {"columns": ["i", "s"], "data": rows, "text": "t"}, "train": {"text": "small"}}
    notes = save_results(str(tmp_path), results, limit=20_000)
    saved = load_results(str(tmp_path))
    assert len(json.dumps(saved)) <= 20_000 and saved["train"] == {"text": "small"}
    kept = saved["test"]["data"]
    assert 0 < len(kept) < 2000 and kept == rows[:len(kept)] and saved["test"]["rows_total"] == 2000
    assert notes == [f"test: table cut to its first {len(kept)} of 2000 rows: the results would exceed 20000 bytes"]
    huge = {"test": {"graphs": [{"data": "y" * 5000}], "text": "z" * 5000}}
    assert fit(huge, limit=1000) == ["test: its graphs left out: the results would exceed 1000 bytes",
                                     "test: its text left out: the results would exceed 1000 bytes"]
    assert not [p for p in os.listdir(tmp_path) if p != "results.json"]  # the temp file is gone


def test_predict_through_the_cli(trained):
    run = run_of(trained, "rich")
    result = trained.run("predict", str(run["id"]), "input.txt")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "3 lines"
    assert lines[2].split() == ["line", "score"] and lines[4].split() == ["hello", "10"]
    assert "version: rich" in result.stdout and "count:" in result.stdout
    assert f"run {run['id']}: prediction " in result.stderr
    as_json = trained.run("predict", run["uid"][:8], "input.txt", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    outcome = json.loads(as_json.stdout)
    assert outcome["results"]["data"] == [["hello", 10.0], ["world", 10.0], ["foo", 6.0]]
    assert outcome["results"]["metrics"]["count"] == 3 and outcome["results"]["values"] == {"version": "rich"}
    folder = Path(outcome["dir"])
    assert folder == Path(run["run_dir"]) / "predictions" / str(outcome["prediction"])
    assert (folder / "input.txt").read_text() == "hello world foo\n"


def test_predict_runs_in_a_child_and_never_imports_the_script_here(trained):
    run = run_of(trained, "plain")
    imports = trained.root / "probe" / "imported-by"
    outcome = run_predict(find_project(str(trained.root)), run["id"], str(trained.root / "input.txt"))
    assert outcome["results"]["values"] == {"version": "plain"}
    assert outcome["results"]["data"][0] == ["hello", 5.0]  # read from the run's model dir (scale 1)
    child = outcome["results"]["metrics"]["pid"]
    assert child != os.getpid() and str(os.getpid()) not in imports.read_text().split()
    assert not any("rich_model" in name for name in sys.modules)
    again = run_predict(find_project(str(trained.root)), dict(run), str(trained.root / "input.txt"))
    assert again["prediction"] == outcome["prediction"] + 1
    listed = list_predictions(run["run_dir"])
    assert [(p["prediction"], p["status"], p["source"]) for p in listed][-2:] == [
        (outcome["prediction"], "succeeded", "input.txt"), (again["prediction"], "succeeded", "input.txt")]
    full = load_prediction(run["run_dir"], again["prediction"])
    assert full["results"] == again["results"] and full["version"] == "plain"


def test_a_module_level_predict(trained):
    outcome = run_predict(find_project(str(trained.root)), run_of(trained, "only", script="module_predict.py")["id"],
                          str(trained.root / "input.txt"))
    assert outcome["results"] == {"metrics": {"value": 0.5}}


def test_a_hanging_predict_is_killed_at_its_timeout(trained, tmp_path):
    run = run_of(trained, "rich")
    hang = tmp_path / "hang.txt"
    hang.write_text("hang\n")
    with pytest.raises(PredictError) as caught:
        run_predict(find_project(str(trained.root)), run["id"], str(hang), timeout=1.5)
    message = str(caught.value)
    assert "predict ran longer than 1.5 s (the timeout); its processes were killed" in message
    assert "output.log" in message and "\n" not in message
    pids = [int(p) for p in (trained.root / "probe" / "hung-pids").read_text().split()]
    assert len(pids) == 2 and not any(pid_alive(pid) for pid in pids)  # the predict and the helper it started
    assert list_predictions(run["run_dir"])[-1]["status"] == "timeout"


def test_a_failing_predict_gives_a_clear_error(trained, tmp_path):
    run = run_of(trained, "rich")
    bad = tmp_path / "raise.txt"
    bad.write_text("raise\n")
    with pytest.raises(PredictError) as caught:
        run_predict(find_project(str(trained.root)), run["id"], str(bad))
    assert str(caught.value).startswith(f"run {run['id']} (models/rich_model.py rich): predict failed: "
                                        f"ValueError: bad input on purpose; see ")
    assert 'rich_model.py", line' in caught.value.details and "mlpipeline/predict.py" not in caught.value.details
    result = trained.run("predict", str(run["id"]), str(bad))
    assert result.returncode == 1
    assert "error: " in result.stderr and "ValueError: bad input on purpose" in result.stderr
    log = Path(list_predictions(run["run_dir"])[-1]["log"]).read_text()
    assert "raise ValueError(\"bad input on purpose\")" in log


@pytest.mark.parametrize("which, expected", [
    ("test", "is a test-mode run: its model dir was temporary and is gone"),
    ("failing", "did not succeed (status failed): predict needs a run whose training succeeded"),
    ("no_predict", "defines no predict(input_path, model_dir)"),
])
def test_runs_that_cannot_predict_are_refused(trained, which, expected):
    if which == "test":
        run = run_of(trained, "only", mode="test", script="module_predict.py")
    elif which == "no_predict":
        run = run_of(trained, "only", script="no_predict.py")
    else:
        run = run_of(trained, which)
    result = trained.run("predict", str(run["id"]), "input.txt")
    assert result.returncode == (1 if which == "no_predict" else 2)
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_run_whose_model_dir_or_script_is_gone_is_refused(project):
    project.script("gone.py", MODULE_PREDICT)
    project.configure(["gone.py"])
    assert project.run("-r").returncode == 0
    project.write("input.txt", "x")
    run = project.runs()[0]
    shutil.rmtree(run["model_dir"])
    with pytest.raises(UsageError, match=r"its model dir .* is gone; train the version again"):
        run_predict(find_project(str(project.root)), run["id"], str(project.root / "input.txt"))
    os.makedirs(run["model_dir"])
    (project.models / "gone.py").unlink()
    with pytest.raises(UsageError, match=r"its script models/gone.py no longer exists; restore it"):
        run_predict(find_project(str(project.root)), run["id"], str(project.root / "input.txt"))
