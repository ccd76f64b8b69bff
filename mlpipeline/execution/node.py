"""What runs on a cluster node for one version: the very same child process
the local executor starts (``ChildRun``), in its own process group, its output
and events streamed back to the runner as they come.

``run_version`` is a generator: under Ray it is a streaming-generator task, so
each yielded batch reaches the runner while the version still runs. Nothing
here imports ray at module level; the node's GPU ids and identity are read
from Ray only inside the task.
"""
from __future__ import annotations

import io
import os
import selectors
import socket
import tarfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..core.lifecycle import RunStatus
from ..proc.system import MARK_RUN, MARK_VERSION, kill_marked

BATCH_EVERY = 0.05        # seconds: how long output and events are gathered before they are sent
BATCH_BYTES = 1 << 20     # or this much output, whichever comes first
SYNC_LIMIT = 2 << 30      # a model dir synced back through the object store: at most this many bytes


def whereabouts() -> Dict[str, Any]:
    """This node as the ledger records it: its hostname and Ray's node id."""
    import ray

    return {"host": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id()}


def gpu_env() -> Dict[str, str]:
    """CUDA_VISIBLE_DEVICES from the GPUs Ray assigned this task (fractions share one)."""
    import ray

    ids = ray.get_gpu_ids()
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in ids)} if ids else {}


