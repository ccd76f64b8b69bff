"""``log_metric``'s point taker in a version's child: the C one (``mlpipeline.script._points``) records what the
pure-Python one (``report.PythonPoints``, forced with ``MLPIPELINE_PURE_POINTS=1``) records, raises what it
raises, sends a batch when ``MAX_BUFFERED`` points wait, and ``from mlpipeline import log_metric`` binds it."""
from __future__ import annotations

import base64
import json
import marshal
import math
import os
import textwrap
import threading
import time

import pytest

from mlpipeline.core.lifecycle import STEP_RANGE, BadMetric, metric_row, unpack_rows
from mlpipeline.script import report

in_c = pytest.importorskip("mlpipeline.script._points", reason="the C point taker was not built (no compiler)")

BIG = 2 ** 63 - 1
# (name, value, step, split) as log_metric gets them: the usual point, and each kind metric_row converts
GOOD = [
    ("loss", 0.5, 0, "train"), ("loss", 0.25, 1, "train"), ("loss", 0.125, None, "train"),
    ("acc", 0.9, 1, "test"), ("".join(["lo", "ss"]), 0.1, 2, "train"),  # an equal name, another object
    ("loss", float("nan"), 3, "train"), ("loss", float("inf"), 4, "train"), ("loss", -float("inf"), 5, "train"),
    ("loss", -0.0, -1, "train"), ("loss", 3, 6, "train"), ("loss", True, 7, "train"), ("loss", None, 8, "train"),
    ("loss", 1.0, 2 ** 31 - 1, "train"), ("loss", 1.0, 2 ** 31, "train"), ("loss", 1.0, -2 ** 31, "train"),
    ("loss", 1.0, -2 ** 31 - 1, "train"), ("loss", 1.0, BIG, "train"), ("loss", 1.0, -BIG - 1, "train"),
    ("loss", 1.0, 2 ** 40 + 12345, "val"), ("loss", 1.0, 3.0, "train"), ("λόγος", 2.0, 1, "δοκιμή"),
    ("emoji \U0001F600", 2.0, 1, "train"), ("surrogate \ud800", 1.0, None, "train"),
    ("n" * 300, 1.5, 9, "train"), ("n" * 1024, 1.5, 10, "s" * 64),
]
BAD = [
    ("", 1.0, None, "train"), ("   ", 1.0, None, "train"), (3, 1.0, None, "train"), ("n" * 1025, 1.0, None, "train"),
    ("loss", "high", None, "train"), ("loss", [1.0, 2.0], None, "train"), ("loss", 1.0, BIG + 1, "train"),
    ("loss", 1.0, -BIG - 2, "train"), ("loss", 1.0, True, "train"), ("loss", 1.0, 1.5, "train"),
    ("loss", 1.0, None, ""), ("loss", 1.0, None, "s" * 65), ("loss", 1.0, None, None),
]


def c_points(check=metric_row, catch_up=lambda: None, most: int = 1_000_000, low: int = STEP_RANGE[0],
             high: int = STEP_RANGE[1]):
    return in_c.Points(check, catch_up, most, low, high)


def python_points(catch_up=lambda: None, most: int = 1_000_000):
    points = report.PythonPoints(catch_up, most)
    return points, points.point


def rows_of(packed: str) -> list:
    """Rows as comparable tuples (NaN made a string: nan != nan)."""
    rows = marshal.loads(base64.b64decode(packed))
    assert all(type(r) is tuple and len(r) == 4 for r in rows)
    assert all(type(r[0]) is str and type(r[3]) is str and type(r[1]) in (float, type(None))
               and type(r[2]) in (int, type(None)) for r in rows)
    return [(n, "nan" if v != v else v, s, sp) for n, v, s, sp in rows]


def test_c_points_pack_the_rows_python_points_pack() -> None:
    fast = c_points()
    pure, pure_point = python_points()
    for _ in range(3):  # several batches: a string written once a batch, referred to after
        for name, value, step, split in GOOD * 2:
            fast(name, value, step=step, split=split)
            pure_point(name, value, step=step, split=split)
        assert len(fast) == len(pure) == 2 * len(GOOD)
        packed_fast, packed_pure = fast.take(), pure.take()
        assert rows_of(packed_fast) == rows_of(packed_pure)
        assert [tuple(r) for r in unpack_rows(packed_fast)][:2] == [("loss", 0.5, 0, "train"), ("loss", 0.25, 1, "train")]
        assert math.copysign(1.0, rows_of(packed_fast)[8][1]) == -1.0  # -0.0 kept
        assert len(fast) == len(pure) == 0 and fast.take() is None and pure.take() is None


