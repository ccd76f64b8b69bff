"""mlpipeline.data: the loaders (arrays, DataFrames, CSV files, SQL queries) feeding real Keras and PyTorch
models, their splits, batches and conversions, and the data fingerprint recorded on a run."""
from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipeline import data
from mlpipeline.data import ArrayLoader, CSVLoader, DataError, FrameLoader, MissingDependency, SQLLoader
from mlpipeline.utils import ModeKeys

FEATURES = ["f0", "f1", "f2", "f3"]


def toy(rows: int = 200, seed: int = 0):
    """A linearly separable two-class set: label = f0 + f1 > 0."""
    x = np.random.default_rng(seed).normal(size=(rows, len(FEATURES))).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def toy_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    x, y = toy(rows, seed)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["label"] = y
    return frame


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def write_db(path: Path, frame: pd.DataFrame) -> Path:
    with sqlite3.connect(path) as conn:
        frame.to_sql("toy", conn, index=False)
    conn.close()
    return path


QUERY = "SELECT f0, f1, f2, f3, label FROM toy"


def every_kind(tmp_path: Path, **options):
    """One loader of each kind over the same toy rows."""
    frame = toy_frame()
    x, y = toy()
    return {
        "array": ArrayLoader(x, y, **options),
        "frame": FrameLoader(frame, target="label", **options),
        "csv": CSVLoader(write_csv(tmp_path / "toy.csv", frame), target="label", **options),
        "sql": SQLLoader(QUERY, "sqlite:///" + str(write_db(tmp_path / "toy.db", frame)), target="label", **options),
    }


# --- splits, shuffling, batches -------------------------------------------------------------------------------

def test_every_kind_reads_the_same_rows(tmp_path):
    loaders = every_kind(tmp_path)
    x, y = toy()
    for kind, loader in loaders.items():
        assert loader.fingerprint.startswith(kind + ":")
        assert loader.get_train_sample_count() == 160 and loader.get_test_sample_count() == 40, kind
        got_x, got_y = loader.arrays("all")
        np.testing.assert_allclose(got_x, x, rtol=1e-6, err_msg=kind)
        assert got_y.dtype == np.int64 and (got_y == y).all(), kind
        assert loader.feature_names in ([], FEATURES)
        assert "160 train / 40 test rows" in loader.summery


def test_split_sizes_and_explicit_splits():
    x, y = toy(100)
    ceil = ArrayLoader(x, y, test_size=0.25)
    assert (ceil.get_train_sample_count(), ceil.get_test_sample_count()) == (75, 25)
    assert ArrayLoader(x, y, test_size=0.015).get_test_sample_count() == 2  # rounded up, as scikit-learn does
    counted = ArrayLoader(x, y, test_size=30)
    assert (counted.get_train_sample_count(), counted.get_test_sample_count()) == (70, 30)
    assert sorted(np.concatenate([counted.train_indices, counted.test_indices]).tolist()) == list(range(100))
    assert ArrayLoader(x, y, test_size=0).get_test_sample_count() == 0
    ordered = ArrayLoader(x, y, test_size=0.1, shuffle=False)
    assert ordered.test_indices.tolist() == list(range(90, 100))  # unshuffled: the last rows are the test rows
    explicit = ArrayLoader(x, y, split=(range(0, 60), [99, 98]))
    assert (explicit.get_train_sample_count(), explicit.get_test_sample_count()) == (60, 2)
    np.testing.assert_array_equal(explicit.arrays("test")[0], x[[99, 98]])
    for bad, message in [({"test_size": 1.0}, "fraction in \\[0, 1\\)"), ({"test_size": 101}, "there are 100 rows"),
                         ({"test_size": "0.2"}, "a fraction"), ({"split": ([0, 1], [1, 2])}, "overlap"),
                         ({"split": ([0], [100])}, "from 0 to 99"), ({"batch_size": 0}, "positive integer")]:
        with pytest.raises(DataError, match=message):
            ArrayLoader(x, y, **bad)
    with pytest.raises(DataError, match="x has 100 rows but y has 99"):
        ArrayLoader(x, y[:99])


