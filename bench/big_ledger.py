"""A big, realistic ledger for the queries the web dashboard shares with the CLI,
and their timings: ``python -m bench.big_ledger [DIR]``.

``build`` writes 100 000 runs of 20 scripts (their versions, repeats, params,
statuses, times) and 1 000 000 metric rows — final eval values, small training
curves and one run with a 100 000-point ``train/loss`` — with the matching
``metric_summary`` rows, through the real schema (``Ledger`` creates and
migrates it), in one transaction. ``cached`` keeps one file per arguments and
schema in a folder, so benches and repeated runs reuse it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

SCRIPTS = ("resnet", "mlp", "bert_small", "gru_tagger", "unet", "vit_tiny", "xgb_baseline", "lstm_lm", "cnn_audio",
           "gan_faces", "seq2seq", "tabnet", "wide_deep", "ncf", "yolo_nano", "deeplab", "ppo_agent", "vae",
           "transformer_mt", "linear_probe")
BIG_CURVE = 100_000  # points of train/loss in the one big run
FINALS = (("test", "accuracy"), ("test", "loss"), ("train", "accuracy"))
ERRORS = ("ValueError: loss became nan at step {step}", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
          "FileNotFoundError: [Errno 2] No such file or directory: 'data/shard-{step}.tfrecord'",
          "KeyError: 'learning_rate'", "AssertionError: shapes (32, 10) and (32, 12) differ")
DEAD_PID = 4_194_305  # above Linux's PID_MAX_LIMIT: no process ever has it


def _version_params(rng: random.Random, name: str) -> Dict[str, Any]:
    return {"name": name, "lr": rng.choice([0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]),
            "batch_size": rng.choice([16, 32, 64, 128, 256]), "epochs": rng.choice([5, 10, 20, 50]),
            "dropout": rng.choice([0.0, 0.1, 0.2, 0.3, 0.5]), "layers": rng.choice([[64, 64], [128, 64], [256, 128, 64]]),
            "optimizer": {"name": rng.choice(["adam", "sgd", "adamw", "rmsprop"]), "momentum": 0.9,
                          "weight_decay": rng.choice([0.0, 1e-4, 1e-2])},
            "data": {"train": f"data/{rng.choice(['cifar10', 'imdb', 'mnist', 'criteo'])}-train.csv",
                     "augment": rng.random() < 0.5}}


def _versions(rng: random.Random) -> List[Tuple[str, str, str, str, Dict[str, Any]]]:
    """(script, script_sha256, version, params JSON, params) of every declared version."""
    found = []
    for script in SCRIPTS:
        path, sha = f"models/{script}.py", hashlib.sha256(script.encode()).hexdigest()
        params: Dict[str, Any] = {}
        for index in range(rng.randint(5, 40)):
            name = f"v{index:02d}" if rng.random() < 0.7 else f"{rng.choice(['lr', 'wide', 'deep', 'aug'])}_{index}"
            if not params or rng.random() > 0.1:  # one version in ten re-declares the previous one's parameters
                params = _version_params(rng, name)
            params = {**params, "name": name}
            found.append((path, sha, name, json.dumps(params, sort_keys=True), params))
    return found


def _curve(rng: random.Random, count: int, scale: float) -> List[float]:
    tau, noise = max(count / 4, 1.0), scale * 0.05
    return [scale * math.exp(-i / tau) + 0.05 + rng.gauss(0, noise) for i in range(count)]


def build(path: str, runs: int = 100_000, points: int = 1_000_000, seed: int = 0) -> str:
    """Write a ledger of ``runs`` runs and ``points`` metric rows at ``path`` (it must not exist)."""
    from mlpipeline.store.ledger import Ledger
    from mlpipeline.outputs import hostname

    if os.path.exists(path):
        raise FileExistsError(path)
    rng = random.Random(seed)
    host, versions = hostname(), _versions(rng)
    start = 1_767_225_600.0 - runs * 90  # the runs end around 2026-01-01
    big_run = max(1, runs // 2)
    big_points = min(BIG_CURVE, points // 10)
    run_rows, states = [], []
    for run_id in range(1, runs + 1):
        script, sha, version, params, values = versions[rng.randrange(len(versions))]
        mode = "test" if rng.random() < 0.05 and run_id != big_run else "run"
        roll = rng.random()
        status = ("running" if run_id > runs - 4 else "succeeded" if roll < 0.88 or run_id == big_run
                  else "failed" if roll < 0.96 else "interrupted" if roll < 0.98 else "timeout" if roll < 0.99
                  else "cancelled")
        began = start + run_id * 90 + rng.uniform(0, 30)
        ended = None if status == "running" else began + rng.uniform(5, 3600)
        error = ERRORS[rng.randrange(len(ERRORS))].format(step=rng.randrange(10_000)) if status == "failed" else None
        traceback = (f"Traceback (most recent call last):\n  File \"{script}\", line {rng.randrange(20, 400)}, in "
                     f"train_model\n{error}\n") if error else None
        run_rows.append((
            run_id, uuid.UUID(int=rng.getrandbits(128)).hex, script, sha, version, params,
            hashlib.sha256(params.encode()).hexdigest(), mode, status, host, 1000 + run_id % 30000,
            f"models/outputs/runs/{run_id}" if mode == "run" else None,
            f"models/outputs/model_ckpts/{script[7:-3]}-{version}", began, ended, ended or began + 60,
            None if status == "running" else 1 if status == "failed" else 0, error, traceback,
            values["epochs"] * 100, "mlpipeline -r" if mode == "run" else "mlpipeline", str(run_id % 7),
            1 if status == "running" else 2 + run_id * 50 // runs))
        states.append(status == "succeeded" and mode == "run")

    finals = sum(states) * len(FINALS)
    small = max(0, points - big_points - finals)
    per_run, extra = divmod(small, runs - 1 if runs > 1 else 1)
    metric_rows: List[tuple] = []
    summaries: List[tuple] = []
    for index, (run_id, succeeded) in enumerate(zip(range(1, runs + 1), states)):
        began = run_rows[index][13]
        if run_id == big_run:
            count = big_points
        else:
            count = per_run + (1 if extra > 0 else 0)
            extra -= 1
        if count:
            loss = _curve(rng, count, rng.uniform(0.5, 3.0))
            if run_id == big_run:
                loss[count // 3] = 50.0  # a spike a decimated chart must keep
            metric_rows += [(run_id, "train", "loss", step * 10, value, began + step) for step, value in enumerate(loss)]
            summaries.append((run_id, "train", "loss", count, 0, (count - 1) * 10, loss[-1], min(loss), max(loss),
                              began + count))
        if succeeded:
            accuracy = rng.uniform(0.5, 0.99)
            for (split, name), value in zip(FINALS, (accuracy, rng.uniform(0.05, 1.5), min(1.0, accuracy + 0.03))):
                metric_rows.append((run_id, split, name, None, value, began + 3600))
                summaries.append((run_id, split, name, 1, None, None, value, value, value, began + 3600))
    ledger = Ledger(path)
    try:
        with ledger.tx() as db:
            db.executemany("INSERT INTO runners (id, pid, host, mode, options, started_at, heartbeat_at, ended_at) "
                           "VALUES (?, ?, ?, 'run', '{}', ?, ?, ?)",
                           [(1, DEAD_PID, host, start, start + runs * 90, None)]
                           + [(i, 2000 + i, host, start + (i - 2) * runs * 90 / 50, None,
                               start + (i - 1) * runs * 90 / 50) for i in range(2, 52)])
            db.executemany(
                "INSERT INTO runs (id, uid, script, script_sha256, version, params, params_sha256, mode, status, host, "
                "pid, run_dir, model_dir, started_at, ended_at, heartbeat_at, exit_code, error, traceback, steps, "
                "command, seed, runner_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                run_rows)
            db.executemany("INSERT INTO metrics (run_id, split, name, step, value, recorded_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", metric_rows)
            db.executemany("INSERT INTO metric_summary (run_id, split, name, count, first_step, last_step, last, min, "
                           "max, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", summaries)
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        ledger.close()
    return path


def cached(directory: str, runs: int = 100_000, points: int = 1_000_000, seed: int = 0) -> str:
    """The ledger ``build`` makes for these arguments, built once into ``directory``."""
    from mlpipeline.store.ledger import MIGRATIONS

    schema = hashlib.sha256("".join(name for name, _ in MIGRATIONS).encode()).hexdigest()[:8]
    path = os.path.join(directory, f"big-ledger-{runs}-{points}-{seed}-{schema}.db")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        partial = tempfile.mkdtemp(prefix=".building-", dir=directory)
        build(os.path.join(partial, "mlpipeline.db"), runs, points, seed)
        os.replace(os.path.join(partial, "mlpipeline.db"), path)
        os.rmdir(partial)
    return path


def timings(path: str, repeat: int = 20) -> List[Tuple[str, float, Optional[float]]]:
    """(what, median ms, target ms) for each query the dashboard makes."""
    from mlpipeline.read import queries
    from mlpipeline.store.reader import Reader

    reader = Reader(path)
    big = reader.conn.execute("SELECT run_id FROM metric_summary WHERE name = 'loss' ORDER BY count DESC "
                              "LIMIT 1").fetchone()[0]
    script = reader.conn.execute("SELECT script FROM runs WHERE id = ?", (big,)).fetchone()[0]
    checks: List[Tuple[str, Callable[[], Any], Optional[float]]] = [
        ("list_runs(limit=50)", lambda: queries.list_runs(reader), 40),
        ("list_runs(limit=50, offset=5000)", lambda: queries.list_runs(reader, offset=5000), 40),
        ("list_runs(text='adamw')", lambda: queries.list_runs(reader, text="adamw"), 40),
        ("list_runs(text='out of memory')", lambda: queries.list_runs(reader, text="out of memory"), 40),
        ("list_runs(script=resnet, status=failed)", lambda: queries.list_runs(reader, script="resnet.py",
                                                                             status="failed"), 40),
        ("list_runs(status=interrupted)", lambda: queries.list_runs(reader, status="interrupted"), 40),
        ("list_runs(text='no such text') [scans all]", lambda: queries.list_runs(reader, text="no such text"), None),
        ("list_runs(sort='test/accuracy')", lambda: queries.list_runs(reader, sort="test/accuracy"), 100),
        ("list_runs(sort='test/loss', text='adamw')", lambda: queries.list_runs(reader, sort="test/loss",
                                                                               text="adamw"), 100),
        ("list_runs(sort='test/accuracy', offset=99000) [missing last]",
         lambda: queries.list_runs(reader, sort="test/accuracy", offset=99_000), None),
        ("list_runs(sort='script')", lambda: queries.list_runs(reader, sort="script"), None),
        ("list_runs(sort='duration')", lambda: queries.list_runs(reader, sort="duration"), None),
        ("list_runs(sort='status')", lambda: queries.list_runs(reader, sort="status"), None),
        ("count_runs()", lambda: queries.count_runs(reader), None),
        ("count_runs(text='adamw')", lambda: queries.count_runs(reader, text="adamw"), None),
        ("metric_columns()", lambda: queries.metric_columns(reader), None),
        (f"metric_curves(run {big}, {BIG_CURVE} points)", lambda: queries.metric_curves(reader, big), 150),
        (f"compare_detail({script})", lambda: queries.compare_detail(reader, script), None),
        (f"compare_detail({script}, metric='train/loss')",
         lambda: queries.compare_detail(reader, script, metric="train/loss"), None),
    ]
    results = []
    try:
        for what, call, target in checks:
            samples = []
            for _ in range(repeat):
                began = time.perf_counter()
                call()
                samples.append((time.perf_counter() - began) * 1000)
            results.append((what, statistics.median(samples), target))
    finally:
        reader.close()
    return results


def web_queries() -> list:
    """The timings as bench ``Result`` rows (for ``python -m bench``)."""
    from .common import Result

    directory = os.path.join(tempfile.gettempdir(), "mlpipeline-bench-cache")
    return [Result(what, round(median, 1), None, f"<= {target:g} ms" if target else "reported",
                   target is None or median <= target)
            for what, median, target in timings(cached(directory))]


def main(argv: List[str]) -> int:
    directory = argv[0] if argv else os.path.join(tempfile.gettempdir(), "mlpipeline-bench-cache")
    began = time.perf_counter()
    path = cached(directory)
    print(f"ledger {path} ready in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    failed = False
    for what, median, target in timings(path):
        verdict = "" if target is None else ("  pass" if median <= target else "  FAIL")
        failed |= bool(verdict == "  FAIL")
        print(f"{what:62} {median:8.1f} ms  {'' if target is None else f'<= {target:g} ms'}{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
