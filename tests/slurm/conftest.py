"""The Slurm suite's fixture: a real one-node Slurm (Debian's slurmctld, slurmd and munge, as root) with
two fake GPUs, started for the module and torn down after (``cluster.OneNodeSlurm``)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cluster import OneNodeSlurm, missing  # noqa: E402


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneNodeSlurm]:
    why = missing()
    if why:  # the suite is part of `make test`, which installs Slurm (make slurm): say how, never skip
        pytest.fail(f"the Slurm tests need a one-node Slurm here: {why}", pytrace=False)
    cluster = OneNodeSlurm(str(tmp_path_factory.mktemp("slurm")))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
