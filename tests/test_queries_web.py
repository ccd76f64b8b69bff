"""The queries the dashboard shares with the CLI: filtering, sorting and paging
runs, decimated curves, and the compare page's detail — over real ledgers."""
from __future__ import annotations

import math
import sqlite3
import statistics
from pathlib import Path

import pytest

from mlpipeline.read import queries
from mlpipeline.core.errors import UsageError
from mlpipeline.store.ledger import Ledger, MetricRow, Mode, RunStatus
from mlpipeline.outputs import hostname
from mlpipeline.store.reader import Reader

DEAD_PID = 4_194_305  # above Linux's PID_MAX_LIMIT: never a live process


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def record(ledger: Ledger, script: str, version: str, *, params=None, status=RunStatus.SUCCEEDED, mode=Mode.RUN,
           finals=None, curve=(), error=None, **fields) -> int:
    """One run, ended with ``status``: final metrics {"test/acc": 0.9}, a curve of MetricRows."""
    run_id = ledger.start_run(script=script, version=version, mode=mode, host=hostname(),
                              params={"name": version, **(params or {})}, **fields)["id"]
    rows = list(curve) + [MetricRow(label.split("/", 1)[1], value, None, label.split("/", 1)[0])
                          for label, value in (finals or {}).items()]
    if rows:
        ledger.add_metrics(run_id, rows)
    if status != RunStatus.RUNNING:
        ledger.set_status(run_id, status, **({"error": error} if error else {}))
    return run_id


def older_schema(path, schema: str) -> None:
    """Make the ledger at ``path`` read as one a runner has not upgraded: without
    the final-metric index (0006), or also without metric summaries (0005)."""
    with sqlite3.connect(path) as conn:
        # before 0010 a result was the summary's last point, without a step
        conn.execute("UPDATE metric_summary SET count = count + 1, last = final, last_step = NULL, "
                     "min = MIN(COALESCE(min, final), final), max = MAX(COALESCE(max, final), final) "
                     "WHERE has_final = 1")
        conn.execute("DROP INDEX metric_summary_result")
        conn.execute("DELETE FROM migrations WHERE name LIKE '0010%'")
        conn.execute("DELETE FROM migrations WHERE name LIKE '0006%'")
        if schema == "before summaries":
            conn.execute("DROP TABLE metric_summary")
            conn.execute("DELETE FROM migrations WHERE name LIKE '0005%'")


SCHEMAS = ["current", "without the index", "before summaries"]


@pytest.fixture(params=SCHEMAS)
def listed(request, tmp_path):
    """Nine runs of two scripts: metrics on some, one failed, one running with a
    dead owner, one running alive; read at every schema a reader may meet."""
    path = str(tmp_path / "mlpipeline.db")
    ledger = Ledger(path, clock=Clock())
    ids = {
        "a1": record(ledger, "models/alpha.py", "v1", params={"opt": "Adam", "lr": 0.1}, finals={"test/acc": 0.70}),
        "a2": record(ledger, "models/alpha.py", "v2", params={"opt": "sgd", "lr": 0.5},
                     finals={"test/acc": 0.90, "test/loss": 0.3}),
        "b1": record(ledger, "models/beta.py", "under_score", params={"note": "100% sure"},
                     finals={"test/acc": 0.80, "test/loss": 0.2}),
        "b2": record(ledger, "models/beta.py", "underXscore", status=RunStatus.FAILED,
                     error="ValueError: loss became NaN at step 7\nmore lines"),
        "a3": record(ledger, "models/alpha.py", "v3", finals={"test/acc": 0.90}),
        "dead": record(ledger, "models/alpha.py", "v4", status=RunStatus.RUNNING, pid=DEAD_PID),
        "b3": record(ledger, "models/beta.py", "plain", finals={"test/loss": 0.25}),
        "alive": record(ledger, "models/beta.py", "live", status=RunStatus.RUNNING),
        "a4": record(ledger, "models/alpha.py", "v5", finals={"test/acc": float("nan")}),
    }
    ledger.close()
    if request.param != "current":
        older_schema(path, request.param)
    reader = Reader(path)
    yield reader, ids
    reader.close()


def names(rows, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r["id"]] for r in rows]