def test_shuffle_is_determined_by_the_seed():
    x, y = toy(100)

    def orders(**options):
        loader = ArrayLoader(x, y, **options)
        epochs = [np.concatenate([b[1] for b in loader.get_train_input()]) for _ in range(2)]
        return loader.test_indices.tolist(), [e.tolist() for e in epochs]

    split, epochs = orders(seed=3)
    assert orders(seed=3) == (split, epochs)  # same seed: same split, same batch orders, in a new process too
    assert epochs[0] != epochs[1]  # a new order every epoch
    assert orders(seed=4)[0] != split and orders(seed=4)[1] != epochs
    loader = ArrayLoader(x, y, seed=3)
    evaluated = np.concatenate([b[1] for b in loader.get_train_input(mode=ModeKeys.TEST)])
    np.testing.assert_array_equal(evaluated, y[loader.train_indices])  # evaluation: data order
    unshuffled = ArrayLoader(x, y, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in unshuffled.get_train_input()]), y[:80])


def test_batches_have_the_batch_size_and_the_rest_last():
    x, y = toy(10)
    loader = ArrayLoader(x, y, test_size=0, batch_size=4)
    batches = list(loader.get_train_input())
    assert [(bx.shape, by.shape) for bx, by in batches] == [((4, 4), (4,)), ((4, 4), (4,)), ((2, 4), (2,))]
    assert [len(bx) for bx, _ in loader.get_train_input(batch_size=5)] == [5, 5]
    assert list(loader.get_test_input()) == []
    generator = loader.get_train_input()
    assert next(iter(generator)) is not None and loader.get_train_input() is not generator  # fresh each time
    unlabeled = ArrayLoader(x, test_size=0, batch_size=3)
    assert [b.shape for b in unlabeled.get_train_input()] == [(3, 4), (3, 4), (3, 4), (1, 4)]
    images = ArrayLoader(np.zeros((6, 2, 3, 3), dtype=np.uint8), np.arange(6), test_size=2, batch_size=4)
    assert [b[0].shape for b in images.get_train_input()] == [(4, 2, 3, 3)]


def test_columns_are_encoded_numbers_one_hot_and_classes(tmp_path):
    frame = pd.DataFrame({"size": [1.5, 2.0, None, 4.0, 5.5], "island": ["b", "a", "a", "c", None],
                          "species": ["gentoo", "adelie", "adelie", "gentoo", "chinstrap"]})
    loader = FrameLoader(frame, target="species", test_size=0)
    assert loader.feature_names == ["size", "island=a", "island=b", "island=c"]
    assert loader.classes == ["adelie", "gentoo"]  # rows with a missing value are dropped (dropna=True)
    np.testing.assert_array_equal(loader.x, [[1.5, 0, 1, 0], [2.0, 1, 0, 0], [4.0, 0, 0, 1]])
    assert loader.y.tolist() == [1, 0, 1] and "dropped 2 rows" in loader.summery
    kept = FrameLoader(frame, target="species", test_size=0, dropna=False)
    assert kept.x.shape == (5, 4) and math.isnan(kept.x[2, 0]) and kept.x[4, 1:].tolist() == [0, 0, 0]
    assert FrameLoader(frame, target="species", features=["size"], test_size=0).x.shape == (4, 1)  # used columns only
    with pytest.raises(DataError, match=r"no column 'kind' for the target \(columns: size, island, species\)"):
        FrameLoader(frame, target="kind")
    with pytest.raises(DataError, match="no column 'weight'"):
        FrameLoader(frame, target="species", features=["weight"])
    path = tmp_path / "penguins.csv"
    path.write_text("bill,island,species\n39.1,Torgersen,Adelie\nNA,Biscoe,Gentoo\n46.5,Dream,Chinstrap\n"
                    "50.0,Biscoe,Gentoo\n")
    csv_loader = CSVLoader(path, target="species", test_size=0)
    assert csv_loader.classes == ["Adelie", "Chinstrap", "Gentoo"] and csv_loader.y.tolist() == [0, 1, 2]
    assert csv_loader.feature_names == ["bill", "island=Biscoe", "island=Dream", "island=Torgersen"]


