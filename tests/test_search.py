"""Searches (issue 13): Versions.add_search driven by the real runner: proposals from a search child,
parallel points, the budget, resuming after a SIGKILL, refused repeats, ASHA and stop() pruning, and the
Optuna adapter mirrored in the ledger."""
from __future__ import annotations

import json
import math
import textwrap

import pytest

from helpers import wait_for
from mlpipeline.core.errors import VersionError
from mlpipeline.core.lifecycle import MetricRow
from mlpipeline.run.search import AshaRungs, _percentile
from mlpipeline.sweeps import Search, asha, check_point, metric_value, optuna_search, uniform
from mlpipeline.utils import Versions

HEADER = '''
import os, random, time
from mlpipeline.helper import DataLoader, Model
from mlpipeline.utils import Versions
from mlpipeline.sweeps import asha, choice, optuna_search, uniform

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return int(os.environ.get("STEPS", "4"))
    def get_test_sample_count(self): return 1

class Quadratic(Model):
    """loss(step) = (x - 0.3)**2 + 1 / (step + 1): a worse x has a worse curve at every step."""
    def pre_execution_hook(self, version, model_dir, exec_mode="test"):
        self.x = version["x"]
    def train_model(self, input_fn, steps):
        for step in range(steps):
            self.log_metric("loss", (self.x - 0.3) ** 2 + 1.0 / (step + 1), step=step)
            time.sleep(float(os.environ.get("SLEEP", "0")))
    def evaluate_model(self, input_fn, steps):
        return {"loss": (self.x - 0.3) ** 2}

versions = Versions(Loader(), 1, 1)
'''


def search_script(declaration: str, extra: str = "") -> str:
    return HEADER + textwrap.dedent(extra) + "\n" + declaration + "\nMODEL = Quadratic(versions)\n"


# points from the history alone (no state of its own): the same history gives the same point
STATELESS = '''
def propose(history):
    rng = random.Random(1000 + len(history) * 31 + len(history.running))
    return {"x": round(rng.random(), 4)}
'''


def runs_of(project, version_prefix="s-"):
    return [r for r in project.runs() if (r["version"] or "").startswith(version_prefix)]


def x_of(run):
    return json.loads(run["params"])["x"]