def test_positional_and_keyword_arguments_as_log_metric_takes_them() -> None:
    fast = c_points()
    fast("a", 1.0)
    fast("a", 2.0, 3)
    fast("a", 3.0, 4, "test")
    fast(name="a", value=4.0, split="test")
    fast("a", value=5.0, step=None)
    assert rows_of(fast.take()) == [("a", 1.0, None, "train"), ("a", 2.0, 3, "train"), ("a", 3.0, 4, "test"),
                                    ("a", 4.0, None, "test"), ("a", 5.0, None, "train")]
    for args, kwargs, words in [(("a",), {}, "missing 1 required positional argument: 'value'"),
                                ((), {}, "missing 2 required positional arguments"),
                                (("a", 1.0, 1, "t", 5), {}, "takes from 2 to 4 positional arguments but 5 were given"),
                                (("a", 1.0), {"stp": 1}, "unexpected keyword argument 'stp'"),
                                (("a", 1.0, 1), {"step": 1}, "multiple values for argument 'step'")]:
        with pytest.raises(TypeError, match=words):
            fast(*args, **kwargs)
    assert fast.take() is None


@pytest.mark.parametrize("point", BAD, ids=repr)
def test_a_bad_point_raises_what_metric_row_raises_in_both(point) -> None:
    with pytest.raises(BadMetric) as expected:
        metric_row(*point)
    fast, (pure, pure_point) = c_points(), python_points()
    for taker in (fast, pure_point):
        taker("loss", 1.0, None, "train")  # a good pair seen first: the check still happens
        with pytest.raises(BadMetric) as raised:
            taker(*point)
        assert str(raised.value) == str(expected.value)
    assert len(fast.take()) and len(rows_of(pure.take())) == 1


def test_only_the_usual_point_skips_the_check() -> None:
    """A float, a step in range (64 bits: one beyond 32 too) and a pair checked before: no call to the check.
    A value of another type, a step beyond the range or a new pair: through the check."""
    checked = []

    def check(*point):
        checked.append(point)
        return metric_row(*point)

    fast = c_points(check, low=-10, high=2 ** 40)
    fast("loss", 1.0, 1)
    fast("loss", 2.0, 2)
    fast("loss", 3.0, 2 ** 35)
    fast("loss", 4.0)
    assert checked == [("loss", 1.0, 1, "train")]
    fast("loss", 5, 3)                      # an int value
    fast("loss", 6.0, 2 ** 40 + 1)          # beyond this taker's range, within a step's
    fast("loss", 7.0, -11)
    fast("loss", 8.0, 3, "test")            # a new pair
    assert [c[1] for c in checked] == [1.0, 5, 6.0, 7.0, 8.0]
    fast("loss", 9.0, 4, "test")
    assert len(checked) == 5
    with pytest.raises(BadMetric, match="outside the range"):
        fast("loss", 1.0, 2 ** 63)
    assert [r[1:3] for r in rows_of(fast.take())] == [(1.0, 1), (2.0, 2), (3.0, 2 ** 35), (4.0, None), (5.0, 3),
                                                       (6.0, 2 ** 40 + 1), (7.0, -11), (8.0, 3), (9.0, 4)]


