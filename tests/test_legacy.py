"""Scripts written for the original mlpipeline 1.x run unmodified, in both modes."""
from __future__ import annotations

import json

LEGACY = ["sample_model.py", "classifier.py", "dict_model.py"]


def setup(project):
    project.copy_fixture(*LEGACY, "classifier_common.py")


def test_legacy_scripts_in_test_mode(project):
    setup(project)
    project.configure(["sample_model.py", "dict_model.py"], test_scripts=["sample_model.py", "dict_model.py"])
    result = project.run()
    assert result.returncode == 0, result.stderr
    runs = project.runs()
    assert [(r["script"], r["version"], r["status"]) for r in runs] == [
        ("models/sample_model.py", "version3", "succeeded"),
        ("models/sample_model.py", "version2", "succeeded"),
        ("models/sample_model.py", "version1", "succeeded"),
        ("models/dict_model.py", "as_dict", "succeeded"),
        ("models/dict_model.py", "as_number", "succeeded"),
        ("models/dict_model.py", "as_text", "succeeded"),
    ]
    assert all(r["steps"] == 1 for r in runs)
    assert runs[0]["eval_train_text"] == "TRAIN_a: 10.0000    TRAIN_b: 2.0000"
    assert runs[0]["eval_test_text"] == "TEST_a: 10.0000    TEST_b: 2.0000"


def test_legacy_classifier_failure_stops_test_mode(project):
    setup(project)
    project.configure(["classifier.py"])
    result = project.run()
    # lr_big has ORDER 1 and raises, as in the original's own run of this script.
    assert result.returncode == 1
    assert "Exception: diverged at lr=0.9" in result.stderr
    assert [r["version"] for r in project.runs()] == ["lr_big"]


def test_legacy_scripts_in_execution_mode(project):
    setup(project)
    project.configure(LEGACY)
    result = project.run("-r", "-u")
    assert result.returncode == 1  # lr_big raises on purpose
    runs = {(r["script"].split("/")[-1], r["version"]): r for r in project.runs()}
    statuses = {key: r["status"] for key, r in runs.items()}
    assert statuses == {
        ("sample_model.py", "version1"): "succeeded", ("sample_model.py", "version2"): "succeeded",
        ("sample_model.py", "version3"): "succeeded", ("classifier.py", "lr_big"): "failed",
        ("classifier.py", "lr_mid"): "succeeded", ("classifier.py", "lr_small"): "succeeded",
        ("dict_model.py", "as_dict"): "succeeded", ("dict_model.py", "as_number"): "succeeded",
        ("dict_model.py", "as_text"): "succeeded",
    }
    # steps = epoc_count * samples / batch_size - trained steps (the script claims 10 trained)
    assert runs[("sample_model.py", "version1")]["steps"] == 10 * 1000 - 10
    assert runs[("sample_model.py", "version3")]["steps"] == 20 * 1000 - 10
    assert runs[("classifier.py", "lr_mid")]["steps"] == 2 * 32 // 4
    # the released Versions(learning_rate, dataloader, ...) form keeps its learning rate
    assert json.loads(runs[("classifier.py", "lr_mid")]["params"])["learning_rate"] == 0.1
    ckpts = project.outputs / "model_ckpts"
    assert runs[("classifier.py", "lr_mid")]["model_dir"] == str(ckpts / "classifier-mid")
    assert (ckpts / "classifier-mid" / "steps.txt").read_text() == "16"
    # copy_related_files("exports") copies the script into exports/ of the project folder
    # (relative to where mlpipeline runs, as the original); every model dir gets a copy too
    assert (project.root / "exports" / "sample_model.py").exists()
    assert (ckpts / "classifier-mid" / "classifier_common.py").exists()
    # a str eval result is kept as text, numbers as metrics
    assert runs[("dict_model.py", "as_text")]["eval_test_text"] == "all good"
    assert runs[("dict_model.py", "as_number")]["eval_test_text"] == "value: 11.0000"
    log = next(project.outputs.glob("log-*")).read_text()
    assert "training done, hyperparameter=0.5" in log
    assert "a: 4.5000" in log  # MetricContainer.log_metrics lines reach the log
    assert "a: 4.5000    \n" in log  # log_metrics(['a', '2']): '2' is not a metric, skipped
    output = next(project.outputs.glob("output-*")).read_text()
    assert "Eval on train set: TRAIN_a: 10.0000    TRAIN_b: 2.0000" in output
    assert "object at 0x" not in output  # the original printed metric object reprs


def test_legacy_classifier_resumes_and_history_skips(project):
    setup(project)
    project.configure(["classifier.py = lr_mid, lr_small"])
    assert project.run("-r").returncode == 0
    # without -u the versions run again, resuming: nothing left to train
    assert project.run("-r").returncode == 0
    steps = [r["steps"] for r in project.runs(version="lr_mid")]
    assert steps == [16, 0]
    assert project.run("-r", "-u").returncode == 0
    assert len(project.runs()) == 4


def test_log_metric_points_are_recorded(project):
    project.script("curve.py", """\
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions, MetricContainer

        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 3
            def get_test_sample_count(self): return 1

        class M(Model):
            def train_model(self, input_fn, steps):
                for step in range(steps):
                    self.log_metric("loss", 1.0 / (step + 1), step=step)
                m = MetricContainer(["acc"])
                m.acc.update(0.5)
                m.log_metrics(step=steps)
            def evaluate_model(self, input_fn, steps):
                return {"acc": 0.75}

        v = Versions(L(), 1, 1)
        v.add_version("only")
        MODEL = M(v)
        """)
    project.configure(["curve.py"])
    assert project.run("-r").returncode == 0
    with project.db() as conn:
        rows = [tuple(r) for r in conn.execute("SELECT split, name, step, value FROM metrics ORDER BY rowid")]
    assert rows == [("train", "loss", 0, 1.0), ("train", "loss", 1, 0.5), ("train", "loss", 2, 1.0 / 3),
                    ("train", "acc", 3, 0.5), ("train", "acc", None, 0.75), ("test", "acc", None, 0.75)]
