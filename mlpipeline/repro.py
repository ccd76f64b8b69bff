"""What it takes to reproduce a run: git state, interpreter, package versions, seed.

Everything here is best effort: a project outside git, or a machine without
git, records nothing for those fields and runs as usual.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional

from . import __version__

TRACKED_PACKAGES = ("numpy", "tensorflow", "keras", "torch", "jax", "sklearn", "pandas")
SEED_KEYS = ("seed", "random_seed", "random_state")


@dataclass
class GitState:
    commit: str
    dirty: bool
    diff: str


def _git(root: str, *args: str) -> Optional[str]:
    try:
        proc = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=20,
                              errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(root: str) -> Optional[GitState]:
    """The commit and dirty flag of the git work tree holding ``root``, if any."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    dirty = bool(status.strip())
    diff = (_git(root, "diff", "HEAD") or "") if dirty else ""
    return GitState(commit.strip(), dirty, diff)


def imported_packages() -> Dict[str, str]:
    """Versions of the key packages the running script has imported (plus ours)."""
    found = {"mlpipeline": __version__}
    for name in TRACKED_PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module else None
        if version:
            found[name] = str(version)
    return found


def python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def seed_of(params: Dict[str, Any]) -> Optional[str]:
    for key in SEED_KEYS:
        if params.get(key) is not None:
            return str(params[key])
    return None


def save_diff(run_dir: str, state: GitState) -> Optional[str]:
    if not state.dirty or not state.diff:
        return None
    path = os.path.join(run_dir, "git.diff")
    try:
        os.makedirs(run_dir, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(state.diff)
    except OSError:  # best effort: the run itself matters more than its diff
        return None
    return path
