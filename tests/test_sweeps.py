"""Sweeps (issue 13): add_grid and add_random expand into ordinary, stably named versions that the
runner, -u and status treat like any other."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import tracer, wait_for
from mlpipeline.core.errors import VersionError
from mlpipeline.sweeps import choice, loguniform, randint, uniform
from mlpipeline.utils import Versions, version_parameters


class Loader:
    def get_train_input(self, **kw):
        return None

    def get_train_sample_count(self):
        return 4


def sweep_script(declaration: str, **tracer_versions) -> str:
    """The tracer model script with ``declaration`` (a sweep on ``versions``) before MODEL."""
    header = "from mlpipeline.sweeps import choice, loguniform, randint, uniform\n"
    body = tracer(tracer_versions).replace("MODEL = Tracer(versions)", f"{declaration}\nMODEL = Tracer(versions)")
    return header + body


GRID_3x2 = 'versions.add_grid("lr{lr}_bs{batch_size}", lr=[0.1, 0.01, 0.001], batch_size=[2, 4])'
GRID_3x3 = 'versions.add_grid("lr{lr}_bs{batch_size}", lr=[0.1, 0.01, 0.001], batch_size=[2, 4, 1])'


def traced(project):
    return [line.split(":")[1] for line in project.trace()]


# --- through the real runner -------------------------------------------------------------------------------

def test_grid_runs_in_product_order_and_u_runs_only_the_new_points(project):
    project.script("grid.py", sweep_script(GRID_3x2))
    project.configure(["grid.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 0, result.stderr
    first = ["lr0.1_bs2", "lr0.1_bs4", "lr0.01_bs2", "lr0.01_bs4", "lr0.001_bs2", "lr0.001_bs4"]
    runs = project.runs()
    assert [r["version"] for r in runs] == first == traced(project)
    assert [(json.loads(r["params"])["lr"], json.loads(r["params"])["batch_size"]) for r in runs] == \
        [(0.1, 2), (0.1, 4), (0.01, 2), (0.01, 4), (0.001, 2), (0.001, 4)]
    assert {r["status"] for r in runs} == {"succeeded"}

    project.script("grid.py", sweep_script(GRID_3x3))  # a third batch size: three new points
    result = project.run("-r", "-u", "-n")
    assert result.returncode == 0, result.stderr
    new = [r["version"] for r in project.runs()[len(first):]]
    assert new == ["lr0.1_bs1", "lr0.01_bs1", "lr0.001_bs1"]
    assert "lr0.1_bs2: skipped" in result.stderr + result.stdout


def test_grid_reruns_nothing_when_the_script_is_unchanged(project):
    project.script("grid.py", sweep_script(GRID_3x2))
    project.configure(["grid.py"])
    assert project.run("-r", "-n").returncode == 0
    result = project.run("-r", "-u", "-n")
    assert result.returncode == 0, result.stderr
    assert len(project.runs()) == 6 and len(traced(project)) == 6


def test_status_lists_a_random_sweep_in_the_queue_while_a_runner_waits(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", sweep_script("versions.add_random(4, seed=7, lr=loguniform(1e-4, 1e-1), "
                                        "layers=choice([2, 4, 8]), common={'epoc_count': 2})"))
    project.configure(["a.py", "b.py"])
    expected = Versions(Loader(), 2, 1).add_random(4, seed=7, lr=loguniform(1e-4, 1e-1), layers=choice([2, 4, 8]))
    runner = project.start("-r", "-n")
    try:
        wait_for(lambda: (project.root / "started-waits").exists(), proc=runner, what="the first version")

        def queued():
            result = project.run("status", "--format", "json")
            assert result.returncode == 0, result.stderr
            queue = json.loads(result.stdout)["queue"]
            return [q["version"] for q in queue if q["script"] == "models/b.py" and q["state"] == "queued"]

        assert wait_for(queued, timeout=10, proc=runner, what="b.py's versions in status") == expected
    finally:
        (project.root / "go").touch()
        out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    runs = project.runs(script="models/b.py")
    assert [r["version"] for r in runs] == expected
    assert all(json.loads(r["params"])["epoc_count"] == 2 for r in runs)


def test_a_template_with_a_slash_fails_the_script_with_one_line(project):
    project.script("bad.py", sweep_script('versions.add_grid("lr/{lr}", lr=[0.1, 0.01])'))
    project.configure(["bad.py"])
    result = project.run()
    assert result.returncode == 1
    message = next(line for line in result.stderr.splitlines() if "name_template" in line)
    assert "bad.py:" in message and "'lr/{lr}'" in message and "use '_' instead" in message


# --- names -------------------------------------------------------------------------------------------------

def versions():
    return Versions(Loader(), 2, 1)


def test_grid_names_come_from_the_template_in_product_order():
    v = versions()
    names = v.add_grid("lr{lr}_bs{batch_size}", lr=[0.1, 0.01, 0.001], batch_size=[32, 64])
    assert names == ["lr0.1_bs32", "lr0.1_bs64", "lr0.01_bs32", "lr0.01_bs64", "lr0.001_bs32", "lr0.001_bs64"]
    assert [x["name"] for x in v.get_versions()] == names
    assert v.get_version("lr0.01_bs64").lr == 0.01 and v.get_version("lr0.01_bs64").batch_size == 64


def test_grid_names_that_cannot_come_from_the_template_get_a_stable_hash():
    lacking = versions().add_grid("lr{lr}", lr=[0.1], layers=[2, 4])
    assert [n.rsplit("-", 1)[0] for n in lacking] == ["lr0.1", "lr0.1"] and lacking[0] != lacking[1]
    assert versions().add_grid("lr{lr}", lr=[0.1], layers=[2, 4]) == lacking  # same point, same name
    paths = versions().add_grid("d{data}", data=["train/a", "b"])
    assert paths[0].startswith("dtrain_a-") and len(paths[0]) == len("dtrain_a-") + 8 and paths[1] == "db"
    negative = versions().add_grid("{shift}", shift=[-1, 1])
    assert negative[0].startswith("_-1-") and negative[1] == "1"


def test_grid_takes_common_parameters_and_keeps_the_versions_defaults():
    v = Versions(Loader(), 2, 1, learning_rate=0.5)
    v.add_grid("l{layers}_e{epoc_count}", layers=[2, 4], common={"epoc_count": 3, "dropout": 0.1})
    version = v.get_version("l4_e3")
    assert (version.layers, version.epoc_count, version.dropout, version.learning_rate) == (4, 3, 0.1, 0.5)


def test_sweeps_on_released_form_versions_add_addv_shaped_versions():
    v = Versions(0.1, Loader(), 2, 1)
    names = v.add_grid("h{hooks}", hooks=["a", "b"], common={"layers": 3})
    version = v.getVersion(names[1])
    assert version[version_parameters.NAME] == "hb" and version[version_parameters.HOOKS] == "b"
    assert version[version_parameters.LEARNING_RATE] == 0.1 and version["layers"] == 3
    assert version_parameters.CLASSES_COUNT in version


def test_random_same_seed_same_versions_and_a_larger_n_keeps_the_first_ones():
    space = dict(lr=loguniform(1e-5, 1e-1), opt=choice(["adam", "sgd"]), layers=randint(1, 6),
                 dropout=uniform(0.0, 0.5))

    def sweep(n, seed=0):
        v = versions()
        names = v.add_random(n, seed=seed, **space)
        return [(name, {k: v.get_version(name)[k] for k in space}) for name in names]

    five = sweep(5)
    assert sweep(5) == five
    assert all(name.startswith("r-") and len(name) == 10 for name, _ in five)
    assert sweep(8)[:5] == five
    assert sweep(5, seed=1) != five
    assert [p for _, p in sweep(3, seed=0)] == [p for _, p in five[:3]]


def test_random_names_follow_the_point_not_the_draw_and_a_prefix_separates_sweeps():
    v = versions()
    first = v.add_random(3, seed=0, lr=uniform(0, 1))
    other = v.add_random(3, seed=0, prefix="wide", lr=uniform(0, 10))
    assert all(n.startswith("wide-") for n in other) and not set(first) & set(other)
    with pytest.raises(VersionError, match="already declared"):
        v.add_random(3, seed=0, lr=uniform(0, 1))


def test_random_over_a_small_space_gives_distinct_points_until_it_runs_out():
    v = versions()
    assert len(set(v.add_random(3, seed=0, opt=choice(["adam", "sgd", "rmsprop"])))) == 3
    with pytest.raises(VersionError, match="fewer than n=4; .*lower n or widen them"):
        versions().add_random(4, seed=0, opt=choice(["adam", "sgd", "rmsprop"]))


# --- distributions -----------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(low=st.floats(1e-12, 1e6), ratio=st.floats(1.0 + 1e-9, 1e9), seed=st.integers(0, 2**32))
def test_loguniform_stays_within_its_bounds(low, ratio, seed):
    high = low * ratio
    dist = loguniform(low, high)
    rng = random.Random(seed)
    assert all(low <= dist.sample(rng) <= high for _ in range(20))


@given(low=st.integers(-50, 50), span=st.integers(0, 10), seed=st.integers(0, 2**32))
def test_randint_includes_both_ends_and_nothing_else(low, span, seed):
    rng = random.Random(seed)
    assert {randint(low, low + span).sample(rng) for _ in range(300)} <= set(range(low, low + span + 1))


def test_randint_and_choice_reach_every_value():
    rng = random.Random(0)
    assert {randint(1, 3).sample(rng) for _ in range(200)} == {1, 2, 3}
    assert {choice(["a", "b"]).sample(rng) for _ in range(200)} == {"a", "b"}


def test_distributions_read_as_written():
    assert [repr(d) for d in (uniform(0, 0.5), loguniform(1e-4, 0.1), randint(1, 8), choice(["adam", "sgd"]))] == \
        ["uniform(0, 0.5)", "loguniform(0.0001, 0.1)", "randint(1, 8)", "choice(['adam', 'sgd'])"]


@pytest.mark.parametrize("make, words", [
    (lambda: loguniform(0, 1), "loguniform(0, 1): low must be greater than 0"),
    (lambda: loguniform(1, 0.1), "low must be less than high; swap them"),
    (lambda: uniform("a", 1), "uniform('a', 1): low must be a finite number"),
    (lambda: uniform(0, float("inf")), "high must be a finite number"),
    (lambda: randint(1.5, 3), "randint(1.5, 3): low must be an int"),
    (lambda: randint(3, 1), "low must not be greater than high"),
    (lambda: choice("adam"), "options must be a list, e.g. choice(['adam', 'sgd'])"),
    (lambda: choice([]), "options is empty"),
    (lambda: versions().add_random(2, seed=0, lr=0.1), "lr=0.1 is not a distribution; use uniform"),
    (lambda: versions().add_random(2, seed="x", lr=uniform(0, 1)), "seed must be an int"),
    (lambda: versions().add_random(-1, seed=0, lr=uniform(0, 1)), "n must be a whole number"),
    (lambda: versions().add_grid("lr/{lr}", lr=[0.1]), "cannot hold '/'"),
    (lambda: versions().add_grid("lr{rate}", lr=[0.1]), "names {rate}, which is neither swept nor in common="),
    (lambda: versions().add_grid("lr{lr}", lr=0.1), "lr=0.1 is not a list of values; write lr=[...]"),
    (lambda: versions().add_grid("lr{lr}", lr=[]), "lr=[] has no values"),
    (lambda: versions().add_grid("lr{lr:.0f}", lr=[0.1, 0.2]), "both get the name 'lr0'"),
    (lambda: versions().add_grid("lr{lr}", lr=[0.1], common={"lr": 1}), "'lr' is both swept and in common="),
    (lambda: versions().add_grid("x{lr}", lr=[1], common={"model_dir_suffix": "-x"}), "one model dir"),
])
def test_bad_sweeps_raise_one_line_version_errors(make, words):
    with pytest.raises(VersionError) as caught:
        make()
    message = str(caught.value)
    assert words in message and "\n" not in message
