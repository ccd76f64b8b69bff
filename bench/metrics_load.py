"""Metric volume: log_metric's cost under the runner, reading a big run, the WAL under load."""
from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import List

from .common import Result, interleaved, mlpipeline_cmd, reset_outputs, wall

LOOP_SCRIPT = textwrap.dedent('''\
    import os, time
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    class M(Model):
        def train_model(self, input_fn, steps):
            n = int(os.environ.get("MLP_BENCH_POINTS", "1000000"))
            began = time.perf_counter()
            for i in range(n):
                self.log_metric("loss", float(i), step=i)
            took = time.perf_counter() - began
            with open(os.environ["MLP_BENCH_OUT"], "w") as handle:
                handle.write(repr(took))
        def evaluate_model(self, input_fn, steps): return {"x": 1.0}

    versions = Versions(L(), 1, 1)
    versions.add_version("loop")
    MODEL = M(versions)
    ''')

# Runs the script's model outside any runner: the default reporter (prints each point; stdout is /dev/null).
ALONE_DRIVER = textwrap.dedent('''\
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("loop_script", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.MODEL
    model.pre_execution_hook(None, sys.argv[2])
    model.train_model(None, 1)
    ''')

# The same loop shape with a method that does nothing: the floor of any log_metric.
NOOP_DRIVER = textwrap.dedent('''\
    import os, sys, time
    class M:
        def log_metric(self, name, value, step=None, split="train"): pass
    self = M()
    n = int(os.environ.get("MLP_BENCH_POINTS", "1000000"))
    began = time.perf_counter()
    for i in range(n):
        self.log_metric("loss", float(i), step=i)
    took = time.perf_counter() - began
    with open(os.environ["MLP_BENCH_OUT"], "w") as handle:
        handle.write(repr(took))
    ''')


def _project(prefix: str, scripts: dict, listed: List[str]) -> str:
    root = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(os.path.join(root, "models"))
    with open(os.path.join(root, "mlp.config"), "w") as f:
        f.write("[MLP]\nmodels_dir = models\n")
    for name in ("models.config", "models_test.config"):
        with open(os.path.join(root, name), "w") as f:
            f.write("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\n" + "".join(f"{s}\n" for s in listed))
    for name, text in scripts.items():
        with open(os.path.join(root, "models", name), "w") as f:
            f.write(text)
    return root


def _db(root: str) -> str:
    return os.path.join(root, "models", "outputs", "mlpipeline.db")


def metric_logging(points: int = 1_000_000, runs: int = 3) -> list:
    """A loop of ``points`` ``self.log_metric`` calls timed inside the script:
    under ``mlpipeline -r`` (a child process, batches over a pipe, written to the
    ledger) vs the same model run alone by a small driver (stdout to /dev/null)."""
    root = _project("mlp-bench-metrics-", {"loop.py": LOOP_SCRIPT}, ["loop.py"])
    out = os.path.join(root, "took")
    env = {**os.environ, "MLP_BENCH_OUT": out, "MLP_BENCH_POINTS": str(points)}
    driver = os.path.join(root, "alone.py")
    noop = os.path.join(root, "noop.py")
    with open(driver, "w") as f:
        f.write(ALONE_DRIVER)
    with open(noop, "w") as f:
        f.write(NOOP_DRIVER)
    script = os.path.join(root, "models", "loop.py")
    version_walls: List[float] = []
    command_walls: List[float] = []
    checks: List[str] = []

    def took() -> float:
        with open(out) as handle:
            return float(handle.read())

    def under_runner() -> float:
        reset_outputs(root)
        command_walls.append(wall(mlpipeline_cmd() + ["-r", "-n", "-C", root], env=env))
        conn = sqlite3.connect(_db(root))
        try:
            run_id, status, began, ended = conn.execute(
                "SELECT id, status, started_at, ended_at FROM runs WHERE version = 'loop'").fetchone()
            count = conn.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ? AND name = 'loss'",
                                 (run_id,)).fetchone()[0]
            summary = conn.execute("SELECT count FROM metric_summary WHERE run_id = ? AND name = 'loss'",
                                   (run_id,)).fetchone()
        finally:
            conn.close()
        version_walls.append(ended - began)
        checks.append(f"{status}, metrics {count}, summary {summary[0] if summary else None}")
        if status != "succeeded" or count != points or not summary or summary[0] != points:
            raise RuntimeError(f"metric_logging: run {run_id} is {status} with {count} points in metrics and "
                               f"{summary} in metric_summary (want {points})")
        return took()

    def alone() -> float:
        wall([sys.executable, driver, script, os.path.join(root, "alone-model")], cwd=root, env=env)
        return took()

    def noop_loop() -> float:
        wall([sys.executable, noop], env=env)
        return took()

    try:
        runner_s, alone_s, noop_s = interleaved(runs, under_runner, alone, noop_loop)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = runner_s / alone_s
    version_s = statistics.median(version_walls)
    command_s = statistics.median(command_walls)
    return [
        Result(f"log_metric loop x{points:,} under mlpipeline -r", round(runner_s, 3), round(alone_s, 3),
               "<= 1.5x the loop alone", ratio <= 1.5, unit="s",
               note=f"per call {runner_s / points * 1e9:.0f} ns under the runner, {alone_s / points * 1e9:.0f} ns "
                    f"alone (default reporter printing to /dev/null), {noop_s / points * 1e9:.0f} ns with a no-op "
                    f"method ({runner_s / noop_s:.1f}x the no-op); median of {runs}"),
        Result(f"  version wall, start -> recorded succeeded ({points:,} points)", round(version_s, 3),
               round(runner_s, 3), "reported (baseline: its loop)", True, unit="s",
               note=f"ledger started_at -> ended_at; whole `mlpipeline -r` {command_s:.2f} s; last check: "
                    f"{checks[-1]} (all {len(checks)} runs checked)"),
    ]


