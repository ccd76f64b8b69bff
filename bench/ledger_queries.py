"""Query speed over a big ledger: 100 000 runs and 1 000 000 metric rows."""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid

from .common import Result, interleaved, mlpipeline_cmd, wall

RUNS, METRICS_PER_RUN, BIG_SCRIPT_VERSIONS = 100_000, 10, 200


def build_ledger(root: str, runs: int = RUNS, metrics_per_run: int = METRICS_PER_RUN) -> str:
    """A project whose ledger holds ``runs`` runs: one script with 200 versions
    (for compare) and the rest spread over 90 scripts, each run with metrics."""
    from mlpipeline.store.ledger import Ledger

    os.makedirs(os.path.join(root, "models"), exist_ok=True)
    with open(os.path.join(root, "mlp.config"), "w") as handle:
        handle.write("[MLP]\nmodels_dir = models\n")
    ledger = Ledger(os.path.join(root, "models", "outputs", "mlpipeline.db"))
    rng = random.Random(0)
    start = time.time() - runs * 60
    statuses = ["succeeded"] * 8 + ["failed", "interrupted"]
    run_rows, metric_rows = [], []
    for run_id in range(1, runs + 1):
        if run_id % 10 == 0:
            script, version = "models/big.py", f"v{rng.randrange(BIG_SCRIPT_VERSIONS):03d}"
        else:
            script, version = f"models/s{rng.randrange(90):02d}.py", f"v{rng.randrange(20)}"
        params = {"lr": rng.choice([0.1, 0.01, 0.001]), "batch_size": rng.choice([16, 32, 64]), "name": version}
        began = start + run_id * 60
        run_rows.append((run_id, uuid.UUID(int=rng.getrandbits(128)).hex, script, version, json.dumps(params),
                         "run", rng.choice(statuses), "bench", began, began + rng.uniform(1, 50)))
        for index in range(metrics_per_run):
            split, name, step = (("test", "accuracy", None) if index == 0 else ("test", "loss", None) if index == 1
                                 else ("train", "loss", index))
            metric_rows.append((run_id, split, name, step, rng.random(), began))
    with ledger.tx() as db:
        db.executemany("INSERT INTO runs (id, uid, script, version, params, mode, status, host, started_at, ended_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
        db.executemany("INSERT INTO metrics (run_id, split, name, step, value, recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                       metric_rows)
    ledger.conn.execute("ANALYZE")
    ledger.close()
    return root


def query_speed(runs: int = 20) -> list:
    root = tempfile.mkdtemp(prefix="mlp-bench-ledger-")
    try:
        began = time.perf_counter()
        build_ledger(root)
        print(f"  built a ledger of {RUNS} runs / {RUNS * METRICS_PER_RUN} metrics in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        cmd = mlpipeline_cmd() + ["-C", root]
        list_s, compare_s, pass_s = interleaved(
            runs, lambda: wall(cmd + ["runs", "--limit", "50"]), lambda: wall(cmd + ["compare", "big.py"]),
            lambda: wall([sys.executable, "-c", "pass"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Result("runs --limit 50 over 100k runs / 1M metrics", round(list_s * 1000, 1), round(pass_s * 1000, 1),
               "<= 250 ms wall", list_s <= 0.250),
        Result(f"compare over {BIG_SCRIPT_VERSIONS} versions (10k runs)", round(compare_s * 1000, 1),
               round(pass_s * 1000, 1), "<= 500 ms wall", compare_s <= 0.500),
    ]