def test_csv_is_read_the_same_without_pandas(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "toy.csv", toy_frame(50))
    with_pandas = CSVLoader(path, target="label")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    without = CSVLoader(path, target="label")
    np.testing.assert_allclose(without.x, with_pandas.x, rtol=1e-6)
    assert without.y.dtype == np.int64 and (without.y == with_pandas.y).all()
    assert without.fingerprint == with_pandas.fingerprint
    with pytest.raises(MissingDependency, match=r"pip install 'mlpipeline\[data\]'"):
        CSVLoader(path, target="label", read_options={"nrows": 3})
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"ragged.csv:3: 1 fields, the header has 2"):
        CSVLoader(tmp_path / "ragged.csv")


def test_sql_sources_and_their_errors(tmp_path, monkeypatch):
    db = write_db(tmp_path / "toy.db", toy_frame(30))
    by_url = SQLLoader(QUERY, f"sqlite:///{db}", target="label")
    conn = sqlite3.connect(db)
    by_connection = SQLLoader("SELECT f0, f1, f2, f3, label FROM toy WHERE f0 > ?", conn, params=(0,), target="label")
    conn.close()
    assert by_url.x.shape == (30, 4) and by_connection.x.shape[0] == int((toy(30)[0][:, 0] > 0).sum())
    with pytest.raises(DataError, match="no such database file"):
        SQLLoader(QUERY, f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # opened read-only: never created
    with pytest.raises(DataError, match="no such table: nope"):
        SQLLoader("SELECT * FROM nope", f"sqlite:///{db}")
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(MissingDependency, match="needs sqlalchemy, which is not installed; install it with pip"):
        SQLLoader(QUERY, "postgresql://localhost/toy")
    with pytest.raises(DataError, match="expected a DB-API connection or a database URL, got int"):
        SQLLoader(QUERY, 42)


def test_conversions_name_the_extra_to_install(monkeypatch):
    loader = ArrayLoader(*toy(10))
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependency, match=r"ArrayLoader.to_torch needs torch.*pip install 'mlpipeline\[torch\]'"):
        loader.to_torch()
    with pytest.raises(MissingDependency, match=r"to_tf_dataset needs tensorflow.*pip install 'mlpipeline\[tf\]'"):
        loader.to_tf_dataset()


# --- fingerprints ---------------------------------------------------------------------------------------------

def test_fingerprints_follow_the_data(tmp_path):
    x, y = toy(40)
    assert ArrayLoader(x, y).fingerprint == ArrayLoader(x.copy(), y.copy(), seed=9, test_size=5).fingerprint
    changed = x.copy()
    changed[3, 1] += 1
    assert ArrayLoader(changed, y).fingerprint != ArrayLoader(x, y).fingerprint
    assert ArrayLoader(x.astype(np.float64), y).fingerprint != ArrayLoader(x, y).fingerprint  # dtype counts
    assert ArrayLoader(x.reshape(40, 2, 2), y).fingerprint != ArrayLoader(x, y).fingerprint  # shape counts
    assert ArrayLoader(x).fingerprint != ArrayLoader(x, y).fingerprint

    frame = toy_frame(40)
    assert FrameLoader(frame, target="label").fingerprint == FrameLoader(frame.copy(), target="label").fingerprint
    edited = frame.copy()
    edited.loc[5, "f2"] = 9.0
    assert FrameLoader(edited, target="label").fingerprint != FrameLoader(frame, target="label").fingerprint
    unused = frame.assign(note="x")  # a column the loader does not use is not its data
    assert FrameLoader(unused, target="label", features=FEATURES).fingerprint == \
        FrameLoader(frame, target="label").fingerprint

    path = write_csv(tmp_path / "a.csv", frame)
    first = CSVLoader(path, target="label").fingerprint
    assert first == "csv:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert CSVLoader(path, target="label", test_size=0.5).fingerprint == first
    write_csv(path, edited)
    assert CSVLoader(path, target="label").fingerprint != first

    db = write_db(tmp_path / "a.db", frame)
    url = f"sqlite:///{db}"
    before = SQLLoader(QUERY, url, target="label").fingerprint
    assert SQLLoader(QUERY, url, target="label").fingerprint == before
    assert SQLLoader(QUERY + " WHERE 1", url, target="label").fingerprint != before  # the query text counts
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE toy SET f3 = f3 + 1 WHERE rowid = 7")
    conn.close()
    assert SQLLoader(QUERY, url, target="label").fingerprint != before