def build_large_run(root: str, points: int = 1_000_000, names: int = 200, batch: int = 50_000) -> int:
    """One finished run holding ``points`` metric points over ``names`` names,
    written through the library so metric_summary is kept right."""
    from mlpipeline.store.ledger import Ledger, MetricRow, RunStatus

    os.makedirs(os.path.join(root, "models"), exist_ok=True)
    with open(os.path.join(root, "mlp.config"), "w") as handle:
        handle.write("[MLP]\nmodels_dir = models\n")
    ledger = Ledger(_db(root))
    run_id = ledger.start_run(script="models/big.py", version="v1", mode="run", host="bench",
                              params={"lr": 0.01})["id"]
    per_name = points // names
    rows: List[MetricRow] = []
    for step in range(per_name):
        for index in range(names):
            rows.append(MetricRow(f"loss_{index}", 1.0 / (step + 1) + index, step))
            if len(rows) >= batch:
                ledger.add_metrics(run_id, rows)
                rows = []
    ledger.add_metrics(run_id, rows)
    ledger.add_metrics(run_id, [MetricRow("accuracy", 0.9, None, "test")])
    ledger.set_status(run_id, RunStatus.SUCCEEDED, steps=per_name)
    ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()
    return run_id


def show_large_run(runs: int = 10) -> list:
    """``mlpipeline show RUN`` and ``mlpipeline metrics RUN loss_7 --format csv``
    on a run of 1 000 000 points over 200 names, vs ``python -c pass``."""
    root = tempfile.mkdtemp(prefix="mlp-bench-show-")
    try:
        began = time.perf_counter()
        run_id = build_large_run(root)
        print(f"  built a run of 1 000 000 points in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        cmd = mlpipeline_cmd() + ["-C", root]
        show_s, csv_s, help_s, pass_s = interleaved(
            runs, lambda: wall(cmd + ["show", str(run_id)]),
            lambda: wall(cmd + ["metrics", str(run_id), "loss_7", "--format", "csv"]),
            lambda: wall(mlpipeline_cmd() + ["--help"]), lambda: wall([sys.executable, "-c", "pass"]))
        lines = subprocess.run(cmd + ["metrics", str(run_id), "loss_7", "--format", "csv"], capture_output=True,
                               text=True, check=True).stdout.count("\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Result("show RUN, 1M points over 200 names", round(show_s * 1000, 1), round(pass_s * 1000, 1),
               "<= 200 ms wall", show_s <= 0.200,
               note=f"python start {pass_s * 1000:.0f} ms, mlpipeline --help {help_s * 1000:.0f} ms: show spends "
                    f"{(show_s - help_s) * 1000:.0f} ms beyond the CLI's start; median of {runs}"),
        Result("metrics RUN loss_7 --format csv (5 000 points)", round(csv_s * 1000, 1), round(pass_s * 1000, 1),
               "reported", True, note=f"{lines} lines of CSV; {(csv_s - help_s) * 1000:.0f} ms beyond the CLI's "
                                      f"start; median of {runs}"),
    ]


