"""The reliability suite: crashes, kills, junk input and a full disk, with real
runner processes. Every test here is marked ``reliability``.

The shared fixtures (``project``) come from tests/conftest.py, which pytest
applies to this folder too. Both conftest files are imported under the name
``conftest``; whichever pytest loaded last is what ``from conftest import``
finds, so this one re-exports the parent's helpers (tracer, queue_config,
Project, REPO, ...) for the test modules next to it that import them by name.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for folder in (str(TESTS), str(HERE)):
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _load_parent():
    spec = importlib.util.spec_from_file_location("_mlpipeline_tests_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_parent = _load_parent()
for _name, _value in vars(_parent).items():
    # helpers only: fixtures are already inherited from tests/conftest.py
    if not _name.startswith("_") and not hasattr(_value, "_pytestfixturefunction") \
            and type(_value).__name__ != "FixtureFunctionDefinition":
        globals().setdefault(_name, _value)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)
