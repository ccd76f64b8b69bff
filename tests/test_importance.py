"""Parameter importance, a search read as a whole, and seeds as mean ± std (issue 25), over a real
project: a random sweep of 60 points of score = (x - 0.3)**2 (x drives it, y and z do nothing) and
two configurations run with three seeds each."""
from __future__ import annotations

import json
import statistics
import sys
from typing import Iterator

import pytest

from helpers import Project
from mlpipeline.core.errors import UsageError
from mlpipeline.read.importance import binned, importance
from mlpipeline.read.search import search_detail
from mlpipeline.store.reader import Reader

SCRIPT = '''
import random
from mlpipeline.helper import DataLoader, Model
from mlpipeline.sweeps import randint, uniform
from mlpipeline.utils import Versions

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class Known(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.p = version
    def train_model(self, input_fn, steps):
        pass
    def evaluate_model(self, input_fn, steps):
        noise = random.Random(self.p["seed"]).uniform(-0.01, 0.01) if "seed" in self.p else 0.0
        return {"score": (self.p["x"] - 0.3) ** 2 + noise}

versions = Versions(Loader(), 1, 1)
versions.add_random(60, seed=0, x=uniform(0.0, 1.0), y=uniform(0.0, 1.0), z=randint(0, 9))
for x in (0.2, 0.6):
    for seed in range(3):
        versions.add_version(f"x{x}-s{seed}", x=x, y=0.5, z=1, seed=seed)
MODEL = Known(versions)
'''


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = Project(tmp_path_factory.mktemp("known") / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True)
    proj.script("known.py", SCRIPT)
    proj.configure(["known.py"])
    done = proj.run("-r", "-n", "-j", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    return proj


@pytest.fixture
def reader(known: Project) -> Iterator[Reader]:
    opened = Reader(str(known.models / "outputs" / "mlpipeline.db"))
    yield opened
    opened.close()


@pytest.mark.parametrize("method", ["fanova", "binned"])
def test_the_parameter_that_drives_the_metric_ranks_above_two_that_do_not(reader: Reader, method: str) -> None:
    found = importance(reader, "known.py", "score", search="r", method=method)
    assert found["method"] == method and found["runs"] == 60 and found["metric"] == "test/score"
    ranked = [r["param"] for r in found["ranking"]]
    assert ranked[0] == "x" and sorted(ranked[1:]) == ["y", "z"]
    assert found["ranking"][0]["importance"] > 0.8
    assert sum(r["importance"] for r in found["ranking"]) == pytest.approx(1.0)


def test_without_optuna_the_fallback_answers_and_says_why(reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    found = importance(reader, "known.py", "score", search="r")
    assert found["method"] == "binned" and "optuna" in found["note"]
    assert found["ranking"][0]["param"] == "x"
    with pytest.raises(UsageError, match="--method fanova: .*optuna"):
        importance(reader, "known.py", "score", search="r", method="fanova")
    with pytest.raises(UsageError, match="no points of it"):
        importance(reader, "known.py", "score", search="nothing")


def test_binned_variance_reads_numbers_by_rank_and_categories_as_they_are() -> None:
    xs = [i / 40 for i in range(40)]
    colours = ["red", "blue"] * 20
    values = [x * x + (0.5 if c == "red" else 0.0) for x, c in zip(xs, colours)]
    scores = binned({"x": ("number", xs), "colour": ("category", colours),
                     "flat": ("number", [1.0] * 40)}, values)
    assert scores["x"] > 0.1 and scores["colour"] > 0.1 and scores["flat"] == 0.0


def test_importance_from_the_command_line(known: Project) -> None:
    done = known.run("importance", "known", "score", "--search", "r", "--format", "json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["ranking"][0]["param"] == "x" and found["method"] == "fanova"
    table = known.run("importance", "known.py", "test/score", "--search", "r", "--method", "binned")
    assert table.returncode == 0 and table.stdout.splitlines()[2].split()[:2] == ["1", "x"]
    assert "60 succeeded runs" in table.stderr and "binned" in table.stderr


def test_a_search_read_whole_in_start_order_with_its_best_so_far(reader: Reader) -> None:
    detail = search_detail(reader, "known.py", "r")
    assert detail["search"] == "r" and len(detail["points"]) == 60 and detail["params"] == ["x", "y", "z"]
    assert detail["lower_is_better"] is False  # a score is better higher, unless one says so
    values = [p["value"] for p in detail["points"]]
    assert detail["best"]["value"] == max(values)
    assert detail["best_so_far"] == [max(values[:i + 1]) for i in range(60)]
    assert detail["rungs"] is None  # nothing was pruned
    lowest = search_detail(reader, "known.py", "r", goal="min")
    assert lowest["best"]["value"] == min(values)
    whole = search_detail(reader, "known.py", "all")
    assert len(whole["points"]) == 66 and whole["searches"] == ["r"] and "seed" in whole["params"]


def test_compare_groups_the_versions_that_differ_only_in_their_seed(known: Project) -> None:
    done = known.run("compare", "known.py", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    grouped = {tuple(r["version"]): r for r in rows if isinstance(r["version"], list) and len(r["version"]) > 1}
    assert sorted(grouped) == [("x0.2-s0", "x0.2-s1", "x0.2-s2"), ("x0.6-s0", "x0.6-s1", "x0.6-s2")]
    assert len(rows) == 62  # 60 sweep points, each its own row, and the two groups
    single = {r["version"]: r["test/score"] for r in json.loads(
        known.run("compare", "known.py", "--format", "json", "--seed-param", "none").stdout)}
    group = grouped[("x0.6-s0", "x0.6-s1", "x0.6-s2")]
    scores = [single[f"x0.6-s{s}"] for s in range(3)]
    assert group["seed"] == [0, 1, 2] and group["runs"] == 3 and group["x"] == 0.6
    assert group["test/score"] == pytest.approx(statistics.mean(scores))
    assert group["test/score std"] == pytest.approx(statistics.stdev(scores))
    table = known.run("compare", "known.py", "--sort", "test/score", "--desc").stdout
    assert "±" in table and table.index("x0.6-s0") < table.index("x0.2-s0")


DIVERGED = '''
from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import Versions

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class Diverges(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.p = version
    def train_model(self, input_fn, steps):
        pass
    def evaluate_model(self, input_fn, steps):
        return {"loss": 2e160 if self.p["lr"] == 10.0 else self.p["lr"], "flat": 1.0}

versions = Versions(Loader(), 1, 1)
for i, lr in enumerate((0.1, 0.2, 0.3, 10.0, 0.15, 0.25)):
    versions.add_version(f"v{i}", lr=lr, width=i % 2)
MODEL = Diverges(versions)
'''


def test_a_diverged_run_and_a_metric_that_never_moves(tmp_path) -> None:
    """A run whose loss blew up to 2e160 (finite: it is kept) must not overflow the ranking; a metric equal
    in every run is said to be so, in one line."""
    proj = Project(tmp_path / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True)
    proj.script("d.py", DIVERGED)
    proj.configure(["d.py"])
    assert proj.run("-r", "-n").returncode == 0
    for method in ("binned", "fanova"):
        done = proj.run("importance", "d.py", "loss", "--method", method, "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["ranking"][0]["param"] == "lr", done.stdout
    flat = proj.run("importance", "d.py", "flat")
    assert flat.returncode == 2 and "is 1 in every one of its 6 succeeded runs" in flat.stderr, flat.stderr
    assert flat.stderr.count("\n") == 1