def test_the_flusher_is_woken_once_a_batch_of_wake_bytes() -> None:
    woken = []
    fast = in_c.Points(metric_row, lambda: None, 1_000_000, *STEP_RANGE, wake=lambda: woken.append(len(fast)),
                       wake_bytes=1000)
    for i in range(500):
        fast("loss", float(i), step=i)
    assert len(woken) == 1 and 30 < woken[0] < 60  # about 25 bytes a row
    assert len(rows_of(fast.take())) == 500
    for i in range(500):  # the next batch, in the buffer the last one used
        fast("loss", float(i), step=i)
    assert len(woken) == 2 and rows_of(fast.take())[-1] == ("loss", 499.0, 499, "train")


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_a_batch_goes_out_when_max_buffered_points_wait(pure, monkeypatch) -> None:
    monkeypatch.setenv("MLPIPELINE_PURE_POINTS", "1" if pure else "0")

    class Small(report.PipeReporter):
        MAX_BUFFERED = 10
        FLUSH_EVERY = 600.0  # the flusher never sends on its own here

    read_fd, write_fd = os.pipe()
    reporter = Small(write_fd)
    try:
        assert (type(reporter.point) is in_c.Points) is not pure
        for i in range(25):
            reporter.point("loss", float(i), step=i)
        os.set_blocking(read_fd, False)
        early = os.read(read_fd, 1 << 20).decode().splitlines()
    finally:
        reporter.close()
        reporter._file.close()
    with os.fdopen(read_fd) as rest:
        late = rest.read().splitlines()
    batches = [[tuple(r) for r in unpack_rows(json.loads(line)["packed"])] for line in early + late]
    assert [len(b) for b in batches] == [10, 10, 5] and len(early) == 2
    assert [r for b in batches for r in b] == [("loss", float(i), i, "train") for i in range(25)]


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_points_from_several_threads_arrive_once_each_in_order(pure, monkeypatch) -> None:
    """Threads logging while the flusher sends small batches (encoded and written without the GIL)."""
    monkeypatch.setenv("MLPIPELINE_PURE_POINTS", "1" if pure else "0")

    class Busy(report.PipeReporter):
        FLUSH_EVERY = 0.001
        FLUSH_BYTES = 4096

    read_fd, write_fd = os.pipe()
    lines: list = []
    with os.fdopen(read_fd) as reading:
        reader = threading.Thread(target=lambda: lines.extend(reading), name="test-reader")
        reader.start()
        reporter = Busy(write_fd)

        def log(n: int) -> None:
            for i in range(20_000):
                reporter.point(f"t{n}", float(i), step=i, split="train")
                if i % 200 == 0:
                    time.sleep(0)  # let the others and the flusher in

        workers = [threading.Thread(target=log, args=(n,), name=f"test-logger-{n}") for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        reporter.close()
        reporter._file.close()
        reader.join()
    rows = [tuple(r) for line in lines for r in unpack_rows(json.loads(line)["packed"])]
    assert len(lines) > 1 and len(rows) == 80_000  # several batches went out while the threads logged
    for n in range(4):
        assert [r[2] for r in rows if r[0] == f"t{n}"] == list(range(20_000))


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_sending_to_a_pipe_nobody_reads_raises_broken_pipe(pure) -> None:
    points, _ = python_points() if pure else (c_points(), None)
    (points.point if pure else points)("loss", 1.0)
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        with pytest.raises(BrokenPipeError):
            points.send(write_fd, b"<", b">")
    finally:
        os.close(write_fd)
    assert len(points) == 0 and points.send(write_fd, b"", b"") == 0  # nothing waits: nothing written


def test_a_forked_child_drops_its_points() -> None:
    """A worker the version forks holds the parent's taker: its points go nowhere, never onto the pipe."""
    fast, (pure, pure_point) = c_points(most=5), python_points(most=5)
    for points, point in ((fast, fast), (pure, pure_point)):
        point("loss", 1.0)
        points.drop()
        assert len(points) == 0
        for i in range(2000):
            point("loss", float(i))
        point("loss", "not a number")  # nothing checked either
        assert len(points) <= 1024


SCRIPT = textwrap.dedent("""\
    import json, math, os
    from mlpipeline import log_metric
    import mlpipeline

    nan, inf = float("nan"), float("inf")
    GOOD = {good!r}
    BAD = {bad!r}
    for _ in range(2):
        for name, value, step, split in GOOD:
            log_metric(name, value, step=step, split=split)
    for i in range(3000):
        log_metric("loop", float(i), step=i)
    mlpipeline.log_metric("attribute", 1.0, 1)  # looked up at call time
    errors = []
    for point in BAD:
        try:
            log_metric(*point)
        except ValueError as exc:
            errors.append(str(exc))
    pid = os.fork()
    if pid == 0:
        for i in range(2000):
            log_metric("forked", 1.0, step=i)
        os._exit(0)
    os.waitpid(pid, 0)
    with open(os.path.join(os.environ["MLPIPELINE_MODEL_DIR"], "seen.json"), "w") as handle:
        json.dump({{"taker": type(log_metric).__name__, "errors": errors}}, handle)
    """)


def run_points(project, pure: bool):
    project.script("train.py", SCRIPT.format(good=[p for p in GOOD if "\ud800" not in p[0]], bad=BAD))
    config = "[WHITELISTED_MODELS]\ntrain.py\n\n[train.py]\nv =\n"
    project.write("models.config", config)
    result = project.run("-r", env={"MLPIPELINE_PURE_POINTS": "1" if pure else "0"})
    assert result.returncode == 0, result.stderr
    run = project.runs()[-1]
    assert run["status"] == "succeeded"
    with project.db() as conn:
        rows = [tuple(r) for r in conn.execute("SELECT split, name, step, value FROM metrics WHERE run_id = ? AND "
                                                 "split != 'sys' ORDER BY rowid", (run["id"],))]
    return rows, json.loads((project.root / run["model_dir"] / "seen.json").read_text())


def test_a_plain_script_records_the_same_rows_on_either_taker(project) -> None:
    fast_rows, fast_seen = run_points(project, pure=False)
    pure_rows, pure_seen = run_points(project, pure=True)
    assert fast_seen["taker"] == "Points" and pure_seen["taker"] == "function"
    assert fast_seen["errors"] == pure_seen["errors"] and len(fast_seen["errors"]) == len(BAD)
    assert fast_rows == pure_rows
    good = len(GOOD) - 1
    assert len(fast_rows) == 2 * good + 3000 + 1
    assert [r[2:] for r in fast_rows if r[1] == "loop"] == [(i, float(i)) for i in range(3000)]
    assert not [r for r in fast_rows if r[1] == "forked"]
