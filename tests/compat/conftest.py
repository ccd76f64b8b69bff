"""Fixtures for the differential suite: the original 1.x next to this project."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from original import original_venv  # noqa: E402


@pytest.fixture(scope="session")
def original() -> Path:
    """The venv holding mlpipeline==1.1a3.post7 (made once, then cached)."""
    return original_venv()
