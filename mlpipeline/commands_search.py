"""The commands that read many runs as one answer: ``importance`` (which parameters matter for a
metric) and ``compare`` with the versions that differ only in a seed as mean ± std. Each parses,
calls one library function (``read.importance``, ``read.seeds``), renders; errors become exit
codes in ``cli.main``."""
from __future__ import annotations

import argparse

from .commands import EXIT_OK, _need_ledger, _open_ledger, _say
from .core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

IMPORTANCE_COLUMNS = ("rank", "param", "importance", "kind")


def add_commands(command: Any) -> argparse.ArgumentParser:
    """The ``importance`` subcommand, on ``command`` (cli's maker of subparsers); returned for the
    shared --format and --wide options."""
    importance = command("importance", "rank a script's parameters by how much of a metric's variance each "
                                       "explains, over its succeeded runs (fANOVA through Optuna, else binned "
                                       "variance)")
    importance.add_argument("script", metavar="SCRIPT", help="the script, as a path or a file name (a.py or a)")
    importance.add_argument("metric", metavar="METRIC", help="the metric, e.g. accuracy or test/accuracy")
    importance.add_argument("--search", metavar="NAME", help="only the points of this search (default: every "
                                                             "version of the script)")
    importance.add_argument("--method", choices=("auto", "fanova", "binned"), default="auto",
                            help="fanova (needs optuna and scikit-learn), binned (no optional package), or auto: "
                                 "fanova where it works (default)")
    return importance


def cmd_importance(args: argparse.Namespace) -> int:
    from .read.importance import importance
    from .read.render import render

    if not args.metric.strip():
        raise UsageError("importance: METRIC is empty; name one, e.g. accuracy or test/accuracy")
    _, ledger = _open_ledger(args)
    found = importance(_need_ledger(ledger, f"importance {args.script}"), args.script, args.metric,
                       search=args.search, method=args.method)
    if args.format == "json":
        print(_json(found))
        return EXIT_OK
    rows = [{"rank": i, **r} for i, r in enumerate(found["ranking"], 1)]
    if args.format == "table":
        method = "fANOVA (Optuna)" if found["method"] == "fanova" else "binned variance (epsilon squared)"
        where = found["script"] + ("" if found["search"] == "all" else f", search {found['search']}")
        _say(f"{found['metric']} over {found['runs']} succeeded runs of {where}: {method}")
        if found["note"]:
            _say(found["note"])
    print(render(rows, IMPORTANCE_COLUMNS, args.format))
    return EXIT_OK


def _json(data: Dict[str, Any]) -> str:
    from .read.render import render_record

    return render_record(data, "json")


def cmd_compare(args: argparse.Namespace) -> int:
    from .read.render import render
    from .read.seeds import compare_by_seed

    _, ledger = _open_ledger(args)
    columns, rows = compare_by_seed(_need_ledger(ledger, f"compare {args.script}"), args.script, metric=args.metric,
                                    sort=args.sort, descending=args.desc, seed_param=args.seed_param)
    if args.format == "table":
        columns, rows = _joined(columns, rows)
    print(render(rows, columns, args.format))
    return EXIT_OK


def _joined(columns: List[str], rows: List[Dict[str, Any]]) -> Any:
    """For a table: each metric's mean and its ``<metric> std`` in one cell, ``0.9123 ± 0.0041``."""
    stds = [c for c in columns if c.endswith(" std") and c[:-4] in columns]
    if not stds:
        return columns, rows
    joined = []
    for row in rows:
        row = dict(row)
        for std in stds:
            mean, spread = row.get(std[:-4]), row.pop(std, None)
            if isinstance(mean, float):
                row[std[:-4]] = f"{mean:.4g}" + (f" ± {spread:.2g}" if isinstance(spread, float) else "")
        joined.append(row)
    return [c for c in columns if c not in stds], joined