def test_combined_fingerprints_are_stable():
    a, b = "csv:" + "a" * 64, "sql:" + "b" * 64
    assert data.combine_fingerprints([a]) == a and data.combine_fingerprints([None]) is None
    both = data.combine_fingerprints([a, b, a])
    assert both == data.combine_fingerprints([b, a]) and both.startswith("csv+sql:") and len(both) == 8 + 64
    before = data.registry_size()
    loader = ArrayLoader(*toy(20))
    assert data.run_fingerprint() == data.combine_fingerprints(f for f, _ in data._fingerprint._REGISTRY)
    assert data.version_fingerprint(loader, since=data.registry_size()) == loader.fingerprint
    assert data.version_fingerprint(object(), since=before) == loader.fingerprint  # created during the version


def test_a_version_gets_the_loaders_its_script_created(tmp_path):
    from mlpipeline.script.loading import load_module

    write_csv(tmp_path / "a.csv", toy_frame(20))
    script = tmp_path / "uses_csv.py"
    script.write_text(textwrap.dedent("""\
        import os
        from mlpipeline.data import CSVLoader
        from mlpipeline.helper import DataLoader

        TABLE = CSVLoader(os.path.join(os.path.dirname(__file__), "a.csv"), target="label")

        class Wrapped(DataLoader):      # a loader of the script's own that holds one of ours
            def __init__(self):
                self.inner = TABLE

        class Opaque(DataLoader):       # one that reads the module-level loader: nothing to follow
            pass
        """))
    module = load_module(str(script))
    mark = data.registry_size()
    assert data.version_fingerprint(module.Wrapped(), str(script), mark) == module.TABLE.fingerprint
    assert data.version_fingerprint(module.Opaque(), str(script), mark) == module.TABLE.fingerprint
    assert data.version_fingerprint(module.Opaque(), str(tmp_path / "other.py"), mark) is None


# --- real models --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["array", "frame", "csv", "sql"])
def test_each_kind_trains_a_torch_model(tmp_path, kind):
    import torch

    loader = every_kind(tmp_path, batch_size=16, seed=1)[kind]
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = torch.nn.CrossEntropyLoss()

    def mean_loss(split):
        with torch.no_grad():
            losses = [loss_fn(model(xb), yb).item() for xb, yb in loader.to_torch(split)]
        return sum(losses) / len(losses)

    before = mean_loss("train")
    train = loader.to_torch("train")
    assert train.batch_size == 16 and len(train.dataset) == 160
    for _ in range(3):
        for xb, yb in train:
            assert xb.dtype == torch.float32 and yb.dtype == torch.int64
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
    after = mean_loss("train")
    assert math.isfinite(after) and after < before * 0.7
    with torch.no_grad():
        correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in loader.to_torch("test", batch_size=7))
    assert correct / loader.get_test_sample_count() > 0.85
    (tmp_path / "again").mkdir()
    again = every_kind(tmp_path / "again", batch_size=16, seed=1)[kind]
    assert [yb.tolist() for _, yb in again.to_torch()] == [yb.tolist() for _, yb in loader.to_torch()]  # same seed


