"""The Ray backend: 100 trivial versions as Ray tasks against the same batch on
the local backend, with and without Ray's own start; and the event-streaming
choice it rests on (a streaming-generator task vs polling an actor), measured
on its own.

The cluster for the runs "without start" is a plain ``ray.init`` held by a
helper process for the whole benchmark (it does not write
/tmp/ray/ray_current_cluster, so nothing joins it by accident). Token
authentication, on by default for a new local Ray (2.60 here), has to be asked
for by a driver given an address: those runs get ``RAY_AUTH_MODE=token``.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .common import Result, mlpipeline_cmd, reset_outputs, trivial_project, wall

VERSIONS = 100
SMALL = 20          # a second batch size: per-batch costs apart from per-version ones
JOBS = 2            # this project's machines have 2 cores: one version per core on both backends
ITEMS = 200         # small items per streaming measurement
PACE = 0.005        # seconds between produced items, so they never queue up behind each other

CLUSTER = """\
import json, logging, os, sys
import ray
ray.init(address="local", num_cpus=int(sys.argv[1]), include_dashboard=False, object_store_memory=200 << 20,
         log_to_driver=False, logging_level=logging.WARNING)
print(json.dumps({"address": ray.get_runtime_context().gcs_address,
                  "auth": os.environ.get("RAY_AUTH_MODE")}), flush=True)