WAL_SCRIPT = textwrap.dedent('''\
    import os, time
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    class L(DataLoader):
        def get_train_input(self, mode=None, **kw): return None
        def get_test_input(self, **kw): return None
        def get_train_sample_count(self): return 1
        def get_test_sample_count(self): return 1

    class M(Model):
        def train_model(self, input_fn, steps):
            seconds = float(os.environ["MLP_BENCH_SECONDS"])
            rate = float(os.environ["MLP_BENCH_RATE"])  # points per second
            began = time.perf_counter()
            step = 0
            while True:
                elapsed = time.perf_counter() - began
                if elapsed >= seconds:
                    break
                due = int(elapsed * rate) + 1000
                while step < due:
                    self.log_metric("loss", float(step), step=step)
                    step += 1
                time.sleep(0.01)
        def evaluate_model(self, input_fn, steps): return {"x": 1.0}

    versions = Versions(L(), 1, 1)
    versions.add_version("one")
    versions.add_version("two")
    MODEL = M(versions)
    ''')


def _wal_batch(root: str, seconds: float, rate: float, readers: bool) -> dict:
    """One ``-j 2`` batch; the WAL's size sampled every 0.2 s, readers optional."""
    reset_outputs(root)
    env = {**os.environ, "MLP_BENCH_SECONDS": str(seconds), "MLP_BENCH_RATE": str(rate)}
    wal_path = _db(root) + "-wal"
    began = time.perf_counter()
    proc = subprocess.Popen(mlpipeline_cmd() + ["-r", "-n", "-j", "2", "-C", root], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = threading.Event()
    reads: List[tuple] = []
    read_errors: List[str] = []

    def read_loop() -> None:
        cmd = mlpipeline_cmd() + ["-C", root]
        while not os.path.exists(_db(root)) and not stop.is_set():
            time.sleep(0.05)
        while not stop.is_set():
            for args in (["runs"], ["show", "1"], ["status"]):
                start = time.perf_counter()
                done = subprocess.run(cmd + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                reads.append((args[0], time.perf_counter() - start))
                if done.returncode != 0 and len(read_errors) < 3:
                    read_errors.append(f"{args[0]}: {done.stderr.decode().strip()[-200:]}")

    reader = threading.Thread(target=read_loop, daemon=True)
    if readers:
        reader.start()
    peak = 0
    try:
        while proc.poll() is None:
            try:
                peak = max(peak, os.path.getsize(wal_path))
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        stop.set()
        if readers:
            reader.join(timeout=30)
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"wal_bound: mlpipeline -r -j 2 exited {proc.returncode}: {stderr[-500:]}")
    conn = sqlite3.connect(_db(root))
    try:
        points = conn.execute("SELECT SUM(count) FROM metric_summary WHERE name = 'loss'").fetchone()[0] or 0
    finally:
        conn.close()
    db_size = os.path.getsize(_db(root))
    return {"peak": peak, "took": took, "points": points, "reads": reads, "errors": read_errors, "db": db_size}


def wal_bound(seconds: float = 60.0, rate: float = 25_000.0) -> list:
    """Peak size of ``mlpipeline.db-wal`` while a ``-j 2`` batch logs ~3M points
    over ``seconds`` and readers (runs, show 1, status) run back to back; the
    same batch without readers is the baseline."""
    root = _project("mlp-bench-wal-", {"heavy.py": WAL_SCRIPT}, ["heavy.py"])
    try:
        with_readers = _wal_batch(root, seconds, rate, readers=True)
        alone = _wal_batch(root, seconds, rate, readers=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mib = 1 << 20
    peak, base = with_readers["peak"] / mib, alone["peak"] / mib
    reads = with_readers["reads"]
    if reads:
        by_command = {name: [t for n, t in reads if n == name] for name in ("runs", "show", "status")}
        read_note = f"{len(reads)} reader commands, " + ", ".join(
            f"{name} median {statistics.median(ts) * 1000:.0f} ms max {max(ts) * 1000:.0f} ms"
            for name, ts in by_command.items() if ts)
    else:
        read_note = "no reader command ran"
    if with_readers["errors"]:
        read_note += f"; reader errors: {' | '.join(with_readers['errors'])}"
    return [Result(f"WAL peak, -j 2 logging {with_readers['points'] / 1e6:.1f}M points, readers", round(peak, 1),
                   round(base, 1), "<= 64 MiB", peak <= 64 and not with_readers["errors"], unit="MiB",
                   note=f"batch {with_readers['took']:.0f} s with readers, {alone['took']:.0f} s without; "
                        f"ledger {with_readers['db'] / mib:.0f} MiB; {read_note}; baseline = same batch, no readers; "
                        f"sampled every 0.2 s, one batch each")]