KERAS_SCRIPT = '''\
import os
import numpy as np
import pandas as pd
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
import tensorflow as tf
from mlpipeline.data import ArrayLoader, CSVLoader, FrameLoader, SQLLoader
from mlpipeline.helper import Model
from mlpipeline.utils import Versions

HERE = os.path.dirname(os.path.abspath(__file__))
frame = pd.read_csv(os.path.join(HERE, "toy.csv"))
x, y = frame[["f0", "f1", "f2", "f3"]].to_numpy(np.float32), frame["label"].to_numpy()
options = dict(batch_size=16, seed=1)
LOADERS = {
    "array": ArrayLoader(x, y, **options),
    "frame": FrameLoader(frame, target="label", **options),
    "csv": CSVLoader(os.path.join(HERE, "toy.csv"), target="label", **options),
    "sql": SQLLoader("SELECT f0, f1, f2, f3, label FROM toy", "sqlite:///" + os.path.join(HERE, "toy.db"),
                     target="label", **options),
}


class Net(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="Test"):
        self.version = version
        tf.keras.utils.set_random_seed(0)
        self.net = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, activation="relu"),
                                        tf.keras.layers.Dense(2, activation="softmax")])
        self.net.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                         metrics=["accuracy"])

    def train_model(self, input_fn, steps):
        loader = self.version["dataloader"]
        feed = loader.to_tf_dataset("train") if self.version["feed"] == "tf" else input_fn
        history = self.net.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0)
        self.log_metric("loss", float(history.history["loss"][-1]), step=int(steps))

    def evaluate_model(self, input_fn, steps):
        batches = list(input_fn)
        xs = np.concatenate([b[0] for b in batches])
        ys = np.concatenate([b[1] for b in batches])
        loss, accuracy = self.net.evaluate(xs, ys, verbose=0)
        return {"loss": loss, "accuracy": accuracy}


versions = Versions(LOADERS["array"], batch_size=16, epoc_count=1, feed="generator")
for kind, loader in LOADERS.items():
    versions.add_version(kind, dataloader=loader)
versions.add_version("csv_tf", dataloader=LOADERS["csv"], feed="tf")
MODEL = Net(versions)
'''


@pytest.mark.slow
def test_each_kind_trains_a_keras_model_through_the_runner(project):
    frame = toy_frame()
    write_csv(project.models / "toy.csv", frame)
    write_db(project.models / "toy.db", frame)
    project.script("keras_data.py", KERAS_SCRIPT)
    project.configure(["keras_data.py"])
    result = project.run("-r", "--in-process", timeout=240)  # one TensorFlow import for the five versions
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {r["version"]: r for r in project.runs()}
    assert set(runs) == {"array", "frame", "csv", "sql", "csv_tf"}
    with project.db() as conn:
        finals = {(r["run_id"], r["split"], r["name"]): r["last"] for r in conn.execute(
            "SELECT run_id, split, name, CASE WHEN has_final THEN final ELSE last END AS last FROM metric_summary")}
    for version, run in runs.items():
        assert run["status"] == "succeeded" and run["steps"] == 10, version  # ceil(1 epoch x 160 rows / 16)
        assert math.isfinite(finals[(run["id"], "train", "loss")])
        assert finals[(run["id"], "test", "accuracy")] > 0.75, version  # chance is 0.5
        assert run["data_fingerprint"].startswith(version.split("_")[0] + ":"), version
    assert runs["csv"]["data_fingerprint"] == "csv:" + hashlib.sha256((project.models / "toy.csv").read_bytes()).hexdigest()
    assert runs["csv_tf"]["data_fingerprint"] == runs["csv"]["data_fingerprint"]
    assert len({r["data_fingerprint"] for r in runs.values()}) == 4


