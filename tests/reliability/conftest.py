"""The reliability suite: crashes, kills, junk input and a full disk, with real
runner processes. Every test here is marked ``reliability``; the ``project``
fixture comes from tests/conftest.py and the helpers from tests/helpers.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)