def ray_place() -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Where a Ray task runs (``whereabouts``) and the GPU environment Ray gave it."""
    return whereabouts(), gpu_env()


def run_version(payload: Dict[str, Any], env: Dict[str, str], cwd: Optional[str],
                shared_marker: Optional[str] = None,
                place: Callable[[], Tuple[Dict[str, Any], Dict[str, str]]] = ray_place,
                fork: bool = True) -> Iterator[Dict[str, Any]]:
    """Run one version's child here; yield ``{"placed"}``, then batches of
    ``{"out": bytes, "events": [...]}``, then ``{"done": ...}`` with the last of
    them. If the task is cancelled (or the generator closed), the child's whole
    group is killed first. ``place``: this node as the ledger records it, and the GPU
    environment its scheduler gave the version (Ray's by default; a Slurm job's in ``slurmjob``). ``fork``:
    fork the child from this worker's fork server (a Ray worker runs many versions; a Slurm job one, so
    it spawns)."""
    from .childrun import ChildRun

    if env.get(MARK_VERSION):  # an earlier run of this version whose node was lost, not its machine: end what it left
        kill_marked(MARK_VERSION, env[MARK_VERSION])
    events: List[Dict[str, Any]] = []
    output = bytearray()
    where, gpus = place()
    env = {**env, **gpus}
    server = _fork_server(cwd) if fork else None
    run = ChildRun("run", payload, events.append, output.extend, cwd, env, server=server,
                   title=f"mlpipeline version {payload['spec']['script']} {payload['spec']['version']}")
    if server is not None and not server.alive:  # it failed on this version, which was spawned instead
        _servers[os.path.abspath(cwd or os.getcwd())] = None
    try:
        yield {"placed": {"gpu": env.get("CUDA_VISIBLE_DEVICES"), **where, "pid": run.proc.pid}}
        sent_at = time.monotonic()
        with selectors.DefaultSelector() as selector:
            while run.returncode is None:
                selector_fds = run.fds()
                for fd in list(selector.get_map()):
                    if fd not in selector_fds:
                        selector.unregister(fd)
                for fd in selector_fds:
                    if fd not in selector.get_map():
                        selector.register(fd, selectors.EVENT_READ)
                if selector.get_map():
                    for key, _ in selector.select(BATCH_EVERY):
                        run.on_ready(key.fd)
                else:
                    time.sleep(0.01)
                run.check(time.monotonic())
                if (output or events) and (time.monotonic() - sent_at >= BATCH_EVERY or len(output) >= BATCH_BYTES):
                    yield {"out": bytes(output), "events": list(events)}
                    output.clear()
                    events.clear()
                    sent_at = time.monotonic()
        _end(run, env)
        # the last output and events travel with the outcome: one item, and one wake-up of the runner, fewer a version
        done: Dict[str, Any] = {"out": bytes(output), "events": list(events), "done": run.outcome()}
        if shared_marker is not None and not os.path.exists(shared_marker):
            done["sync"] = _pack(payload.get("model_dir"), payload.get("run_dir"))
            if done["sync"] is None:
                done["sync_skipped"] = (f"its model dir on {socket.gethostname()} ({payload.get('model_dir')}) is over "
                                        f"{SYNC_LIMIT >> 30} GiB and was not copied back; it stays on that node "
                                        f"(put outputs on shared storage)")
        yield done
    finally:
        if run.returncode is None:  # cancelled, timed out or the runner went away: nothing may outlive it
            run.kill(RunStatus.CANCELLED, "cancelled")
            _end(run, env)
            try:
                run.proc.wait(5)
            except Exception:  # noqa: BLE001 - SIGKILLed already; the pid is reaped with the worker
                pass


_servers: Dict[str, Any] = {}  # project folder -> this Ray worker's fork server (None: it failed; spawn)


def _fork_server(cwd: Optional[str]) -> Any:
    """This worker's fork server for the project (Ray reuses a worker for many
    versions: each is forked from it as on the local backend), or None to spawn."""
    from .forkserver import ForkServer, enabled

    if not enabled():
        return None
    key = os.path.abspath(cwd or os.getcwd())
    known = _servers.get(key)
    if known is not None and known.alive and known.stale() is not None:  # a package was installed since
        known.close()  # a Ray worker runs one task at a time: the version it forked is done
        del _servers[key]
    if key not in _servers:
        try:
            _servers[key] = ForkServer(key)
        except OSError:
            _servers[key] = None
    server = _servers[key]
    return server if server is not None and server.alive else None


def _end(run: Any, env: Dict[str, str]) -> None:
    run.end_group()
    mark = env.get(MARK_RUN)
    if mark:
        kill_marked(MARK_RUN, mark)


def _pack(model_dir: Optional[str], run_dir: Optional[str]) -> Optional[bytes]:
    """The version's model dir and run dir as a tar (for a runner that does not
    share this node's filesystem), or None when they are too big to send."""
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for kind, folder in (("model_dir", model_dir), ("run_dir", run_dir)):
            if not folder or not os.path.isdir(folder):
                continue
            for root, _, files in os.walk(folder):
                for name in files:
                    path = os.path.join(root, name)
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    total += os.path.getsize(path)
                    if total > SYNC_LIMIT:
                        return None
                    archive.add(path, arcname=os.path.join(kind, os.path.relpath(path, folder)))
    return buffer.getvalue()


def unpack(data: bytes, model_dir: Optional[str], run_dir: Optional[str]) -> None:
    """Write what ``_pack`` sent into the runner's own model dir and run dir."""
    targets = {"model_dir": model_dir, "run_dir": run_dir}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            kind, _, rel = member.name.partition("/")
            base = targets.get(kind)
            if not base or not member.isfile() or rel.startswith("/") or ".." in rel.split("/"):
                continue
            target = os.path.join(base, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                continue
            with source, open(target, "wb") as handle:
                handle.write(source.read())


def sweep(kind: str, mark: str) -> Dict[str, Any]:
    """End every process on this node carrying ``kind=mark`` (a dead runner's versions)."""
    kill_marked(kind, mark, wait=1.0)
    return whereabouts()


def describe(path: str, cwd: str, timeout: float) -> Dict[str, Any]:
    """Describe a script here (in a child of this node, as the runner would)."""
    from ..plan.describe import Describer

    with Describer(cwd, lambda key: None, lambda key, entry: None, timeout=timeout) as describer:
        return describer.describe_now(path).to_entry()

