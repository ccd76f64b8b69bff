"""Versions as Ray tasks: the same queue, ledger and child process, with Ray
placing each version on whichever node has the resources it asks for.

Each version is one streaming-generator task (``node.run_version``) that starts
the version's child on its node and yields its output and events as they come;
the runner writes the ledger exactly as for local runs. Ray's own retries are
off: a version whose node died ends ``interrupted`` with ``node_lost`` set, and
the runner decides whether to run it again. Only this module imports ray, and
only when the Ray backend is chosen.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..core.timings import timings
from ..core.errors import MLPipelineError, UsageError
from ..core.lifecycle import Job, Outcome, RunStatus, Sink, VersionSpec
from ..core.resources import KEY as RESOURCES_KEY, ResourceError, Wait, resources_of
from ..proc.system import MARK_PROJECT, MARK_RUN
from . import node
from ..core.lifecycle import Ended
from ..proc.protocol import deliver
from ..proc.system import project_mark
from .childrun import child_env, open_output

log = logging.getLogger(__name__)
RESIZE_EVERY = 5.0     # seconds between looks at what the cluster holds (and whether its GCS answers)
PROBE_TIMEOUT = 3.0    # seconds an address given with --ray-address has to answer before Ray's minutes of retries
GCS_TIMEOUT = 2.0      # seconds one look at the cluster's nodes may take
GCS_LOST_AFTER = 15.0  # a GCS silent this long is gone (Ray itself ends a driver whose GCS is silent for 60 s)
SHARED_MARKER = ".mlpipeline-shared"


def parse_resources(text: Optional[str]) -> Dict[str, float]:
    """``--resources '{"a100": 1}'``: custom Ray resources each version asks for."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--resources {text!r}: not JSON ({exc.msg}); write e.g. '{{\"a100\": 1}}'") from None
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in value.values()):
        raise UsageError(f"--resources {text!r}: give an object of resource names and positive amounts, "
                         f"e.g. '{{\"a100\": 1}}'")
    return {str(k): float(v) for k, v in value.items()}


class ClusterLost(MLPipelineError):
    """The cluster's GCS (its head node) stopped answering while the runner used it."""


def check_address(address: str) -> None:
    """Fail in seconds where ``ray.init`` retries for about 13 minutes: nothing
    listens at ``address``, or what listens there is no Ray GCS (e.g. the
    dashboard's port)."""
    if "://" in address or address == "local":  # ray:// (Ray Client) connects its own way
        return
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # another Ray: let ray.init find out
        return
    try:
        where = canonicalize_bootstrap_address(address)
    except ValueError as exc:
        raise UsageError(f"--ray-address {address}: {exc}; write auto or HOST:PORT (the head node's GCS port, "
                         f"6379 unless ray start --port said otherwise)") from None
    except ConnectionError:  # auto, and no cluster to find: ray.init says so at once
        return
    if where is None:
        return
    host, _, port = where.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT).close()
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(f"--ray-address {address}: nothing answers at {where} ({why}); start the cluster with "
                         f"ray start --head, or leave --ray-address out for a local Ray") from None
    try:
        from ray._raylet import InnerGcsClient  # type: ignore[attr-defined]  # (compiled; no stub)

        with _quiet_fd(2):  # Ray's C++ client logs each failed try straight to stderr
            InnerGcsClient.standalone(where, None, int(PROBE_TIMEOUT * 1000))
    except ImportError:
        return
    except Exception as exc:  # noqa: BLE001 - only silence is ours to judge; ray.init explains the rest
        if "Timed out" in str(exc):
            raise UsageError(f"--ray-address {address}: {where} answers, but not as a Ray cluster (the dashboard's "
                             f"port?); give the head node's GCS port, 6379 unless ray start --port said "
                             f"otherwise") from None


