"""Fixtures shared by every test folder (helpers live in helpers.py)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from helpers import Project

# pytest-xdist gives its workers the controller's terminal size as COLUMNS/LINES; the CLI's tables fit
# $COLUMNS, so the runs the tests start would cut what they check (as a pipe, the tables are not cut).
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A real project folder: mlp.config and an empty models/."""
    proj = Project(tmp_path / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True, exist_ok=True)
    return proj


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread running (a watcher, a describer, a
    flusher that nobody stopped): a week-long runner would pile them up."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {', '.join(sorted(t.name for t in leaked))}"
