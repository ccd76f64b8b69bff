"""The Ray suite's fixtures: real local Ray clusters (``ray.cluster_utils.Cluster``,
fake GPUs and several nodes on this one machine), each in a helper process of
its own (cluster_helper.py, driven by ray_support.RayCluster) so the pytest
process never imports Ray and holds none of its threads; the runner joins them
through the real CLI.

A cluster is module-scoped; closing it fails the module's last test if any
process of it (a raylet, the GCS, a worker, or anything a version started on
one of its nodes) is still alive a few seconds later.
"""
from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from ray_support import RayCluster


@pytest.fixture(scope="session", autouse=True)
def ray_installed() -> None:
    """The Ray backend is an extra: say how to get it rather than skip."""
    if importlib.util.find_spec("ray") is None:
        pytest.fail("the Ray tests need Ray: pip install -e '.[ray]' (make install)", pytrace=False)


def new_cluster(layout: Dict[str, Dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    log = tmp_path_factory.mktemp("ray") / "cluster.log"
    cluster = RayCluster(layout, log)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """One node with 2 CPUs and 2 (fake) GPUs."""
    yield from new_cluster({"head": {"num_cpus": 2, "num_gpus": 2}}, tmp_path_factory)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A head that runs no version (no CPU) and two one-CPU worker nodes."""
    yield from new_cluster({"head": {"num_cpus": 0}, "w1": {"num_cpus": 1, "resources": {"w1": 1}},
                            "w2": {"num_cpus": 1, "resources": {"w2": 1}}}, tmp_path_factory)


@pytest.fixture(autouse=True)
def no_strays(tmp_path: Path) -> Iterator[None]:
    """Whatever a test's versions started and a failing test left running (they
    work in the project, under tmp_path) is ended, so one failure stays one."""
    yield
    root = str(tmp_path)
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/cwd").startswith(root):
                os.kill(int(entry), signal.SIGKILL)
        except OSError:
            continue
