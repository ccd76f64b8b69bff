"""The dashboard's ledger watcher, one look at a time, over real ledger files: a ledger replaced under it
is said (``reload``) exactly once, even when the first look at the new file fails."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlpipeline.plan.config import find_project
from mlpipeline.store.ledger import open_ledger
from mlpipeline.web.events import Events
from mlpipeline.web.state import Dashboard


@pytest.fixture
def watcher(tmp_path: Path):
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "mlp.config").write_text("[MLP]\nmodels_dir = models\n")
    project = find_project(str(root))
    open_ledger(project.outputs_dir).close()
    events = Events(Dashboard(project, "token", {"127.0.0.1"}))
    events.look(now=1000.0)  # the first look: the ledger as it is
    yield project, events
    if events._reader is not None:
        events._reader.close()


def names(changes):
    return [name for name, _ in changes]


def test_a_replaced_ledger_caught_half_made_is_still_said(watcher):
    project, events = watcher
    shutil.rmtree(project.outputs_dir)
    Path(project.outputs_dir).mkdir()
    Path(project.ledger_path).write_bytes(b"SQLite format 3\0" + b"\0" * 84)  # a header and nothing else yet
    with pytest.raises(Exception):  # noqa: B017 - whatever SQLite says of a file half written
        events.look(now=1001.0)
    Path(project.ledger_path).unlink()
    open_ledger(project.outputs_dir).close()
    said = [names(events.look(now=1002.0 + i)) for i in range(3)]
    assert said[0][0] == "reload" and all("reload" not in later for later in said[1:]), said


def test_a_ledger_deleted_then_made_again_is_said_once(watcher):
    project, events = watcher
    shutil.rmtree(project.outputs_dir)
    assert names(events.look(now=1001.0)) == ["reload"]
    assert names(events.look(now=1002.0)) == []
    open_ledger(project.outputs_dir).close()
    assert "reload" not in names(events.look(now=1003.0))  # the pages already started over


def test_an_unchanged_ledger_says_no_reload(watcher):
    _, events = watcher
    assert all("reload" not in names(events.look(now=1001.0 + i)) for i in range(3))
