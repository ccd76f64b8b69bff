"""Searches (issue 13): a 200-point random search of trivial versions driven by
``Versions.add_search``, against the same 200 versions written by hand.

- total wall of the 200-point search and of the hand-written batch (fresh ledgers), interleaved;
- proposal overhead per version with 1 000 finished versions of the search already in the ledger:
  with ``-j 1`` and ``parallel=1`` each version starts after the one before it ended, so the gap
  between one run's end and the next one's start (ledger timestamps) holds the runner's own work
  per version; the search's gaps hold the proposal too. The overhead is the median search gap
  less the median hand-written gap, both measured over ledgers that hold the same 1 000 runs.

The 1 000 earlier runs are written through ``Ledger`` (the runner's own writer) rather than run,
which would take minutes; they are real rows of a real SQLite ledger the runner reads at start.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
from typing import List, Tuple

from .common import TRIVIAL_HEADER, Result, interleaved, mlpipeline_cmd, script_project, wall

POINTS = 200
EARLIER = 1000
RUNS = 3

HEADER = "import random\n" + TRIVIAL_HEADER  # trivial versions: train nothing, evaluate x = 1.0

SEARCH = HEADER + '''
def propose(history):
    best = min((h["metrics"].get("test/x", 1e9) for h in history), default=None)  # reads the history
    return {"x": random.random(), "best": best}

versions.add_search(propose, budget=__BUDGET__)
MODEL = M(versions)
'''


def _project(script: str) -> str:
    return script_project(script, "search.py", tempfile.mkdtemp(prefix="mlp-bench-search-"))


def _by_hand(points: List[dict]) -> str:
    lines = [f"versions.add_version({json.dumps(name)}, x={point['x']!r}, best={point['best']!r})"
             for name, point in points]
    return HEADER + "\n".join(lines) + "\nMODEL = M(versions)\n"


def _ledger(root: str) -> str:
    return os.path.join(root, "models", "outputs", "mlpipeline.db")


def _points(root: str) -> List[Tuple[str, dict]]:
    with sqlite3.connect(_ledger(root)) as conn:
        rows = conn.execute("SELECT version, params FROM runs WHERE status = 'succeeded' ORDER BY id").fetchall()
    return [(name, {k: v for k, v in json.loads(params).items() if k in ("x", "best")}) for name, params in rows]


def _gaps(root: str, skip: int) -> List[float]:
    """Seconds between each run's end and the next run's start, past the first ``skip`` runs."""
    with sqlite3.connect(_ledger(root)) as conn:
        rows = conn.execute("SELECT started_at, ended_at FROM runs ORDER BY id").fetchall()[skip:]
    return [b[0] - a[1] for a, b in zip(rows, rows[1:])]


def _seed_ledger(root: str, count: int) -> None:
    """``count`` finished runs of the search, as the runner would have recorded them."""
    from mlpipeline.store.ledger import Ledger
    from mlpipeline.core.lifecycle import MetricRow, Mode, RunStatus
    from mlpipeline.script.loading import load_script
    from mlpipeline.sweeps import point_hash
    from mlpipeline.script.versions import params_digest, version_params

    path = os.path.join(root, "models", "search.py")
    _, model, info = load_script(path)
    os.makedirs(os.path.dirname(_ledger(root)), exist_ok=True)
    ledger = Ledger(_ledger(root))
    rng = random.Random(0)
    for _ in range(count):
        point = {"x": rng.random(), "best": None}
        name = f"s-{point_hash(point)}"
        params = version_params(model.versions.search_version(name, point))
        run = ledger.start_run(script="models/search.py", version=name, mode=Mode.RUN, host="bench", params=params,
                               script_sha256=info.sha256, fingerprint=info.fingerprint,
                               params_sha256=params_digest(params))
        ledger.add_metrics(run["id"], [MetricRow("x", rng.random(), None, "test")])
        ledger.set_status(run["id"], RunStatus.SUCCEEDED)
    ledger.close()


def searches() -> List[Result]:
    cli = mlpipeline_cmd()
    search_root = _project(SEARCH.replace("__BUDGET__", str(POINTS)))
    wall(cli + ["-r", "-n"], cwd=search_root)  # the points, for the hand-written twin
    hand_root = _project(_by_hand(_points(search_root)))

    def fresh(root: str) -> float:
        shutil.rmtree(os.path.join(root, "models", "outputs"), ignore_errors=True)
        return wall(cli + ["-r", "-n"], cwd=root)

    search_wall, hand_wall = interleaved(RUNS, lambda: fresh(search_root), lambda: fresh(hand_root))

    # with 1 000 finished versions of the search in both ledgers
    late_root = _project(SEARCH.replace("__BUDGET__", str(EARLIER + POINTS)))
    _seed_ledger(late_root, EARLIER)
    seeded = os.path.join(tempfile.mkdtemp(prefix="mlp-bench-seed-"), "seed.db")
    shutil.copy(_ledger(late_root), seeded)
    late_hand = _project(_by_hand(_points(search_root)))

    def with_history(root: str, flags: List[str]) -> float:
        shutil.rmtree(os.path.join(root, "models", "outputs"), ignore_errors=True)
        os.makedirs(os.path.dirname(_ledger(root)))
        shutil.copy(seeded, _ledger(root))
        return wall(cli + ["-r", "-n"] + flags, cwd=root)

    search_gaps: List[float] = []
    hand_gaps: List[float] = []
    late_walls: List[float] = []
    for _ in range(RUNS):
        late_walls.append(with_history(late_root, ["-u"]))
        search_gaps += _gaps(late_root, EARLIER)
        with_history(late_hand, [])
        hand_gaps += _gaps(late_hand, EARLIER)
    overhead = (statistics.median(search_gaps) - statistics.median(hand_gaps)) * 1000
    note = (f"gap end->next start: search {statistics.median(search_gaps) * 1000:.1f} ms, by hand "
            f"{statistics.median(hand_gaps) * 1000:.1f} ms (medians over {len(search_gaps)} and {len(hand_gaps)} "
            f"gaps); {POINTS} more points after {EARLIER}: {statistics.median(late_walls):.2f} s wall")
    for root in (search_root, hand_root, late_root, late_hand, os.path.dirname(seeded)):
        shutil.rmtree(root, ignore_errors=True)
    return [
        Result(f"{POINTS}-point random search (add_search), wall", round(search_wall, 2), round(hand_wall, 2),
               "reported against the same versions by hand", True, unit="s"),
        Result(f"proposal overhead per version, {EARLIER} finished in the ledger", round(overhead, 2), None,
               "<= 5 ms median", overhead <= 5.0, note=note),
    ]