sys.stdin.read()
ray.shutdown()
"""


class _Cluster:
    """A local Ray cluster that outlives the runs against it: a helper process
    holding ``ray.init``; closing its stdin shuts it down."""

    def __init__(self, cpus: int):
        self.proc = subprocess.Popen([sys.executable, "-c", CLUSTER, str(cpus)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError("the helper Ray cluster did not start")
        info = json.loads(line)
        self.address: str = info["address"]
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        if info["auth"]:  # Ray turns token auth on for a new local cluster; a driver given an address must opt in
            self.env["RAY_AUTH_MODE"] = info["auth"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ray_backend(versions: int = VERSIONS, small: int = SMALL, jobs: int = JOBS, runs: int = 5) -> List[Result]:
    """``mlpipeline -r --backend ray -j 2`` over 100 trivial versions against
    ``mlpipeline -r -j 2`` (local), interleaved: wall with Ray's own start, wall
    on a running cluster, the time a version adds; 20-version batches split that
    into a cost per batch and a cost per version. Then the streaming measurement."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return [Result("ray backend", 0, None, "needs ray", False, note="ray not installed")]
    roots = {versions: trivial_project(versions), small: trivial_project(small)}
    cluster = _Cluster(jobs)
    kinds: Dict[str, Tuple[int, List[str], Optional[Dict[str, str]]]] = {  # versions, arguments, environment
        "local": (versions, [], None),
        "ray": (versions, ["--backend", "ray"], None),  # a Ray of its own: address="local"
        "cluster": (versions, ["--backend", "ray", "--ray-address", cluster.address], cluster.env),
        "local_small": (small, [], None),
        "cluster_small": (small, ["--backend", "ray", "--ray-address", cluster.address], cluster.env),
    }
    samples: Dict[str, List[float]] = {kind: [] for kind in kinds}
    durations: Dict[str, List[float]] = {kind: [] for kind in kinds}

    def timed(kind: str) -> None:
        count, extra, env = kinds[kind]
        reset_outputs(roots[count])
        samples[kind].append(wall(mlpipeline_cmd() + ["-r", "-j", str(jobs), "-C", roots[count]] + extra, env=env))
        durations[kind].extend(_version_times(roots[count]))

    try:
        for kind in ("cluster", "cluster_small"):  # warm-up: the page cache, the cluster's first workers
            timed(kind)
            samples[kind].clear()
            durations[kind].clear()
        for _ in range(runs):
            for kind in kinds:
                timed(kind)
        stream = _streaming(cluster.address, cluster.env)
    finally:
        cluster.close()
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
    wall_s = {kind: statistics.median(v) for kind, v in samples.items()}
    each_ms = {kind: statistics.median(v) * 1000 for kind, v in durations.items()}
    raw_ms = (wall_s["cluster"] - wall_s["local"]) / versions * 1000
    slope = {kind: (wall_s[kind] - wall_s[kind + "_small"]) / (versions - small) for kind in ("local", "cluster")}
    fixed = {kind: wall_s[kind] - versions * slope[kind] for kind in ("local", "cluster")}
    slope_ms = (slope["cluster"] - slope["local"]) * 1000
    added_ms = each_ms["cluster"] - each_ms["local"]
    spread = "; ".join(f"{kind} " + "/".join(f"{s:.2f}" for s in v) for kind, v in samples.items())
    gen_ms, actor_rtt_ms, actor_ms = stream["generator_ms"], stream["actor_call_ms"], stream["actor_polled_ms"]
    return [
        Result(f"ray backend, {versions} trivial versions -j {jobs}, wall incl. Ray start", round(wall_s["ray"], 2),
               round(wall_s["local"], 2), "<= 8 s", wall_s["ray"] <= 8, unit="s",
               note=f"{runs} interleaved runs each (s): {spread}; baseline = the local backend, -j {jobs}"),
        Result(f"ray backend, {versions} versions -j {jobs}, on a running cluster", round(wall_s["cluster"], 2),
               round(wall_s["local"], 2), "reported", True, unit="s",
               note=f"Ray's own start and stop, as the runner waits for them: {wall_s['ray'] - wall_s['cluster']:.2f} s; "
                    f"fitted from the {small}- and {versions}-version batches, a batch costs ray "
                    f"{fixed['cluster']:.2f} s + {slope['cluster'] * 1000:.1f} ms a version, local "
                    f"{fixed['local']:.2f} s + {slope['local'] * 1000:.1f} ms a version"),
        Result("ray backend, median added per version over local (its own start -> end)", round(added_ms, 1),
               round(each_ms["local"], 1), "<= 20 ms", added_ms <= 20,
               note=f"median of each version's start -> end as the ledger recorded it: ray {each_ms['cluster']:.1f} ms, "
                    f"local {each_ms['local']:.1f} ms ({len(durations['cluster'])} and {len(durations['local'])} "
                    f"versions); the batch's fixed costs are in the wall figures above"),
        Result(f"ray backend, batch wall added per version over local (x{jobs} at -j {jobs})", round(raw_ms * jobs, 1),
               round(wall_s["local"] / versions * jobs * 1000, 1), "reported", True,
               note=f"(running-cluster wall - local wall) / {versions} = {raw_ms:.1f} ms of batch wall a version; "
                    f"x{jobs} because {jobs} versions run at once; it charges the batch's fixed costs "
                    f"({fixed['cluster'] - fixed['local']:+.2f} s: import ray, connect, the first workers, disconnect) "
                    f"to the versions; without them (the fitted slopes' difference) {slope_ms * jobs:.1f} ms"),
        Result(f"event streaming: generator yield -> runner, one small item ({ITEMS})", round(gen_ms, 2),
               round(actor_rtt_ms, 2), "reported", True,
               note=f"baseline = one actor method call returning an item (round trip); polling that actor back to "
                    f"back delivers an item {actor_ms:.2f} ms after it is made, with {stream['actor_calls']:.0f} "
                    f"calls for {ITEMS} items (a runner polling every 0.1 s would add ~50 ms); an actor per version "
                    f"costs a worker process of its own: {stream['actor_start_ms']:.0f} ms to create one and get its "
                    f"first reply, against {stream['task_ms']:.1f} ms to run a task on a warm worker"),
    ]


