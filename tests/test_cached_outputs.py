"""Cached outputs: Model.save_output in real runs, mlpipeline.outputs.load, and `mlpipeline outputs`."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from mlpipeline import outputs
from mlpipeline.script.cached_outputs import CorruptOutput, OutputError, StaleOutput

SCRIPT = """\
    import numpy as np
    import pandas as pd
    from mlpipeline.data import CSVLoader
    from mlpipeline.helper import Model
    from mlpipeline.utils import Versions

    points = CSVLoader("data/points.csv", target="y", test_size=0.25, shuffle=False, batch_size=2)

    class Predictor(Model):
        def pre_execution_hook(self, version, model_dir, exec_mode="test"):
            self.version = version

        def train_model(self, input_fn, steps):
            scale = self.version["scale"]
            self.save_output("preds", np.arange(6, dtype=np.float64).reshape(3, 2) * scale)
            self.save_output("same", np.arange(5))
            self.save_output("table", pd.DataFrame(
                {"id": [1, 2, 3], "label": ["a", None, "c"], "score": [0.5, float("nan"), scale],
                 "kind": pd.Categorical(["x", "y", "x"]), "n": pd.array([1, None, 3], dtype="Int64")},
                index=pd.Index(["r1", "r2", "r3"], name="row")))
            self.save_output("info", {"scale": scale, "tags": ["a", "b"], "note": None})

        def evaluate_model(self, input_fn, steps):
            return {"acc": 1.0}

    versions = Versions(points, batch_size=2, epoc_count=1)
    versions.add_version("v1", scale=2)
    versions.add_version("v2", scale=3)
    MODEL = Predictor(versions)
    """
CSV = "x,y\n1,0\n2,1\n3,0\n4,1\n"


def expected_table(scale):
    return pd.DataFrame({"id": [1, 2, 3], "label": ["a", None, "c"], "score": [0.5, float("nan"), scale],
                         "kind": pd.Categorical(["x", "y", "x"]), "n": pd.array([1, None, 3], dtype="Int64")},
                        index=pd.Index(["r1", "r2", "r3"], name="row"))


@pytest.fixture
def ran(project):
    project.write("data/points.csv", CSV)
    project.script("pred.py", SCRIPT)
    project.configure(["pred.py"])
    result = project.run("-r")
    assert result.returncode == 0, result.stderr
    return project


def test_outputs_round_trip_are_stored_once_and_listed(ran):
    project = ran
    preds = outputs.load("models/pred.py", "v1", "preds", project=project.root)
    assert preds.dtype == np.float64 and (preds == np.arange(6.0).reshape(3, 2) * 2).all()
    current = {"allow_stale": True, "project": project.root}  # checked above and in the listing: skip the check
    assert (outputs.load("pred", "v2", "preds", **current) == np.arange(6.0).reshape(3, 2) * 3).all()
    pd.testing.assert_frame_equal(outputs.load("pred.py", "v2", "table", **current), expected_table(3))
    assert outputs.load("pred.py", "v1", "info", **current) == {"scale": 2, "tags": ["a", "b"], "note": None}

    with project.db() as conn:
        rows = [dict(r) for r in conn.execute("SELECT * FROM outputs ORDER BY id")]
    assert len(rows) == 8 and {r["version"] for r in rows} == {"v1", "v2"}
    assert all(r["data_fingerprint"].startswith("csv:") and r["params_sha256"] and r["code_fingerprint"] for r in rows)
    same = [r for r in rows if r["name"] == "same"]
    assert same[0]["sha256"] == same[1]["sha256"]  # identical content: one file for both versions
    files = [os.path.join(d, f) for d, _, names in os.walk(project.outputs / "cache") for f in names]
    assert sorted(os.path.basename(f) for f in files) == sorted({os.path.basename(r["path"]) for r in rows})
    assert len(files) == 7 and all(f.endswith((".npy", ".npz", ".json")) for f in files)

    table = project.run("outputs")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == ["run", "status", "script", "version", "name", "kind", "summary", "created", "stale"]
    assert "models/pred.py" in table.stdout and "frame 3x5" in table.stdout and "array float64 (3, 2)" in table.stdout
    listed = json.loads(project.run("outputs", "--script", "pred.py", "--format", "json").stdout)
    assert len(listed) == 8 and {r["stale"] for r in listed} == {"no"}
    assert {(r["version"], r["name"]) for r in listed} == {(v, n) for v in ("v1", "v2")
                                                            for n in ("preds", "same", "table", "info")}

    test_mode = project.run()  # in-process, temp dirs: the values are checked, nothing is stored or indexed
    assert test_mode.returncode == 0, test_mode.stderr
    assert "output 'preds' (array float64 (3, 2)) not saved in test mode" in test_mode.stdout + test_mode.stderr
    with project.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0] == 8


def test_changed_code_params_or_data_make_an_output_stale(ran):
    project = ran
    script = project.models / "pred.py"
    original = script.read_text()

    script.write_text(original.replace("return {\"acc\": 1.0}", "return {\"acc\": 0.5}"))
    with pytest.raises(StaleOutput, match=r"is stale: the code changed \(models/pred.py or a module it uses\) since"
                                          r" it was saved; run the version again") as caught:
        outputs.load("pred.py", "v1", "preds", project=project.root)
    assert "parameters" not in str(caught.value) and "data" not in str(caught.value)
    stale = outputs.load("pred.py", "v1", "preds", allow_stale=True, project=project.root)
    assert (stale == np.arange(6.0).reshape(3, 2) * 2).all()

    script.write_text(original.replace("scale=2", "scale=5"))  # a version declaration: params, not code
    with pytest.raises(StaleOutput, match=r"is stale: the parameters of version 'v1' changed since") as caught:
        outputs.load("pred.py", "v1", "preds", project=project.root)
    assert "code" not in str(caught.value)
    assert outputs.load("pred.py", "v2", "info", project=project.root)["scale"] == 3  # v2 is unchanged

    script.write_text(original)
    (project.root / "data" / "points.csv").write_text(CSV + "5,0\n")
    with pytest.raises(StaleOutput, match=r"is stale: the data changed \(csv:[0-9a-f]{12} then, csv:[0-9a-f]{12} "
                                          r"now\) since") as caught:
        outputs.load("pred.py", "v1", "table", project=project.root)
    assert "code" not in str(caught.value)
    listed = json.loads(project.run("outputs", "--format", "json").stdout)
    assert {r["stale"] for r in listed} == {"data"}
    assert project.run("outputs", "--format", "csv").stdout.splitlines()[0].startswith("id,run,script,version,name")

    (project.root / "data" / "points.csv").write_text(CSV)
    assert outputs.load("pred.py", "v1", "info", project=project.root)["scale"] == 2  # current again
    with project.db() as conn:
        path = conn.execute("SELECT path FROM outputs WHERE version = 'v1' AND name = 'info'").fetchone()[0]
    (project.outputs / path).write_text('{"scale": 99}')
    with pytest.raises(CorruptOutput, match=r"no longer matches its sha256 .*delete it and run the version again"):
        outputs.load("pred.py", "v1", "info", allow_stale=True, project=project.root)
    with pytest.raises(OutputError, match=r"models/pred.py v1: no output named 'nope' \(saved for that version: "
                                          r"'info', 'preds', 'same', 'table'\)"):
        outputs.load("pred.py", "v1", "nope", project=project.root)


def test_a_value_that_cannot_be_stored_fails_the_version_with_its_name(project):
    project.script("bad.py", """\
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions
        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1
        class M(Model):
            def train_model(self, input_fn, steps):
                self.save_output("pairs", {"a": (1, 2)})
            def evaluate_model(self, input_fn, steps): return 1.0
        v = Versions(L(), 1, 1)
        v.add_version("only")
        MODEL = M(v)
        """)
    project.configure(["bad.py"])
    result = project.run()
    assert result.returncode == 1
    assert "OutputError: save_output('pairs'): this dict would not come back as it is from JSON" in result.stderr