def test_default_listing_is_newest_first_and_derives_only_what_it_returns(listed):
    reader, ids = listed
    rows = queries.list_runs(reader)
    assert names(rows, ids) == ["a4", "alive", "b3", "dead", "a3", "b2", "b1", "a2", "a1"]
    status = {r["id"]: r["status"] for r in rows}
    assert status[ids["dead"]] == "interrupted" and status[ids["alive"]] == "running"
    assert rows[-1]["metrics"] == {"test/acc": 0.70}
    assert queries.count_runs(reader) == 9


def test_text_matches_script_version_params_and_error_in_any_case_with_wildcards_literal(listed):
    reader, ids = listed
    assert names(queries.list_runs(reader, text="adam"), ids) == ["a1"]        # params, other case
    assert names(queries.list_runs(reader, text="BETA"), ids) == ["alive", "b3", "b2", "b1"]  # script
    assert names(queries.list_runs(reader, text="nan at step"), ids) == ["b2"]  # error text
    assert names(queries.list_runs(reader, text="under_"), ids) == ["b1"]       # _ is no wildcard
    assert names(queries.list_runs(reader, text="100%"), ids) == ["b1"]         # nor is %
    assert queries.list_runs(reader, text="%") == queries.list_runs(reader, text="100%")
    assert queries.list_runs(reader, text="nothing like this") == []
    assert queries.count_runs(reader, text="beta") == 4
    assert queries.count_runs(reader, text="beta", status="failed") == 1


def test_status_filters_read_a_dead_runners_run_as_interrupted(listed):
    reader, ids = listed
    assert names(queries.list_runs(reader, status="running"), ids) == ["alive"]
    assert names(queries.list_runs(reader, status="interrupted"), ids) == ["dead"]
    assert queries.count_runs(reader, status="interrupted") == 1
    assert queries.count_runs(reader, status="running") == 1


def test_sort_by_columns(listed):
    reader, ids = listed
    by_script = queries.list_runs(reader, sort="script")
    assert [r["script"] for r in by_script] == ["models/alpha.py"] * 5 + ["models/beta.py"] * 4
    assert names(by_script, ids)[:5] == ["a4", "dead", "a3", "a2", "a1"]  # newest first among equals
    assert [r["script"] for r in queries.list_runs(reader, sort="script", descending=True)][0] == "models/beta.py"
    assert names(queries.list_runs(reader, sort="id", descending=False), ids)[:2] == ["a1", "a2"]
    assert names(queries.list_runs(reader, sort="started"), ids)[0] == "a4"
    statuses = [r["status"] for r in queries.list_runs(reader, sort="status")]
    assert statuses == sorted(statuses)  # the derived status, not the stored one
    durations = [r["duration"] for r in queries.list_runs(reader, sort="duration", now=1_700_000_500.0)]
    assert durations == sorted(durations, reverse=True) and None not in durations
    with pytest.raises(UsageError, match="sort 'colour': not a column"):
        queries.list_runs(reader, sort="colour")


def test_sort_by_metric_puts_runs_without_it_last(listed):
    reader, ids = listed
    best = names(queries.list_runs(reader, sort="test/acc"), ids)
    assert best == ["a3", "a2", "b1", "a1",  # 0.9 (newest first), 0.9, 0.8, 0.7
                    "a4", "alive", "b3", "dead", "b2"]  # a NaN counts as missing; then newest first
    assert names(queries.list_runs(reader, sort="test/acc", descending=False), ids)[:4] == ["a1", "b1", "a3", "a2"]
    assert names(queries.list_runs(reader, sort="test/loss"), ids)[:3] == ["b1", "b3", "a2"]  # a loss: lowest first
    assert names(queries.list_runs(reader, sort="test/acc", script="alpha"), ids) == ["a3", "a2", "a1", "a4", "dead"]
    assert names(queries.list_runs(reader, sort="test/nothing"), ids) == names(queries.list_runs(reader), ids)


@pytest.mark.parametrize("sort", [None, "script", "duration", "test/acc", "test/loss"])
def test_pages_add_up_to_the_whole_listing(listed, sort):
    reader, _ = listed
    whole = [r["id"] for r in queries.list_runs(reader, sort=sort, limit=None, now=1_700_000_500.0)]
    assert len(whole) == queries.count_runs(reader) == 9
    for size in (1, 2, 4):
        pages = [r["id"] for offset in range(0, 12, size)
                 for r in queries.list_runs(reader, sort=sort, limit=size, offset=offset, now=1_700_000_500.0)]
        assert pages == whole
    assert queries.list_runs(reader, sort=sort, offset=50) == []


