"""Helpers of the Ray suite: a local Ray cluster in a helper process of its own
(cluster_helper.py), so the pytest process never imports Ray and holds none of
its threads, and the probe model script the tests run on it."""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers import Project, pid_alive, queue_config, wait_for  # noqa: E402,F401  (re-exported)

HELPER = Path(__file__).resolve().parent / "cluster_helper.py"


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class RayCluster:
    """A local Ray cluster in a helper process: ``address``, ``nodes`` (name ->
    Ray node id), ``remove`` a node, and the processes it runs."""

    def __init__(self, layout: Dict[str, Dict[str, Any]], log: Path):
        self.log = log
        self._log_handle = open(log, "w")
        # Ray's files (sockets: short paths) and the "current cluster" address file in a folder of our own,
        # so no `ray.init()` elsewhere on this machine finds this cluster, nor ours another's
        self.tmpdir = tempfile.mkdtemp(prefix="mlp-raytest-")
        # the nodes' own system config: a node that dies is noticed within about a second, not ~30 s
        env = {**os.environ, "RAY_TMPDIR": self.tmpdir, "RAY_health_check_period_ms": "500",
               "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "2",
               "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        self.proc = subprocess.Popen([sys.executable, str(HELPER), json.dumps(layout)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log_handle, env=env)
        self._pending = b""
        self.session_pids: set = set()
        try:
            first = self._answer(timeout=90)
        except BaseException:
            self.proc.kill()  # Ray's reaper ends the nodes it had started
            self.proc.wait(10)
            self._log_handle.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        self.address: str = first["address"]
        self.session_dir: str = first["session_dir"]
        self.nodes: Dict[str, str] = first["nodes"]
        self.all_node_ids = set(self.nodes.values())

    def _answer(self, timeout: float = 60) -> Dict[str, Any]:
        """The helper's next answer (Ray may print lines of its own in between)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, _, self._pending = self._pending.partition(b"\n")
                if line.startswith(b"@@ "):
                    answer = json.loads(line[3:])
                    if "error" in answer:
                        raise AssertionError(f"cluster helper: {answer['error']}")
                    return answer
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the cluster helper did not answer in {timeout:g} s: {self.log.read_text()[-3000:]}")
            if select.select([fd], [], [], left)[0]:
                data = os.read(fd, 1 << 16)
                if not data:
                    raise AssertionError(f"the cluster helper exited ({self.proc.wait()}): {self.log.read_text()[-3000:]}")
                self._pending += data

    def _send(self, line: str, timeout: float = 60) -> Dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self._answer(timeout)

    def remove(self, name: str) -> None:
        """Kill a node's raylet and workers at once, as a machine that dies."""
        self._send(f"remove {name}")
        del self.nodes[name]

    def name_of(self, node_id: Optional[str]) -> Optional[str]:
        return next((name for name, nid in self.nodes.items() if nid == node_id), None)

    def processes(self) -> List[int]:
        """Live processes of this cluster: started for one of its nodes (Ray
        marks its workers and agents with RAY_NODE_ID, and whatever they start
        inherits it) or descending from the helper (the GCS, the raylets)."""
        needles = [f"RAY_NODE_ID={nid}\0".encode() for nid in self.all_node_ids]
        children: Dict[int, List[int]] = {}
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(pid)
            environ = _environ(pid) + b"\0"
            if any(needle in environ for needle in needles) and pid_alive(pid):
                found.append(pid)
        stack = [self.proc.pid]
        while stack:
            for kid in children.get(stack.pop(), []):
                if pid_alive(kid):
                    found.append(kid)
                stack.append(kid)
        self.session_pids.update(found)
        return sorted(set(found))

    def tasks(self, name: str) -> List[int]:
        """Workers of this cluster now executing the task ``name`` (Ray titles
        a busy worker ``ray::<task name>``; an idle one ``ray::IDLE``)."""
        return [pid for pid in self.processes() if _cmdline(pid).startswith(f"ray::{name}")]

    def close(self) -> None:
        self.processes()  # everything it runs now must be gone afterwards
        try:
            if self.proc.poll() is None:
                self._send("quit", timeout=60)
                self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._log_handle.close()
        deadline = time.monotonic() + 10
        left = [pid for pid in self.session_pids if pid_alive(pid)]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [pid for pid in left if pid_alive(pid)]
        assert not left, "Ray processes left after the cluster shut down: " + "; ".join(
            f"{pid} {_cmdline(pid)[:100]}" for pid in left)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def strangers(self) -> List[str]:
        """Live processes of a Ray that keeps its files where this cluster does,
        but is not this cluster (a local Ray a runner started, left behind)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and pid_alive(int(entry)):
                line = _cmdline(int(entry))
                if self.tmpdir in line and self.session_dir not in line:
                    found.append(f"{entry} {line[:100]}")
        return found


def new_project(root: Path) -> Project:
    proj = Project(root)
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True, exist_ok=True)
    return proj


def probe(versions: Dict[str, dict]) -> str:
    """A model script whose versions append what they saw to the project's
    probes.jsonl: ``{"name", "pid", "cuda", "start", "end"}``.

    Actions: ok; sleep (``seconds``); hang (starts ``sleep 300`` in its own
    process group and ``sleep 301`` in a session of its own, records their pids
    as ``kids``, writes started-<name>, never returns); hang_once (hang the first
    time, ok after); wait (writes started-<name>, waits for a file named go).
    """
    adds = "\n".join(f"versions.add_version({name!r}, {', '.join(f'{k}={v!r}' for k, v in params.items())})"
                     for name, params in versions.items())
    return textwrap.dedent('''\
        import json, os, subprocess, time
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions

        ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

        class Loader(DataLoader):
            def get_train_input(self, mode=None, **kw): return lambda: [1, 2, 3]
            def get_test_input(self, **kw): return lambda: [4, 5]
            def get_train_sample_count(self): return 4
            def get_test_sample_count(self): return 2

        def note(**info):
            with open(os.path.join(ROOT, "probes.jsonl"), "a") as f:
                f.write(json.dumps(info) + "\\n")

        class Probe(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode="test"):
                self.version = version

            def train_model(self, input_fn, steps):
                name, action = self.version["name"], self.version.get("action", "ok")
                started = os.path.join(ROOT, "started-" + name)
                info = {"name": name, "pid": os.getpid(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                        "start": time.time()}
                if action == "hang_once":
                    action = "ok" if os.path.exists(started) else "hang"
                if action == "hang":
                    kids = [subprocess.Popen(["sleep", "300"]), subprocess.Popen(["sleep", "301"], start_new_session=True)]
                    note(kids=[k.pid for k in kids], **info)
                    open(started, "w").close()
                    while True:
                        time.sleep(1)
                if action == "wait":
                    open(started, "w").close()
                    deadline = time.time() + 60
                    while not os.path.exists(os.path.join(ROOT, "go")) and time.time() < deadline:
                        time.sleep(0.05)
                if action == "sleep":
                    time.sleep(self.version["seconds"])
                note(end=time.time(), **info)

            def evaluate_model(self, input_fn, steps):
                return {"score": float(sum(input_fn()))}

        versions = Versions(Loader(), batch_size=2, epoc_count=1)
        __ADDS__
        MODEL = Probe(versions)
        ''').replace("__ADDS__", adds)


def probes(project: Project) -> List[dict]:
    path = project.root / "probes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def hung(project: Project, name: str) -> dict:
    """The probe of a hanging version, once it has started its grandchildren."""
    found = [p for p in probes(project) if p["name"] == name and "kids" in p]
    assert found, f"version {name} never started its children: {probes(project)}"
    return found[0]
