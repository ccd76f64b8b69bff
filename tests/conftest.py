"""Fixtures shared by every test folder (helpers live in helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A real project folder: mlp.config and an empty models/."""
    proj = Project(tmp_path / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True, exist_ok=True)
    return proj