@contextlib.contextmanager
def _quiet_fd(fd: int) -> Iterator[None]:
    """``fd`` points at /dev/null for the block (nothing of ours runs yet)."""
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def start_ray(address: Optional[str]) -> bool:
    """Connect to ``address`` (``auto`` or host:port), or start a local Ray
    bound to loopback with its dashboard off. True when we started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet: Dict[str, Any] = {"log_to_driver": False, "configure_logging": True, "logging_level": logging.WARNING}
    try:
        if address:
            check_address(address)
            ray.init(address=address, **quiet)
            return False
        # "local": a Ray of our own even where RAY_ADDRESS is set or `ray start` ran on this machine
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    except ConnectionError as exc:
        # Ray turns token authentication on for new clusters, but a driver given an address only uses it if asked
        token = "" if os.environ.get("RAY_AUTH_MODE") else (
            "; if the cluster uses token authentication (Ray's default for `ray start`), set RAY_AUTH_MODE=token "
            "here too, with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
        raise UsageError(f"--ray-address {address}: cannot join that Ray cluster ({exc}); start it with "
                         f"ray start --head, or leave --ray-address out for a local Ray{token}") from None
    return True


def _slots(nodes: List[Dict[str, float]], needs: Dict[str, float]) -> int:
    """How many versions asking for ``needs`` the ``nodes`` (each one's total
    resources) hold at once: a version runs on one node, so two half nodes are
    no whole one."""
    asks = [(name, amount) for name, amount in needs.items() if amount > 0]
    if not asks:
        return 1_000_000
    return sum(min(math.floor(have.get(name, 0.0) / amount + 1e-9) for name, amount in asks) for have in nodes)


def _shown(resources: Dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items())
                     if not k.startswith("node:") and not k.endswith("memory")) or "nothing"


class _Task:
    def __init__(self, gen: Any, sink: Sink, capture: Callable[[bytes], None], log_file: Any, job: Job, mark: str):
        self.gen, self.sink, self.capture, self.log_file, self.job, self.mark = gen, sink, capture, log_file, job, mark
        self.on_event = lambda event: deliver(event, sink)
        self.node_id: Optional[str] = None
        self.host: Optional[str] = None
        self.done: Optional[Outcome] = None
        self.killed: Optional[tuple] = None
        self.cancelled_at: Optional[float] = None
        self.forced = False

    def close_log(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


class RayExecutor:
    """Runs each version as a Ray task, at most ``jobs`` at once (and no more
    than the cluster can hold): versions wait in the runner's queue, not in
    Ray's, so edits to the configs keep deciding what runs next."""

    def __init__(self, jobs: Optional[int] = None, cwd: Optional[str] = None, address: Optional[str] = None,
                 gpus_per_version: Optional[float] = None, cpus_per_version: float = 1.0,
                 resources: Optional[Dict[str, float]] = None, echo: bool = True, sweep: bool = True,
                 outputs_dir: Optional[str] = None, clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str, int], None] = lambda text, level: None):
        import ray

        self._ray = ray
        self.cwd = cwd
        self.echo = echo
        self.clock = clock
        self.say = say
        self.started_ray = start_ray(address)
        self.address = address
        self._silent_since: Optional[float] = None
        self._resized_at = clock()
        nodes = [resources for _, resources in self._nodes() or []]
        if gpus_per_version is None:
            gpus_per_version = 1.0 if any(have.get("GPU", 0) > 0 for have in nodes) else 0.0
        self.needs = {"CPU": cpus_per_version, "GPU": gpus_per_version, **(resources or {})}
        self.asked_jobs = jobs is not None  # without -j: as many as the cluster holds, said nowhere
        self.requested = max(1, jobs) if jobs is not None else 1_000_000
        self.jobs = self._fit(nodes, first=True)
        options: Dict[str, Any] = {"num_cpus": cpus_per_version, "num_gpus": gpus_per_version, "max_retries": 0,
                                   "retry_exceptions": False}
        if resources:
            options["resources"] = resources
        self._options = options
        self._remote = ray.remote(node.run_version)
        self._run = self._remote.options(**options)
        self._sweep = ray.remote(node.sweep)
        self.project_mark = project_mark(cwd)
        self.marks = sweep
        self.shared_marker: Optional[str] = None
        if outputs_dir is not None:  # a file only a node that shares our filesystem can see
            self.shared_marker = os.path.join(outputs_dir, SHARED_MARKER)
            with open(self.shared_marker, "w") as handle:
                handle.write("mlpipeline: nodes that see this file share the outputs folder\n")
        self._tasks: Dict[int, _Task] = {}
        self._next_ticket = 1
        if sweep:
            self.sweep_nodes(MARK_PROJECT, self.project_mark)

    # -- sizing ----------------------------------------------------------------------------------------------

    def _nodes(self) -> Optional[List[Tuple[str, Dict[str, float]]]]:
        """The alive nodes (Ray node id, total resources); None when the GCS did
        not answer within GCS_TIMEOUT (``ray.nodes()`` would wait for it until
        Ray ends the process)."""
        try:
            gcs = self._ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
            infos = gcs.get_all_node_info(timeout=GCS_TIMEOUT)
        except AttributeError:  # another Ray's internals: its public, unbounded call
            return [(entry["NodeID"], dict(entry.get("Resources", {}))) for entry in self._ray.nodes()
                    if entry.get("Alive")]
        except Exception:  # noqa: BLE001 - a timeout or an RPC error: the GCS did not answer
            return None
        return [(node_id.hex(), dict(info.resources_total)) for node_id, info in infos.items() if info.state == 0]

    def _fit(self, nodes: List[Dict[str, float]], first: bool = False) -> int:
        slots = _slots(nodes, self.needs)
        if slots < 1:
            wanted = ", ".join(f"{k}={v:g}" for k, v in self.needs.items() if v)
            has = "; ".join(_shown(have) for have in nodes) or "none alive"
            if first:
                self.close()
                raise UsageError(f"the Ray cluster cannot hold one version: each asks one node for {wanted}, and "
                                 f"no node has that (nodes: {has}); lower --gpus-per-version / --cpus-per-version "
                                 f"/ --resources or add nodes")
            if self.jobs > 0:
                self.say(f"no node of the Ray cluster can hold a version now (each asks one node for {wanted}; "
                         f"nodes: {has}); waiting for nodes to join", logging.WARNING)
            return 0
        if first and slots < self.requested and self.asked_jobs:
            self.say(f"-j {self.requested}: the Ray cluster holds {slots} version(s) at once; running {slots}",
                     logging.WARNING)
        return min(self.requested, slots)

    def _look(self) -> None:
        """Every RESIZE_EVERY (every GCS_TIMEOUT while the GCS is silent): what
        the cluster holds now; ClusterLost once its GCS has been silent for
        GCS_LOST_AFTER, so the runner records its versions and stops with a
        clear line instead of being ended by Ray a minute later."""
        now = self.clock()
        every = GCS_TIMEOUT if self._silent_since is not None else RESIZE_EVERY
        if now - self._resized_at < every:
            return
        nodes = self._nodes()
        self._resized_at = now = self.clock()
        if nodes is None:
            if self._silent_since is None:
                self._silent_since = now
                self.say(f"the Ray cluster{self._at()} does not answer; waiting up to {GCS_LOST_AFTER:g} s",
                         logging.WARNING)
            elif now - self._silent_since >= GCS_LOST_AFTER:
                raise ClusterLost(f"the Ray cluster{self._at()} has not answered for {now - self._silent_since:.0f} s "
                                  f"(its head node died, or ray stop ran there); the running versions are recorded "
                                  f"interrupted; start the cluster again and run mlpipeline -r -u to run them again")
            return
        if self._silent_since is not None:
            self.say(f"the Ray cluster{self._at()} answers again", logging.WARNING)
            self._silent_since = None
        self.jobs = self._fit([resources for _, resources in nodes])

    def _at(self) -> str:
        return f" at {self.address}" if self.address else ""

    def capacity(self) -> int:
        self._look()  # nodes come and go
        return self.jobs - len(self._tasks)

    def running(self) -> int:
        return len(self._tasks)

    # -- running -------------------------------------------------------------------------------------------------

    def _declared(self, spec: VersionSpec) -> Optional[Dict[str, float]]:
        """What a version that declares ``resources`` asks a node for, as Ray names it (None: the defaults)."""
        declared = spec.params.get(RESOURCES_KEY)
        if not declared:
            return None
        need = resources_of(declared, self.needs.get("GPU") or 0.0, self.needs.get("CPU") or None)
        asks = {**self.needs, "GPU": need.gpus, "CPU": need.cpus or self.needs.get("CPU", 1.0)}
        if need.memory:
            asks["memory"] = float(need.memory)
        return asks

    def fits(self, spec: VersionSpec) -> Optional[Wait]:
        """A version whose declaration cannot be read, or that no node of the cluster could ever hold, never
        fits; any other waits in Ray's own queue."""
        try:
            asks = self._declared(spec)
        except ResourceError as exc:
            return Wait(str(exc), never=True)
        if asks is None:
            return None
        nodes = [resources for _, resources in self._nodes() or []]
        if nodes and _slots(nodes, asks) < 1:
            wanted = ", ".join(f"{k}={v:g}" for k, v in asks.items() if v)
            return Wait(f"asks one node for {wanted}; no node of the Ray cluster has that (nodes: "
                        f"{'; '.join(_shown(have) for have in nodes)})", never=True)
        return None

    def _task_for(self, spec: VersionSpec) -> Any:
        asks = self._declared(spec)
        if asks is None:
            return self._run
        options = {**self._options, "num_gpus": asks["GPU"], "num_cpus": asks["CPU"]}
        if "memory" in asks:
            options["memory"] = asks["memory"]
        return self._remote.options(**options)

    def submit(self, job: Job, sink: Sink) -> int:
        log_file, capture = open_output(job, self.echo)

        ticket = self._next_ticket
        self._next_ticket += 1
        env, _ = child_env(self.project_mark, job, f"{os.getpid()}-{ticket}", self.marks)
        payload = {"spec": job.spec.to_json(), "model_dir": job.model_dir, "exec_mode": job.exec_mode,
                   "memory_limit": job.memory_limit, "run_dir": job.run_dir, "run_id": job.run_id}
        gen = self._task_for(job.spec).remote(payload, env, self.cwd, self.shared_marker)
        self._tasks[ticket] = _Task(gen, sink, capture, log_file, job, env[MARK_RUN])
        return ticket

    def poll(self, timeout: float) -> List[Ended]:
        self._look()
        if not self._tasks:
            return []
        if self._silent_since is not None:  # no GCS: Ray's stream calls can abort the process (a Ray check)
            time.sleep(min(timeout, GCS_TIMEOUT))
            return []
        ray = self._ray
        waiting = [t.gen for t in self._tasks.values()]
        try:
            ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
            if ready and len(waiting) > 1:  # one look at them all: a ray.wait per task costs 0.1-0.3 ms
                ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            has_news: Optional[set] = {id(gen) for gen in ready}  # an item, the end of the stream, or its error
        except Exception:  # noqa: BLE001 - a generator that already failed: read them all below
            has_news = None
        finished: List[Ended] = []
        now = self.clock()
        for ticket, task in list(self._tasks.items()):
            outcome = None
            if has_news is None or id(task.gen) in has_news:
                outcome = self._drain(task, ready=has_news is not None)
            if outcome is None and task.cancelled_at is not None and not task.forced \
                    and now - task.cancelled_at > timings().cancel_grace:
                self._force(task)
            if outcome is None:
                continue
            del self._tasks[ticket]
            task.close_log()
            finished.append((ticket, outcome))
        return finished

    def _drain(self, task: _Task, ready: bool = False) -> Optional[Outcome]:
        """Hand on every item the task has yielded so far (``ready``: poll saw
        the next one there already); its outcome once it ended."""
        ray = self._ray
        while True:
            try:
                if not ready and not ray.wait([task.gen], num_returns=1, timeout=0)[0]:
                    return None
                ready = False
                item = ray.get(next(task.gen))
            except StopIteration:
                return self._outcome(task, None)
            except Exception as exc:  # noqa: BLE001 - how the task ended: cancelled, node lost, crashed
                return self._outcome(task, exc)
            if "placed" in item:
                placed = item["placed"]
                task.node_id, task.host = placed.get("node_id"), placed.get("host")
                task.sink.started({"pid": placed.get("pid"), "gpu": placed.get("gpu"), "node": placed.get("host"),
                                   "node_id": placed.get("node_id")})
            if item.get("out"):
                task.capture(item["out"])
            for event in item.get("events", ()):
                if task.killed is not None:
                    break  # it is being ended: its events no longer count
                try:
                    task.on_event(event)
                except MLPipelineError:
                    raise  # the runner's own records failed (a full disk): not this version's doing
                except Exception as exc:  # noqa: BLE001 - one version's events never stop the runner
                    reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                    self._cancel_task(task, RunStatus.FAILED, f"it sent an event the runner cannot record: "
                                                              f"{reason}; the version was ended")
            if "done" in item:
                task.done = item["done"]
                if item.get("sync"):
                    node.unpack(item["sync"], task.job.model_dir, task.job.run_dir)
                if item.get("sync_skipped"):
                    task.sink.log(item["sync_skipped"], logging.WARNING)

    def _outcome(self, task: _Task, exc: Optional[BaseException]) -> Outcome:
        if task.killed is not None:
            status, reason = task.killed
            return Outcome(status, error=reason)
        if exc is None and task.done is not None:
            return task.done
        ray_exceptions = self._ray.exceptions
        where = f" on {task.host}" if task.host else ""
        lost = (ray_exceptions.NodeDiedError, ray_exceptions.WorkerCrashedError, ray_exceptions.ObjectLostError,
                ray_exceptions.OwnerDiedError, ray_exceptions.LocalRayletDiedError)
        if isinstance(exc, lost) or (exc is None and task.done is None):
            return Outcome(RunStatus.INTERRUPTED, node_lost=True,
                           error=f"its Ray node{where} left the cluster (or its worker died) while it ran: "
                                 f"{type(exc).__name__ if exc else 'no result'}")
        if isinstance(exc, ray_exceptions.TaskCancelledError):
            return Outcome(RunStatus.CANCELLED, error="its Ray task was cancelled")
        first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        return Outcome(RunStatus.FAILED, error=f"its Ray task failed{where}: {first[0]}")

    def cancel(self, ticket: int, status: RunStatus, reason: str, cold: bool = True) -> None:
        task = self._tasks.get(ticket)
        if task is not None:
            self._cancel_task(task, status, reason)

    def _cancel_task(self, task: _Task, status: RunStatus, reason: str) -> None:
        if task.killed is not None:
            return
        task.killed = (status, reason)
        task.cancelled_at = self.clock()
        try:  # the task's generator sees KeyboardInterrupt and kills the child's whole group on its node
            self._ray.cancel(task.gen, force=False)
        except Exception:  # noqa: BLE001 - already finished
            pass

    def _force(self, task: _Task) -> None:
        """A task that did not end when cancelled: kill its worker, then sweep
        its node for anything the version left."""
        task.forced = True
        try:
            self._ray.cancel(task.gen, force=True)
        except Exception:  # noqa: BLE001 - already finished
            pass
        if task.node_id:
            self.sweep_nodes(MARK_RUN, task.mark, only=task.node_id)

    def sweep_nodes(self, kind: str, mark: str, only: Optional[str] = None, wait: float = 30.0) -> List[Any]:
        """Kill the processes marked ``kind=mark`` on every alive node (or one)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        refs = []
        for node_id, _ in self._nodes() or []:  # a silent GCS: nothing to place the sweeps with
            if only and node_id != only:
                continue
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            refs.append(self._sweep.options(num_cpus=0, max_retries=0, scheduling_strategy=strategy).remote(kind, mark))
        done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=wait)
        return [self._ray.get(ref) for ref in done]

    def close(self) -> None:
        tasks = list(getattr(self, "_tasks", {}).values())
        if getattr(self, "_silent_since", None) is not None:  # the cluster is gone: nothing there to ask or cancel
            for task in tasks:
                task.close_log()
            self._tasks = {}
            tasks = []
        for task in tasks:
            if task.killed is None:
                task.killed = (RunStatus.INTERRUPTED, "the runner stopped")
            try:
                self._ray.cancel(task.gen, force=False)
            except Exception:  # noqa: BLE001
                pass
        deadline = time.monotonic() + timings().cancel_grace
        for task in tasks:
            try:
                self._ray.wait([task.gen], timeout=max(0.0, deadline - time.monotonic()))
                while True:
                    self._ray.get(next(task.gen))
            except Exception:  # noqa: BLE001 - StopIteration or the cancellation: it ended
                pass
            task.close_log()
        if tasks and getattr(self, "marks", False) and getattr(self, "_silent_since", None) is None:
            for task in tasks:  # (a silent GCS places no sweep; the tasks' own cleanup ran on cancel)
                self.sweep_nodes(MARK_RUN, task.mark, wait=5.0)
        if getattr(self, "shared_marker", None):
            try:
                os.unlink(self.shared_marker)  # type: ignore[arg-type]
            except OSError:
                pass
        if self.started_ray:
            _stop_own_ray(self._ray)
        elif self._ray.is_initialized():
            self._ray.shutdown()  # a joined cluster: only this driver disconnects


def _stop_own_ray(ray: Any) -> None:
    """``ray.shutdown()`` for the Ray this runner started, without its slowest
    second: Ray ends its processes one after another with SIGTERM, each given up
    to a second, and its autoscaler ``monitor`` (which a local Ray without an
    autoscaler does not need) never leaves on SIGTERM, so it always costs the
    full second. It is killed at once; the raylet, GCS and the rest keep their
    graceful end (the raylet ends its workers and agents). Where Ray's internals
    are not as expected, Ray's own way stands."""
    node = getattr(getattr(getattr(ray, "_private", None), "worker", None), "_global_node", None)
    kill = getattr(node, "_kill_process_type", None)
    if node is not None and callable(kill):
        def kill_process_type(process_type: str, allow_graceful: bool = False, check_alive: bool = True,
                              wait: bool = False) -> None:
            kill(process_type, allow_graceful=allow_graceful and process_type != "monitor", check_alive=check_alive,
                 wait=wait)
        node._kill_process_type = kill_process_type
    ray.shutdown()