def test_metric_columns_lists_final_metrics_test_first(listed):
    reader, _ = listed
    assert queries.metric_columns(reader) == ["test/acc", "test/loss"]
    assert queries.metric_columns(reader, limit=1) == ["test/acc"]


def test_the_cli_still_lists_as_before(listed):
    reader, ids = listed
    assert names(queries.list_runs(reader, limit=3), ids) == ["a4", "alive", "b3"]
    assert names(queries.list_runs(reader, ids=[ids["a1"], ids["b2"]], limit=None), ids) == ["b2", "a1"]
    assert names(queries.list_runs(reader, script="beta.py", version="plain"), ids) == ["b3"]


# -- curves ----------------------------------------------------------------------------------------------------

def test_decimate_returns_a_short_curve_as_it_is():
    points = [(i, float(i)) for i in range(100)]
    assert queries.decimate(points, max_points=100) is points
    assert queries.decimate(points[:3]) == points[:3]
    with pytest.raises(UsageError, match="max_points 3"):
        queries.decimate(points, max_points=3)


def test_decimate_keeps_ends_and_spikes_in_order():
    points = [(step, math.sin(step / 50.0)) for step in range(10_000)]
    points[3_333] = (3_333, 40.0)
    points[7_777] = (7_777, -40.0)
    kept = queries.decimate(points, max_points=200)
    assert len(kept) <= 200
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (3_333, 40.0) in kept and (7_777, -40.0) in kept
    steps = [s for s, _ in kept]
    assert steps == sorted(set(steps))
    assert set(kept) <= set(points)


def test_decimate_compares_only_finite_values():
    points = [(i, float(i % 7)) for i in range(1_000)]
    points[500] = (500, None)
    points[501] = (501, float("nan"))
    points[502] = (502, float("inf"))
    points[10] = (10, -5.0)
    kept = queries.decimate(points, max_points=50)
    assert (10, -5.0) in kept and len(kept) <= 50
    assert all(v is None or math.isfinite(v) for _, v in kept[1:-1])


@pytest.fixture
def curved(tmp_path):
    path = str(tmp_path / "mlpipeline.db")
    ledger = Ledger(path, clock=Clock())
    big = [MetricRow("loss", 1.0 / (step + 1), step, "train") for step in range(20_000)]
    big[12_345] = MetricRow("loss", 99.0, 12_345, "train")
    small = ([MetricRow("loss", 2.0 - step / 10, step, "validation") for step in range(5)]
             + [MetricRow("acc", float("inf") if step == 1 else step / 10, step, "train") for step in range(3)])
    run_id = record(ledger, "models/c.py", "v", finals={"test/acc": 0.5}, curve=big + small)
    ledger.close()
    reader = Reader(path)
    yield reader, run_id
    reader.close()


def test_metric_curves_one_entry_per_split_and_name_decimated(curved):
    reader, run_id = curved
    curves = queries.metric_curves(reader, run_id, max_points=500)
    assert [(c["split"], c["name"], c["points"], c["decimated"]) for c in curves] == [
        ("train", "acc", 3, False), ("train", "loss", 20_000, True), ("validation", "loss", 5, False)]
    acc, loss, validation = curves
    assert acc["steps"] == [0, 1, 2] and acc["values"] == [0.0, None, 0.2]  # inf is no JSON number
    assert validation["values"] == [2.0, 1.9, 1.8, 1.7, 1.6]
    assert len(loss["steps"]) <= 500 and loss["steps"][0] == 0 and loss["steps"][-1] == 19_999
    assert 99.0 in loss["values"] and loss["steps"] == sorted(loss["steps"])
    whole = queries.metric_curves(reader, run_id, max_points=None)
    assert whole[1]["values"][12_345] == 99.0 and len(whole[1]["steps"]) == 20_000
    assert [c["split"] for c in queries.metric_curves(reader, run_id, name="loss")] == ["train", "validation"]
    assert [c["split"] for c in queries.metric_curves(reader, run_id, name="validation/loss")] == ["validation"]
    with pytest.raises(UsageError, match="run '999' not found"):
        queries.metric_curves(reader, 999)


# -- compare -----------------------------------------------------------------------------------------------------