COMPARE_SCRIPT = '''\
import os
import numpy as np
from mlpipeline.data import CSVLoader
from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import Versions

HERE = os.path.dirname(os.path.abspath(__file__))


class Wrapped(DataLoader):
    """A loader of the script's own around one of mlpipeline.data's."""
    def __init__(self, inner):
        self.inner = inner
    def get_train_input(self, mode="Train", **kw): return self.inner.get_train_input(mode=mode, **kw)
    def get_test_input(self, **kw): return self.inner.get_test_input(**kw)
    def get_train_sample_count(self): return self.inner.get_train_sample_count()
    def get_test_sample_count(self): return self.inner.get_test_sample_count()


class Mean(Model):
    def train_model(self, input_fn, steps):
        self.seen = sum(len(b[1]) for b in input_fn)

    def evaluate_model(self, input_fn, steps):
        return {"rate": float(np.mean(np.concatenate([b[1] for b in input_fn])))}


versions = Versions(CSVLoader(os.path.join(HERE, "a.csv"), target="label", batch_size=8), batch_size=8, epoc_count=1)
versions.add_version("a")
versions.add_version("b", dataloader=CSVLoader(os.path.join(HERE, "b.csv"), target="label", batch_size=8))
versions.add_version("a_wrapped", dataloader=Wrapped(CSVLoader(os.path.join(HERE, "a.csv"), target="label")))
MODEL = Mean(versions)
'''


@pytest.mark.slow
def test_the_run_records_its_data_and_compare_shows_where_it_differs(project):
    write_csv(project.models / "a.csv", toy_frame(40, seed=1))
    write_csv(project.models / "b.csv", toy_frame(40, seed=2))
    project.script("means.py", COMPARE_SCRIPT)
    project.script("same.py", COMPARE_SCRIPT.replace('"b.csv"', '"a.csv"'))
    project.configure(["means.py", "same.py"])
    result = project.run("-r", timeout=120)  # each version in its own child process
    assert result.returncode == 0, result.stdout + result.stderr
    sha = {name: "csv:" + hashlib.sha256((project.models / name).read_bytes()).hexdigest() for name in ("a.csv", "b.csv")}
    recorded = {(Path(r["script"]).name, r["version"]): r["data_fingerprint"] for r in project.runs()}
    assert recorded == {("means.py", "a"): sha["a.csv"], ("means.py", "b"): sha["b.csv"],
                        ("means.py", "a_wrapped"): sha["a.csv"], ("same.py", "a"): sha["a.csv"],
                        ("same.py", "b"): sha["a.csv"], ("same.py", "a_wrapped"): sha["a.csv"]}

    shown = project.run("show", str(project.runs(version="b")[0]["id"]))
    assert f"data_fingerprint: {sha['b.csv']}" in " ".join(shown.stdout.split()), shown.stdout

    compared = project.run("compare", "means.py", "--format", "json")
    assert compared.returncode == 0, compared.stderr
    rows = {r["version"]: r for r in json.loads(compared.stdout)}
    assert rows["a"]["data"] == rows["a_wrapped"]["data"] == sha["a.csv"][:4 + 12]
    assert rows["b"]["data"] == sha["b.csv"][:4 + 12]
    table = project.run("compare", "means.py").stdout
    assert " data " in table.splitlines()[0] + " " and sha["b.csv"][4:16] in table
    same = json.loads(project.run("compare", "same.py", "--format", "json").stdout)
    assert all("data" not in row for row in same)  # the same data everywhere: no column, as for parameters

    from mlpipeline.read.queries import compare_detail
    from mlpipeline.store.reader import Reader

    reader = Reader(str(project.outputs / "mlpipeline.db"))
    try:
        detail = compare_detail(reader, "means.py")
        assert detail["data_differs"] is True
        assert {v["version"]: v["data"] for v in detail["versions"]}["b"] == sha["b.csv"][:16]
        same_detail = compare_detail(reader, "same.py")
        assert same_detail["data_differs"] is False and all("data" not in v for v in same_detail["versions"])
    finally:
        reader.close()
