"""Run every benchmark, print a table, write bench/results.json."""
from __future__ import annotations

import compileall
import json
import os
import sys

from . import batches, big_ledger, daemon, keras_testmode, ledger_queries, metrics_load, ray_backend, startup, web
from . import plain_scripts, sampling, search_page, searches, slurm_backend, trivial_versions, warm_imports

BENCHMARKS = [startup.help_cold_start, startup.execution_overhead, startup.inprocess_overhead,
              startup.inprocess_scaling,
              keras_testmode.keras_test_mode, startup.runner_peak_memory,
              ledger_queries.query_speed, daemon.config_edit_to_status, daemon.parallel_speedup,
              metrics_load.metric_logging, metrics_load.show_large_run, batches.many_scripts, batches.first_run,
              metrics_load.wal_bound, big_ledger.web_queries, web.dashboard]
BENCHMARKS.append(ray_backend.ray_backend)
BENCHMARKS.append(trivial_versions.trivial_versions)
BENCHMARKS.append(searches.searches)
BENCHMARKS.append(search_page.search_page)
BENCHMARKS += [warm_imports.torch_versions, warm_imports.optuna_tpe]
BENCHMARKS += [plain_scripts.plain_overhead, plain_scripts.plain_metric_logging]
BENCHMARKS.append(sampling.sampling_cost)
BENCHMARKS.append(slurm_backend.slurm_backend)


def main() -> int:
    # as an installed package is: byte-compiled (a PYTHONDONTWRITEBYTECODE shell would time the compiler)
    compileall.compile_dir(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mlpipeline"),
                           quiet=1)
    selected = [b for b in BENCHMARKS if not sys.argv[1:] or b.__name__ in sys.argv[1:]]
    results = []
    for bench in selected:
        print(f"running {bench.__name__} ...", file=sys.stderr, flush=True)
        outcome = bench()
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    rows = [r.row() for r in results]
    header = f"{'measure':58} {'median':>9} {'baseline':>9} {'ratio':>6}  {'target':30} result"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        base = f"{r.baseline:>7} {r.unit}" if r.baseline is not None else " " * 10
        print(f"{r.measure:58} {r.median:>7} {r.unit} {base} {ratio:>6}  "
              f"{r.target:30} {'pass' if r.passed else 'FAIL'}")
        if r.note:
            print(f"    {r.note}")
    path = os.path.join(os.path.dirname(__file__), "results.json")
    with open(path, "w") as handle:
        json.dump(rows, handle, indent=2)
    print(f"written {path}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