def test_compare_detail_versions_params_groups_and_curves(tmp_path):
    path = str(tmp_path / "mlpipeline.db")
    ledger = Ledger(path, clock=Clock())
    base = {"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}
    accs = {"v1": [0.80, 0.84, 0.82], "v2": [0.70], "same_as_v1": [0.86]}
    for version, values in accs.items():
        params = {**base, "lr": 0.2} if version == "v2" else base
        for i, acc in enumerate(values):
            record(ledger, "models/m.py", version, params=params, finals={"test/acc": acc, "test/loss": 1 - acc},
                   curve=[MetricRow("loss", 1.0 / (s + 1) + i, s) for s in range(50)])
    record(ledger, "models/m.py", "v2", params={**base, "lr": 0.2}, status=RunStatus.FAILED)  # later, failed
    record(ledger, "models/m.py", "v1", params=base, mode=Mode.TEST, finals={"test/acc": 0.1})  # test mode
    ledger.close()
    reader = Reader(path)
    detail = queries.compare_detail(reader, "m.py")
    _, table = queries.compare_versions(reader, "m.py")
    assert [(v["version"], v["run"]) for v in detail["versions"]] == [(r["version"], r["run"]) for r in table]
    v1 = detail["versions"][0]
    assert v1["params"] == {"name": "v1", "lr": 0.1, "opt.name": "adam", "opt.beta": 0.9}
    assert v1["metrics"]["test/acc"] == 0.82 and "curves" not in v1
    assert detail["param_keys"] == ["lr", "name", "opt.beta", "opt.name"]
    assert detail["differing"] == ["lr"]
    assert detail["metrics"] == ["test/acc", "test/loss"]
    assert detail["curve_names"] == ["test/acc", "test/loss", "train/loss"]
    groups = {tuple(g["versions"]): g for g in detail["groups"]}
    assert set(groups) == {("same_as_v1", "v1"), ("v2",)}  # parameters alike but for the name; newest first
    same = groups[("same_as_v1", "v1")]
    assert same["count"] == 4 and same["params"] == {"lr": 0.1, "opt.name": "adam", "opt.beta": 0.9}
    assert same["metrics"]["test/acc"]["mean"] == pytest.approx(statistics.mean([0.80, 0.84, 0.82, 0.86]))
    assert same["metrics"]["test/acc"]["std"] == pytest.approx(statistics.stdev([0.80, 0.84, 0.82, 0.86]))
    assert groups[("v2",)]["metrics"]["test/acc"] == {"mean": 0.70, "std": None, "n": 1}

    charted = queries.compare_detail(reader, "models/m.py", metric="train/loss", max_points=10)
    assert charted["metrics"] == ["train/loss (last)"]  # no final value: the curve's last point
    curves = charted["versions"][0]["curves"]
    assert [(c["split"], c["name"], c["points"], c["decimated"]) for c in curves] == [("train", "loss", 50, True)]
    assert len(curves[0]["steps"]) <= 10 and curves[0]["steps"][0] == 0 and curves[0]["steps"][-1] == 49
    with pytest.raises(UsageError, match="no run of models/m.py recorded it"):
        queries.compare_detail(reader, "m.py", metric="nothing")
    reader.close()


def test_big_ledger_builder_writes_consistent_summaries(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the checkout, where bench/ lives
    from bench.big_ledger import cached

    path = cached(str(tmp_path), runs=400, points=6_000, seed=1)
    assert cached(str(tmp_path), runs=400, points=6_000, seed=1) == path  # built once
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 400
        assert conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 6_000
        mismatched = conn.execute(
            "SELECT COUNT(*) FROM metric_summary s LEFT JOIN (SELECT run_id, split, name, COUNT(*) AS n, MIN(value) AS "
            "lo, MAX(value) AS hi FROM metrics GROUP BY run_id, split, name) m USING (run_id, split, name) "
            "WHERE m.n IS NOT s.count OR m.lo IS NOT s.min OR m.hi IS NOT s.max").fetchone()[0]
        assert mismatched == 0
        assert conn.execute("SELECT COUNT(*) FROM metric_summary").fetchone()[0] == conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT run_id, split, name FROM metrics)").fetchone()[0]
    reader = Reader(path)
    assert queries.count_runs(reader, status="running") == 0  # its 'running' runs' runner is dead
    assert queries.count_runs(reader, status="interrupted") >= 4
    reader.close()