def ray_describer(cwd: str, cache_get: Callable[[str], Optional[dict]], cache_put: Callable[[str, dict], None],
                  timeout: float) -> Any:
    """A Describer whose probes of a script run as Ray tasks (in a child on
    some node), so the runner's machine needs none of the scripts' frameworks."""
    import ray

    from ..plan.describe import Described, Describer, DescribeResult, cache_key
    from ..core.errors import ScriptError, display

    remote = ray.remote(node.describe).options(num_cpus=0, max_retries=0)

    class RayDescriber(Describer):
        def _describe(self, path: str, sha: str) -> Optional[DescribeResult]:
            if self._closed:
                return None
            ref = remote.remote(path, self.cwd, self.timeout)
            try:
                entry = ray.get(ref, timeout=self.timeout + 30)
            except Exception as exc:  # noqa: BLE001 - a lost node or a hang: this script's error, tried again later
                ray.cancel(ref, force=True)
                error = ScriptError(f"{display(path)}: describing it on the Ray cluster failed: "
                                    f"{type(exc).__name__}: {str(exc).strip().splitlines()[:1] or ''}")
                return DescribeResult(path, cache_key(path, sha), Described(error=error), persist=False)
            described = Described.from_entry(entry)
            loaded = described.info.sha256 if described.info is not None else sha
            return DescribeResult(path, cache_key(path, loaded or sha), described, persist=True)

    return RayDescriber(cwd, cache_get, cache_put, timeout=timeout)
