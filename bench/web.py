"""The dashboard over a big ledger (100 000 runs, 1 000 000 metric rows): the
runs API and page, a run page with a 100 000-point curve, and how soon a ledger
edit reaches an event-stream client — against the same query made by the CLI
and by the library in the same run."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable, List, Optional

from .big_ledger import cached
from .common import Result, mlpipeline_cmd, wall

TOKEN = "bench-token-0123456789abcdef"
REPEAT = 20


def _project(ledger: str) -> str:
    root = tempfile.mkdtemp(prefix="mlp-bench-web-")
    os.makedirs(os.path.join(root, "models", "outputs"))
    with open(os.path.join(root, "mlp.config"), "w") as handle:
        handle.write("[MLP]\nmodels_dir = models\n")
    shutil.copy(ledger, os.path.join(root, "models", "outputs", "mlpipeline.db"))
    return root


class _Client:
    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Host": f"127.0.0.1:{port}"}

    def get(self, path: str) -> float:
        """Seconds from sending the request to having read the whole answer."""
        began = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return elapsed


def _median_ms(call: Callable[[], float], repeat: int = REPEAT) -> float:
    call()  # warm: the first request opens the ledger and compiles templates
    return round(statistics.median(call() for _ in range(repeat)) * 1000, 1)


def _library_ms(call: Callable[[], object], repeat: int = REPEAT) -> float:
    def timed() -> float:
        began = time.perf_counter()
        call()
        return time.perf_counter() - began
    return _median_ms(timed, repeat)


def _sse_latency(port: int, db: str, repeat: int = REPEAT) -> List[float]:
    """Seconds from a committed ledger write (a new run) to its event at a client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {TOKEN}", "Host": f"127.0.0.1:{port}"})
    response = conn.getresponse()
    arrived: dict = {}
    ready = threading.Event()

    def read() -> None:
        event = None
        while True:
            try:
                line = response.fp.readline()
            except (AttributeError, OSError, ValueError):  # closed when the measurement ends
                return
            if not line:
                return
            text = line.decode()
            if text.startswith("event:"):
                event = text.split(":", 1)[1].strip()
            elif text.startswith("data:"):
                if event == "hello":
                    ready.set()
                elif event == "runs":
                    for run in json.loads(text[5:])["runs"]:
                        arrived.setdefault(run["id"], time.perf_counter())
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready.wait(10)
    time.sleep(1.5)  # the watcher's first look records where the ledger stands
    writer = sqlite3.connect(db, timeout=30, isolation_level=None)
    latencies = []
    try:
        for _ in range(repeat):
            began = time.perf_counter()
            cursor = writer.execute(
                "INSERT INTO runs (uid, script, version, params, mode, status, host, started_at) "
                "VALUES (?, 'models/bench.py', 'v', '{}', 'run', 'succeeded', 'bench', ?)",
                (uuid.uuid4().hex, time.time()))
            run_id = cursor.lastrowid
            deadline = began + 5
            while run_id not in arrived and time.perf_counter() < deadline:
                time.sleep(0.002)
            latencies.append(arrived.get(run_id, deadline) - began)
            time.sleep(0.3)
    finally:
        writer.close()
        conn.close()
    return latencies


def dashboard() -> List[Result]:
    from mlpipeline.read import queries
    from mlpipeline.store.reader import Reader

    ledger = cached(os.path.join(tempfile.gettempdir(), "mlpipeline-bench-cache"))
    root = _project(ledger)
    db = os.path.join(root, "models", "outputs", "mlpipeline.db")
    proc = subprocess.Popen([*mlpipeline_cmd(), "serve", "--port", "0", "--token", TOKEN], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "http://127.0.0.1:" not in line:
            raise RuntimeError(f"mlpipeline serve did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        client = _Client(port)
        reader = Reader(db)
        big = reader.conn.execute("SELECT run_id, count FROM metric_summary WHERE name = 'loss' ORDER BY count DESC "
                                  "LIMIT 1").fetchone()
        big_run, big_points = big[0], big[1]
        library_runs = _library_ms(lambda: (queries.list_runs(reader, limit=50), queries.count_runs(reader)))
        library_curve = _library_ms(lambda: queries.metric_curves(reader, big_run))
        reader.close()
        api_runs = _median_ms(lambda: client.get("/api/runs?limit=50"))
        page_runs = _median_ms(lambda: client.get("/"))
        api_filtered = _median_ms(lambda: client.get("/api/runs?limit=50&status=failed&q=adamw"))
        api_sorted = _median_ms(lambda: client.get("/api/runs?limit=50&sort=test/accuracy"))
        run_page = _median_ms(lambda: client.get(f"/runs/{big_run}") + client.get(f"/api/runs/{big_run}/metrics"))
        cli_runs = round(statistics.median(wall([*mlpipeline_cmd(), "runs", "--limit", "50"], cwd=root)
                                           for _ in range(5)) * 1000, 1)
        latencies = _sse_latency(port, db)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
    sse = round(statistics.median(latencies) * 1000, 1)
    note = f"the CLI's `mlpipeline runs --limit 50` (a whole process) took {cli_runs} ms"
    return [
        Result("web: GET /api/runs?limit=50 (100k runs)", api_runs, library_runs, "<= 150 ms", api_runs <= 150,
               note=f"baseline: list_runs + count_runs in-process; {note}"),
        Result("web: GET / (runs page, 100k runs)", page_runs, library_runs, "<= 150 ms", page_runs <= 150),
        Result("web: GET /api/runs status+text filter", api_filtered, None, "<= 150 ms", api_filtered <= 150),
        Result("web: GET /api/runs sorted by test/accuracy", api_sorted, None, "<= 150 ms", api_sorted <= 150),
        Result(f"web: run page + its {big_points}-point curve", run_page, library_curve, "<= 300 ms",
               run_page <= 300, note="page HTML plus /api/runs/ID/metrics (decimated to 2 000 points per curve); "
                                     "baseline: metric_curves in-process"),
        Result("web: ledger write -> SSE client (median of 20)", sse, None, "<= 1000 ms", sse <= 1000,
               note=f"max {max(latencies) * 1000:.0f} ms"),
    ]


def main(argv: Optional[List[str]] = None) -> int:
    results = dashboard()
    for r in results:
        base = f"(baseline {r.baseline} ms, x{r.ratio:.2f})" if r.ratio else ""
        print(f"{r.measure:52} {r.median:8.1f} {r.unit} {base:28} {r.target:12} {'pass' if r.passed else 'FAIL'}")
        if r.note:
            print(f"    {r.note}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


