"""The Ray backend left running for days: an address where no cluster is, a
cluster whose nodes are each too small for a version, and a head node that dies
under a running batch. Each must end the runner with one clear line, never a
hang, and leave the ledger right.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from ray_support import Project, RayCluster, new_project, probe, wait_for, _cmdline

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def two_small_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A head with no CPU and two one-CPU nodes; the module's last test kills its GCS."""
    cluster = RayCluster({"head": {"num_cpus": 0}, "w1": {"num_cpus": 1}, "w2": {"num_cpus": 1}},
                         tmp_path_factory.mktemp("ray") / "cluster.log")
    everything = cluster.processes()
    try:
        yield cluster
    finally:
        if not any("gcs_server" in _cmdline(pid) for pid in cluster.processes()):
            # without their GCS, Ray's agents linger for a minute or more after the shutdown: end them first
            for pid in set(everything) - {cluster.proc.pid}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        cluster.close()


def one_version(root: Path, action: dict) -> Project:
    project = new_project(root)
    project.script("a.py", probe({"v": action}))
    project.configure(["a.py"])
    return project


def test_an_address_where_nothing_listens_fails_at_once(tmp_path):
    """Ray retries a dead address for about 13 minutes; the runner says so in
    one line and exits 2 before any run is recorded."""
    project = one_version(tmp_path / "proj", {})
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = project.run("-r", "--backend", "ray", "--ray-address", f"127.0.0.1:{port}", timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing answers at" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert project.runs() == []


def test_no_node_big_enough_is_refused_though_the_cluster_is(two_small_nodes, tmp_path):
    """Two one-CPU nodes add up to the two CPUs a version asks for, but a version
    runs on one node: Ray would keep it pending forever, so the runner refuses."""
    project = one_version(tmp_path / "proj", {})
    result = project.run("-r", "--backend", "ray", "--ray-address", two_small_nodes.address,
                         "--cpus-per-version", "2", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "no node has that" in result.stderr and result.stderr.count("CPU=1") == 2, result.stderr
    assert project.runs() == []


def test_a_dead_head_node_ends_the_batch_and_records_its_version(two_small_nodes, tmp_path):
    """The GCS is killed under a running version: within Ray's own minute the
    runner says the cluster is gone, records the version interrupted (a later
    -r -u runs it again) and exits 1, rather than hanging or being ended by Ray
    with its run left ``running``. Kills this module's cluster: keep it last."""
    project = one_version(tmp_path / "proj", {"action": "wait"})
    runner = project.start("-r", "--backend", "ray", "--ray-address", two_small_nodes.address)
    wait_for(lambda: (project.root / "started-v").exists(), timeout=30, proc=runner, what="the version to start")
    gcs = [pid for pid in two_small_nodes.processes() if "gcs_server" in _cmdline(pid)]
    assert len(gcs) == 1, gcs
    os.kill(gcs[0], signal.SIGKILL)
    out, err = runner.communicate(timeout=55)
    assert runner.returncode == 1, err
    assert "has not answered for" in err and "Traceback" not in err, err
    [run] = project.runs()
    assert run["status"] == "interrupted" and "has not answered" in run["error"], run