def _version_times(root: str) -> List[float]:
    """Each version's start -> end (seconds) as the ledger recorded it."""
    conn = sqlite3.connect(os.path.join(root, "models", "outputs", "mlpipeline.db"))
    try:
        rows = conn.execute("SELECT ended_at - started_at FROM runs WHERE mode = 'run' AND status = 'succeeded'"
                            ).fetchall()
    finally:
        conn.close()
    if not rows:
        raise RuntimeError(f"{root}: the batch recorded no succeeded run")
    return [row[0] for row in rows]


def _streaming(address: str, env: Dict[str, str]) -> Dict[str, float]:
    """The streaming micro-measurement, in a driver of its own (this process stays free of Ray)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "bench.ray_backend", address], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"streaming measurement failed: {out.stderr[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure_streaming(address: str) -> Dict[str, float]:
    """Latency of one small item from a Ray worker to this driver: (a) yielded by
    a streaming-generator task and read as RayExecutor reads it (``ray.wait``,
    ``next``, ``ray.get``); (b) returned by an actor method call, one call per
    item, and polled back to back from an actor producing at the same pace."""
    import logging
    import threading
    from collections import deque

    import ray

    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)

    @ray.remote(num_cpus=0, max_retries=0)
    def produce(count: int, pace: float) -> Iterator[float]:
        for _ in range(count):
            time.sleep(pace)
            yield time.perf_counter()  # CLOCK_MONOTONIC: one clock for every process on the machine

    @ray.remote(num_cpus=0)
    def noop() -> None:
        return None

    @ray.remote(num_cpus=0)
    class Producer:
        def __init__(self) -> None:
            self.items: deque = deque()

        def start(self, count: int, pace: float) -> None:
            def run() -> None:
                for _ in range(count):
                    time.sleep(pace)
                    self.items.append(time.perf_counter())
            threading.Thread(target=run, daemon=True).start()

        def take(self) -> List[float]:
            taken = []
            while self.items:
                taken.append(self.items.popleft())
            return taken

        def item(self) -> float:
            return time.perf_counter()

    def drain_generator(count: int) -> List[float]:
        gen: Any = produce.remote(count, PACE)
        latencies: List[float] = []
        while True:
            ready, _ = ray.wait([gen], num_returns=1, timeout=0.1)
            if not ready:
                continue
            try:
                sent = ray.get(next(gen))
            except StopIteration:
                return latencies
            latencies.append(time.perf_counter() - sent)

    def start_actor() -> Tuple[Any, float]:
        began = time.perf_counter()
        actor = Producer.remote()  # type: ignore[attr-defined]
        ray.get(actor.item.remote())
        return actor, time.perf_counter() - began

    ray.get(noop.remote())  # warm a worker for the tasks
    drain_generator(10)
    task_s = statistics.median(_timings(lambda: ray.get(noop.remote()), 50))
    gen_s = statistics.median(drain_generator(ITEMS))
    starts = []
    for _ in range(3):
        actor, start_s = start_actor()
        starts.append(start_s)
        ray.kill(actor)
    actor, _ = start_actor()
    call_s = statistics.median(_timings(lambda: ray.get(actor.item.remote()), ITEMS))
    ray.get(actor.start.remote(ITEMS, PACE))
    polled: List[float] = []
    calls = 0
    while len(polled) < ITEMS:
        made = ray.get(actor.take.remote())
        now = time.perf_counter()
        calls += 1
        polled.extend(now - t for t in made)
    ray.shutdown()
    return {"generator_ms": gen_s * 1000, "actor_call_ms": call_s * 1000,
            "actor_polled_ms": statistics.median(polled) * 1000, "actor_calls": calls,
            "actor_start_ms": statistics.median(starts) * 1000, "task_ms": task_s * 1000}


def _timings(call: Callable[[], Any], count: int) -> List[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times


if __name__ == "__main__":  # python -m bench.ray_backend ADDRESS: the streaming measurement, as JSON
    print(json.dumps(_measure_streaming(sys.argv[1])))