def most_at_once(runs):
    """The most runs whose [started_at, ended_at] intervals overlap at one moment."""
    events = sorted([(r["started_at"], 1) for r in runs] + [(r["ended_at"], -1) for r in runs],
                    key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, change in events:
        now += change
        best = max(best, now)
    return best


# --- through the real runner -------------------------------------------------------------------------------

def test_a_parallel_search_keeps_two_in_flight_under_j2_and_stops_at_its_budget(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=6, parallel=2)", STATELESS))
    project.configure(["search.py"])
    result = project.run("-r", "-j", "2", "-n", env={"SLEEP": "0.15"})
    assert result.returncode == 0, result.stderr
    runs = runs_of(project)
    assert len(runs) == 6 and {r["status"] for r in runs} == {"succeeded"}
    assert len({r["version"] for r in runs}) == 6 and len({x_of(r) for r in runs}) == 6
    assert most_at_once(runs) == 2
    for run in runs:  # each named by its point, with the search's defaults around it
        params = json.loads(run["params"])
        assert run["version"].startswith("s-") and len(run["version"]) == 10
        assert params["batch_size"] == 1 and params["name"] == run["version"]


def test_parallel_1_runs_one_point_at_a_time_even_with_more_slots(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=3, parallel=1)", STATELESS))
    project.configure(["search.py"])
    result = project.run("-r", "-j", "3", "-n", env={"SLEEP": "0.1"})
    assert result.returncode == 0, result.stderr
    runs = runs_of(project)
    assert len(runs) == 3 and most_at_once(runs) == 1


def test_killing_the_runner_mid_search_then_u_goes_on_without_repeating_a_point(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=6, parallel=2)", STATELESS))
    project.configure(["search.py"])
    runner = project.start("-r", "-j", "2", "-n", env={"SLEEP": "0.3", "STEPS": "4"})
    try:
        wait_for(lambda: sum(r["status"] == "succeeded" for r in runs_of(project)) >= 2, proc=runner,
                 what="two finished points")
        wait_for(lambda: sum(r["status"] == "running" for r in runs_of(project)) >= 1, proc=runner,
                 what="a running point")
    finally:
        runner.kill()  # SIGKILL: no cleanup of any kind
        runner.communicate()
    before = runs_of(project)
    result = project.run("-r", "-u", "-j", "2", "-n", env={"SLEEP": "0.05"})
    assert result.returncode == 0, result.stderr
    runs = runs_of(project)
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    assert len(succeeded) == 6 and len({r["version"] for r in succeeded}) == 6  # the budget, no point twice
    assert {r["status"] for r in runs} == {"succeeded", "interrupted"}
    interrupted = {r["version"] for r in runs if r["status"] == "interrupted"}
    assert interrupted and interrupted <= {r["version"] for r in before if r["status"] == "running"}
    assert interrupted <= {r["version"] for r in succeeded}  # a point the dead runner left ran again, once
    done_before = {r["version"] for r in before if r["status"] == "succeeded"}
    assert not done_before & {r["version"] for r in runs[len(before):]}  # nothing finished ran again


def test_u_with_the_search_spent_runs_nothing_more(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=3)", STATELESS))
    project.configure(["search.py"])
    assert project.run("-r", "-n").returncode == 0
    result = project.run("-r", "-u", "-n")
    assert result.returncode == 0, result.stderr
    assert len(runs_of(project)) == 3
    project.script("search.py", search_script("versions.add_search(propose, budget=5)", STATELESS))
    result = project.run("-r", "-u", "-n")  # a larger budget: two more points, after the three
    assert result.returncode == 0, result.stderr
    runs = runs_of(project)
    assert len(runs) == 5 and len({r["version"] for r in runs}) == 5


def test_a_point_already_tried_is_refused_and_propose_asked_again(project):
    extra = '''
    calls = []
    def propose(history):
        calls.append(len(history))
        order = [0.1, 0.1, 0.1, 0.5, 0.5, 0.9]   # repeats: only three distinct points
        return {"x": order[min(len(calls) - 1, len(order) - 1)]}
    '''
    project.script("search.py", search_script("versions.add_search(propose, budget=3)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 0, result.stderr
    assert [x_of(r) for r in runs_of(project)] == [0.1, 0.5, 0.9]


def test_propose_returning_none_ends_the_search_and_a_propose_error_fails_it_with_one_line(project):
    extra = '''
    def propose(history):
        return None if len(history) >= 2 else {"x": len(history) / 10}
    def broken(history):
        raise ValueError("no idea what to try")
    '''
    project.script("search.py", search_script(
        "versions.add_search(propose, budget=9)\nversions.add_search(broken, budget=2, name='b')", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 1
    assert [x_of(r) for r in runs_of(project)] == [0.0, 0.1]
    failed = project.runs(version="b")
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    assert "propose() raised ValueError: no idea what to try" in failed[0]["error"]
    assert "ValueError" in failed[0]["traceback"] and "Traceback" not in result.stderr
    assert "returned None" in result.stderr


def test_a_propose_that_never_answers_fails_the_search_and_the_batch_ends(project):
    extra = '''
    def propose(history):
        if history:
            time.sleep(3600)
        return {"x": 0.5}
    '''
    project.script("search.py", search_script("versions.add_version('after', x=0.1)\n"
                                              "versions.add_search(propose, budget=3)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n", env={"MLPIPELINE_PROPOSE_LIMIT": "2"}, timeout=60)
    assert result.returncode == 1
    runs = project.runs()
    assert [(r["version"], r["status"]) for r in runs] == [("after", "succeeded"), ("s-" + runs[1]["version"][2:],
                                                                                      "succeeded"), ("s", "failed")]
    assert "did not answer within 2 s" in runs[2]["error"]


def test_a_bad_proposal_fails_the_search_naming_the_fix(project):
    extra = '''
    def propose(history):
        return [0.1]
    '''
    project.script("search.py", search_script("versions.add_search(propose, budget=2)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 1
    (run,) = project.runs()
    assert run["version"] == "s" and "return a dict of parameters" in run["error"]


def test_asha_prunes_the_points_whose_curves_are_worse_and_keeps_their_curves(project):
    extra = '''
    xs = [0.3, 0.32, 0.9, 0.95, 0.31, 0.99]
    def propose(history):
        return {"x": xs[len(history) + len(history.running)]}
    '''
    project.script("search.py", search_script(
        "versions.add_search(propose, budget=6, stopper=asha('loss', grace=1, reduction=2, max_t=8))", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n", env={"STEPS": "12", "SLEEP": "0.03"})
    assert result.returncode == 0, result.stderr
    status = {x_of(r): r["status"] for r in runs_of(project)}
    assert status[0.3] == "succeeded"            # the first at every rung goes on
    assert status[0.9] == status[0.95] == status[0.99] == "pruned"
    pruned = [r for r in runs_of(project) if r["status"] == "pruned"]
    assert all("pruned by ASHA" in r["error"] for r in pruned)
    with project.db() as conn:
        for run in pruned:  # its curve up to the rung that stopped it stays in the ledger
            steps = [s for (s,) in conn.execute("SELECT step FROM metrics WHERE run_id = ? AND step IS NOT NULL",
                                                (run["id"],))]
            assert steps and max(steps) >= 1 and max(steps) < 11
    assert "0 failed" in result.stdout + result.stderr


def test_a_stop_function_prunes_a_point_cleanly(project):
    extra = '''
    def propose(history):
        return {"x": [0.3, 0.9, 0.31][len(history)]}
    def stop(version, step, history):
        curve = version["curves"]["train/loss"]  # every point so far, as [step, value]
        assert [s for s, _ in curve] == list(range(len(curve))) and curve[-1][0] == step
        return step >= 2 and version["params"]["x"] > 0.5
    '''
    project.script("search.py", search_script("versions.add_search(propose, budget=3, stopper=stop)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n", env={"STEPS": "20", "SLEEP": "0.03"})
    assert result.returncode == 0, result.stderr
    status = {x_of(r): (r["status"], r["error"]) for r in runs_of(project)}
    assert status[0.3][0] == status[0.31][0] == "succeeded"
    assert status[0.9][0] == "pruned" and "stop()" in status[0.9][1]


def test_test_mode_runs_one_point_of_a_search(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=9, parallel=3)", STATELESS))
    project.configure(["search.py"])
    result = project.run("-n")
    assert result.returncode == 0, result.stderr
    runs = project.runs()
    assert len(runs) == 1 and runs[0]["mode"] == "test" and runs[0]["status"] == "succeeded"


def test_a_search_can_be_blacklisted_by_its_name(project):
    project.script("search.py", search_script(
        "versions.add_version('plain', x=0.2)\nversions.add_search(propose, budget=3)", STATELESS))
    project.configure(["search.py"], use_blacklist=True, blacklist=["search.py = s"])
    result = project.run("-r", "-n")
    assert result.returncode == 0, result.stderr
    assert [r["version"] for r in project.runs()] == ["plain"]


def test_the_optuna_study_and_the_ledger_agree(project):
    optuna = pytest.importorskip("optuna")
    extra = '''
    import optuna
    def study():
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(storage="sqlite:///" + os.path.abspath("models/outputs/study.db"),
                                   study_name="quad", load_if_exists=True, direction="minimize")
    '''
    project.script("search.py", search_script(
        "versions.add_search(optuna_search(study, 'loss', 'minimize', space={'x': uniform(0, 1)}), budget=6, "
        "parallel=2)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-j", "2", "-n")
    assert result.returncode == 0, result.stderr
    runs = runs_of(project)
    study = optuna.load_study(study_name="quad", storage=f"sqlite:///{project.outputs / 'study.db'}")
    trials = study.get_trials()
    assert len(runs) == len(trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    with project.db() as conn:
        final = {run_id: value for run_id, value in conn.execute(
            "SELECT run_id, value FROM metrics WHERE name = 'loss' AND split = 'test' AND step IS NULL")}
    by_point = {t.user_attrs["mlpipeline_point"]: t for t in trials}
    for run in runs:
        trial = by_point[run["version"].split("-")[1]]
        assert trial.params["x"] == x_of(run)
        assert math.isclose(trial.value, final[run["id"]])


def test_optuna_search_decorates_a_define_by_run_space(project):
    pytest.importorskip("optuna")
    extra = '''
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    @optuna_search(None, "loss", "minimize")
    def space(trial):
        return {"x": trial.suggest_float("x", 0.0, 1.0)}
    '''
    project.script("search.py", search_script("versions.add_search(space, budget=4)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 0, result.stderr
    runs = runs_of(project)
    assert len(runs) == 4 and all(0.0 <= x_of(r) <= 1.0 for r in runs) and len({x_of(r) for r in runs}) == 4


def test_an_in_memory_optuna_study_learns_the_ledgers_history_after_a_restart(project):
    pytest.importorskip("optuna")
    extra = '''
    import json, optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    class Seen:
        def __init__(self, inner):
            self.inner = inner
        def __call__(self, history):
            point = self.inner(history)
            with open(os.environ["SEEN"], "a") as handle:  # what the study knew when it proposed
                handle.write(json.dumps(len(self.inner.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))))
                             + "\\n")
            return point
        def sync(self, history):
            self.inner.sync(history)
    propose = Seen(optuna_search(None, "loss", "minimize", space={"x": uniform(0, 1)}))
    '''
    seen = project.root / "seen.txt"
    project.script("search.py", search_script("versions.add_search(propose, budget=3)", extra))
    project.configure(["search.py"])
    assert project.run("-r", "-n", env={"SEEN": str(seen)}).returncode == 0
    project.script("search.py", search_script("versions.add_search(propose, budget=5)", extra))
    seen.write_text("")
    result = project.run("-r", "-u", "-n", env={"SEEN": str(seen)})  # a new process: a new, empty study
    assert result.returncode == 0, result.stderr
    assert [int(n) for n in seen.read_text().split()] == [3, 4]
    assert len(runs_of(project)) == 5


def test_optuna_trials_of_a_killed_runner_end_when_the_search_goes_on(project):
    optuna = pytest.importorskip("optuna")
    extra = '''
    import optuna
    def study():
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(storage="sqlite:///" + os.path.abspath("models/outputs/study.db"),
                                   study_name="quad", load_if_exists=True)
    '''
    project.script("search.py", search_script(
        "versions.add_search(optuna_search(study, 'loss', 'minimize', space={'x': uniform(0, 1)}), budget=4)",
        extra))
    project.configure(["search.py"])
    runner = project.start("-r", "-n", env={"SLEEP": "0.3"})
    try:
        wait_for(lambda: any(r["status"] == "running" for r in runs_of(project)) and
                 any(r["status"] == "succeeded" for r in runs_of(project)), proc=runner, what="a running trial")
    finally:
        runner.kill()
        runner.communicate()
    storage = f"sqlite:///{project.outputs / 'study.db'}"
    states = [t.state for t in optuna.load_study(study_name="quad", storage=storage).get_trials()]
    assert optuna.trial.TrialState.RUNNING in states  # what Optuna alone would keep for ever
    result = project.run("-r", "-u", "-n")
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="quad", storage=storage).get_trials()
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    succeeded = [r for r in runs_of(project) if r["status"] == "succeeded"]
    assert len(trials) == len(succeeded) == 4


# --- the pieces ---------------------------------------------------------------------------------------------

def rows(*points, metric="loss", split="train"):
    return [MetricRow(metric, value, step, split) for step, value in points]


def test_asha_keeps_the_best_fraction_at_each_rung():
    rungs = AshaRungs(asha("loss", grace=1, reduction=2, max_t=4).to_json())
    assert rungs.observe("a", rows((0, 5.0), (1, 1.0))) is None      # alone at step 1: goes on
    assert rungs.observe("b", rows((1, 3.0))) is not None             # worse than the median of {1, 3}
    assert rungs.observe("c", rows((1, 0.5))) is None                 # the best so far
    assert rungs.observe("a", rows((2, 0.9), (4, 0.8))) is None       # alone at steps 2 and 4
    assert rungs.observe("a", rows((8, 0.1))) is None                 # past max_t: no rung
    assert rungs.observe("d", rows((1, 0.7), (2, 0.95))) is not None  # passes step 1, worse at step 2


def test_asha_in_max_mode_reads_a_split_metric_and_ignores_other_metrics():
    rungs = AshaRungs(asha("test/acc", grace=2, reduction=3, mode="max").to_json())
    assert rungs.observe("a", rows((2, 0.9), metric="acc", split="test")) is None
    assert rungs.observe("b", rows((2, 0.1), metric="acc", split="train")) is None  # another split
    assert rungs.observe("b", rows((2, 0.5), metric="acc", split="test")) is not None
    assert rungs.observe("c", rows((5, 0.95), metric="acc", split="test")) is None


def test_percentile_interpolates_like_numpy():
    assert _percentile([1.0], 0.5) == 1.0
    assert _percentile([1.0, 3.0], 0.5) == 2.0
    assert math.isclose(_percentile([1.0, 2.0, 4.0], 1 / 3), 1.0 + 2 / 3)


def test_metric_value_reads_split_names_and_prefers_test():
    metrics = {"train/loss": 1.0, "test/loss": 2.0, "train/acc": 0.5}
    assert metric_value(metrics, "loss") == 2.0
    assert metric_value(metrics, "train/loss") == 1.0
    assert metric_value(metrics, "acc") == 0.5
    assert metric_value(metrics, "f1") is None


@pytest.mark.parametrize("call, words", [
    (lambda v: v.add_search("nope", budget=2), "propose must be a function"),
    (lambda v: v.add_search(lambda h: None, budget=0), "budget must be a whole number >= 1"),
    (lambda v: v.add_search(lambda h: None, budget=2, parallel=1.5), "parallel must be a whole number"),
    (lambda v: v.add_search(lambda h: None, budget=2, name="a-b"), "without '-'"),
    (lambda v: v.add_search(lambda h: None, budget=2, stopper=3), "stopper must be"),
    (lambda v: v.add_search(lambda h: None, budget=2, common={"name": "x"}), "cannot be swept or shared"),
    (lambda v: asha("loss", reduction=1), "reduction=1 must be a number > 1"),
    (lambda v: asha("loss", mode="best"), "mode='best'"),
    (lambda v: optuna_search(None, "loss", "down", space={"x": uniform(0, 1)}), "direction='down'"),
    (lambda v: optuna_search(None, "loss", space=3), "no search space"),
    (lambda v: optuna_search(None, "loss")([]), "no search space"),
])
def test_bad_searches_raise_one_line_version_errors(call, words):
    versions = Versions(None, 1, 1)
    with pytest.raises(VersionError) as raised:
        call(versions)
    message = str(raised.value)
    assert words in message and "\n" not in message


def test_two_searches_cannot_share_a_name():
    versions = Versions(None, 1, 1)
    versions.add_search(lambda h: None, budget=1)
    with pytest.raises(VersionError, match="taken by another search"):
        versions.add_search(lambda h: None, budget=1)


@pytest.mark.parametrize("point, words", [
    ({"x": float("nan")}, "not plain data"),
    ({"x": object()}, "not plain data"),
    ({"name": "x"}, "which a search sets itself"),
    ({"lr": 1}, "in the search's common="),
    ({1: 2}, "parameter names are strings"),
])
def test_check_point_refuses_what_cannot_be_a_version(point, words):
    search = Search(lambda h: None, 1, 1, "s", {"lr": 0.1}, None)
    with pytest.raises(VersionError, match=words.replace("=", "=")):
        check_point(point, search)


def test_search_points_keep_the_search_defaults_and_common_parameters():
    versions = Versions(None, 8, 2, layers=3)
    versions.add_search(lambda h: None, budget=2, common={"epoc_count": 5})
    version = versions.search_version("s-12345678", {"lr": 0.1})
    assert (version.batch_size, version.epoc_count, version.layers, version.lr) == (8, 5, 3, 0.1)
    assert "s-12345678" not in versions  # a point is not declared


def test_a_search_only_script_loads_and_describes_its_search(tmp_path):
    from mlpipeline.script.loading import load_script

    path = tmp_path / "only.py"
    path.write_text(search_script("versions.add_search(propose, budget=4, parallel=2, "
                                  "stopper=asha('loss', max_t=9))", STATELESS))
    _, _, info = load_script(str(path))
    assert info.versions == [] and info.names == ["s"]
    (search,) = info.searches
    assert (search["budget"], search["parallel"], search["stopper"]["kind"]) == (4, 2, "asha")
    assert search["template"]["batch_size"] == 1


# --- found by an attack review ---------------------------------------------------------------------------

def test_a_stop_that_hangs_fails_its_search_naming_stop_and_the_batch_ends(project):
    extra = '''
    def propose(history):
        return {"x": len(history) / 10 + len(history.running) / 100}
    def stop(version, step, history):
        time.sleep(3600)
    '''
    project.script("search.py", search_script("versions.add_search(propose, budget=4, stopper=stop)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n", env={"MLPIPELINE_PROPOSE_LIMIT": "2", "STEPS": "3"}, timeout=90)
    assert result.returncode == 1
    failed = project.runs(version="s")
    assert len(failed) == 1 and "stop() did not answer within 2 s" in failed[0]["error"]


def test_while_a_search_chooses_the_versions_after_it_use_the_free_slots(project):
    extra = '''
    def propose(history):
        time.sleep(3 if not history and not history.running else 0)
        return {"x": len(history) / 10 + len(history.running) / 100} if len(history) < 1 else None
    '''
    project.script("a.py", search_script("versions.add_search(propose, budget=1)", extra))
    project.script("b.py", search_script("versions.add_version('b1', x=0.1)\nversions.add_version('b2', x=0.2)"))
    project.configure(["a.py", "b.py"])
    result = project.run("-r", "-j", "3", "-n")
    assert result.returncode == 0, result.stderr
    started = {r["version"]: r["started_at"] for r in project.runs()}
    point = next(v for v in started if v.startswith("s-"))
    assert started["b1"] < started[point] and started["b2"] < started[point]


def test_a_stop_that_returns_no_bool_is_said_once_and_the_version_goes_on(project):
    extra = '''
    def propose(history):
        return {"x": 0.5}
    def stop(version, step, history):
        return "no"
    '''
    project.script("search.py", search_script("versions.add_search(propose, budget=1, stopper=stop)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n", env={"STEPS": "6", "SLEEP": "0.05"})
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in project.runs()] == ["succeeded"]
    assert result.stderr.count("stop() returned 'no', not True or False") == 1


def test_a_version_named_like_a_search_point_is_refused_at_load(project):
    project.script("search.py", search_script(
        "versions.add_version('s-00000000', x=0.3)\nversions.add_search(propose, budget=2)", STATELESS))
    project.configure(["search.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 1
    assert "version 's-00000000' is named like a point of search 's'" in result.stderr


def test_equal_points_written_differently_are_one_point_and_propose_cannot_spoil_its_history(project):
    extra = '''
    import numpy as np
    answers = [{"x": 1}, {"x": 1.0}, {"x": np.float32(0.5)}, {"x": 0.25}]
    def propose(history):
        history.clear()  # its own copy: the search's history is not touched
        return answers.pop(0)
    '''
    project.script("search.py", search_script("versions.add_search(propose, budget=3)", extra))
    project.configure(["search.py"])
    result = project.run("-r", "-n")
    assert result.returncode == 0, result.stderr
    assert [x_of(r) for r in runs_of(project)] == [1, 0.5, 0.25]


def test_a_finished_search_says_so_when_nothing_is_left_to_run(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=2)", STATELESS))
    project.configure(["search.py"])
    assert project.run("-r", "-n").returncode == 0
    result = project.run("-r", "-u", "-n")
    assert result.returncode == 0, result.stderr
    assert "nothing to run: models/search.py s: its budget of 2 points is spent" in result.stderr


def test_test_mode_leaves_the_real_optuna_study_alone(project):
    optuna = pytest.importorskip("optuna")
    extra = '''
    import optuna
    def study():
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(storage="sqlite:///models/outputs/study.db", study_name="quad",
                                   load_if_exists=True)
    '''
    project.script("search.py", search_script(
        "versions.add_search(optuna_search(study, 'loss', 'minimize', space={'x': uniform(0, 1)}), budget=2)", extra))
    project.configure(["search.py"])
    assert project.run("-r", "-n").returncode == 0
    result = project.run("-n")  # test mode: one point, one step
    assert result.returncode == 0, result.stderr
    storage = f"sqlite:///{project.outputs / 'study.db'}"
    assert len(optuna.load_study(study_name="quad", storage=storage).get_trials()) == 2


def test_status_shows_how_far_a_search_is(project):
    project.script("search.py", search_script("versions.add_search(propose, budget=3)", STATELESS))
    project.configure(["search.py"])
    runner = project.start("-r", "-n", env={"SLEEP": "0.5", "STEPS": "4"})
    try:
        shown = wait_for(lambda: (lambda out: out if "points tried" in out else None)(
            project.run("status").stdout), proc=runner, what="the search's row in status")
        assert "search: " in shown and " of 3 points tried" in shown
    finally:
        runner.kill()
        runner.communicate()


@pytest.mark.parametrize("forkserver", ["1", "0"])
def test_a_version_with_parameters_over_an_arguments_limit_runs(project, forkserver):
    """Linux refuses a single argument over 128 KiB: such a payload travels through a file."""
    project.script("big.py", search_script("versions.add_version('big', x=0.3, blob='y' * 300000)\n"
                                           "versions.add_version('small', x=0.1)"))
    project.configure(["big.py"])
    result = project.run("-r", "-n", env={"MLPIPELINE_FORKSERVER": forkserver})
    assert result.returncode == 0, result.stderr
    assert [(r["version"], r["status"]) for r in project.runs()] == [("big", "succeeded"), ("small", "succeeded")]
    assert len(json.loads(project.runs()[0]["params"])["blob"]) == 300000
