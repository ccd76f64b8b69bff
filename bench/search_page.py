"""The search page and parameter importance over a search of 1 000 points: ``python -m
bench.search_page``.

``build`` records, through the real ``Ledger`` (start_run, add_metrics, set_status), 1 000 points of
one ``add_search`` search (``s-<8 hex>``) with six parameters (a log-spread learning rate, integers, a
float, categories), a 20-step ``val/loss`` curve each, and an ASHA outcome: about half pruned at step 3
and a tenth of the rest at step 9, with ASHA's reason; the others succeeded, with their results. The
page's JSON, the page itself and the importance ranking are then timed through ``mlpipeline serve``
(and, as the baseline, the library calls in-process). Target: each answers in <= 300 ms (median).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Optional

from .common import Result, mlpipeline_cmd
from .web import TOKEN, _Client

POINTS = 1000
STEPS = 20
TARGET_MS = 300.0
SCRIPT = "models/search.py"


def _loss(params: dict, step: int, noise: float) -> float:
    lr = params["lr"]
    return ((math.log10(lr) + 3) ** 2 / 4 + 0.1 * params["dropout"] + (0.05 if params["optimizer"] == "sgd" else 0)
            + 1.0 / (step + 1) + noise)


def build(root: str, points: int = POINTS, seed: int = 0) -> str:
    """A project at ``root`` whose ledger holds ``points`` points of search ``s`` of models/search.py."""
    from mlpipeline.core.lifecycle import MetricRow, Mode, RunStatus
    from mlpipeline.outputs import hostname
    from mlpipeline.store.ledger import Ledger

    os.makedirs(os.path.join(root, "models", "outputs"))
    with open(os.path.join(root, "mlp.config"), "w") as handle:
        handle.write("[MLP]\nmodels_dir = models\n")
    moment = [1_767_225_600.0]

    def clock() -> float:
        moment[0] += 0.5
        return moment[0]

    rng = random.Random(seed)
    ledger = Ledger(os.path.join(root, "models", "outputs", "mlpipeline.db"), clock=clock)
    host = hostname()
    best_at = {3: [], 9: []}  # the values seen at each rung so far
    keep = {3: 0.5, 9: 0.9}      # the share of those that go on
    try:
        for _ in range(points):
            params = {"lr": 10 ** rng.uniform(-5, -1), "layers": rng.randint(1, 8), "units": rng.choice([64, 128, 256]),
                      "dropout": rng.uniform(0.0, 0.5), "optimizer": rng.choice(["adam", "sgd", "adamw"]),
                      "augment": rng.random() < 0.5}
            version = "s-" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
            run_id = ledger.start_run(script=SCRIPT, version=version, mode=Mode.RUN, host=host,
                                      params={"name": version, "epoc_count": STEPS, **params})["id"]
            noise = rng.gauss(0, 0.02)
            curve, stopped = [], None
            for step in range(STEPS):
                value = _loss(params, step, noise)
                curve.append(MetricRow("loss", value, step, "val"))
                if step in best_at:
                    seen = best_at[step]
                    seen.append(value)
                    if len(seen) > 3 and value > sorted(seen)[int(keep[step] * (len(seen) - 1))]:
                        stopped = (step, value)
                        break
            ledger.add_metrics(run_id, curve)
            if stopped:
                ledger.set_status(run_id, RunStatus.PRUNED,
                                  error=f"pruned by ASHA at step {stopped[0]}: val/loss={stopped[1]:.4g} is not among "
                                        f"the best {keep[stopped[0]]:.0%} of the {len(best_at[stopped[0]])} versions "
                                        f"that reached step {stopped[0]}")
                continue
            final = _loss(params, STEPS, noise) - 1.0 / (STEPS + 1)
            ledger.add_metrics(run_id, [MetricRow("loss", final, None, "test"),
                                        MetricRow("accuracy", 1 - final / 4, None, "test")])
            ledger.set_status(run_id, RunStatus.SUCCEEDED)
    finally:
        ledger.close()
    return root


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # warm: imports (optuna, scikit-learn), templates, the ledger's pages
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return round(statistics.median(samples) * 1000, 1)


def search_page(points: int = POINTS, repeat: int = 9) -> List[Result]:
    from mlpipeline.read.importance import importance
    from mlpipeline.read.search import search_detail
    from mlpipeline.store.reader import Reader

    root = tempfile.mkdtemp(prefix="mlp-bench-search-")
    proc: Optional[subprocess.Popen] = None
    try:
        began = time.perf_counter()
        build(root, points)
        built = time.perf_counter() - began
        reader = Reader(os.path.join(root, "models", "outputs", "mlpipeline.db"))
        detail = search_detail(reader, SCRIPT, "s")
        counts = detail["counts"]
        library_detail = _median_ms(lambda: search_detail(reader, SCRIPT, "s"), repeat)
        library_importance = _median_ms(lambda: importance(reader, SCRIPT, "test/loss", search="s"), repeat)
        ranked = importance(reader, SCRIPT, "test/loss", search="s")
        reader.close()
        proc = subprocess.Popen([*mlpipeline_cmd(), "serve", "--port", "0", "--token", TOKEN], cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        if "http://127.0.0.1:" not in line:
            raise RuntimeError(f"mlpipeline serve did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
        client = _Client(int(line.split("http://127.0.0.1:")[1].split("/")[0]))
        api = _median_ms(lambda: client.get(f"/api/searches/{SCRIPT}/s"), repeat)
        page = _median_ms(lambda: client.get(f"/searches/{SCRIPT}/s"), repeat)
        ranking = _median_ms(lambda: client.get(f"/api/importance?script={SCRIPT}&search=s&metric=test/loss"), repeat)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)
    order = ", ".join(f"{r['param']} {r['importance']:.2f}" for r in ranked["ranking"])
    shape = (f"{points} points ({counts.get('succeeded', 0)} succeeded, {counts.get('pruned', 0)} pruned at "
             f"{detail['rungs']['steps'] if detail['rungs'] else []}), {STEPS}-step curves; built in {built:.1f} s")
    target = f"<= {TARGET_MS:g} ms"
    return [
        Result(f"search page JSON, {points} points", api, library_detail, target, api <= TARGET_MS,
               note=f"GET /api/searches/...; baseline: search_detail in-process; {shape}"),
        Result(f"search page HTML, {points} points", page, library_detail, target, page <= TARGET_MS,
               note="GET /searches/... (the points in the page, drawn by the browser)"),
        Result(f"importance ranking, {points} points", ranking, library_importance, target, ranking <= TARGET_MS,
               note=f"GET /api/importance, {ranked['method']} over {ranked['runs']} runs: {order}"),
    ]


def main(argv: List[str]) -> int:
    results = search_page(int(argv[0]) if argv else POINTS)
    for r in results:
        base = f"(library {r.baseline} ms)" if r.baseline is not None else ""
        print(f"{r.measure:40} {r.median:8.1f} {r.unit} {base:24} {r.target:12} {'pass' if r.passed else 'FAIL'}")
        if r.note:
            print(f"    {r.note}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
