"""What it takes to reproduce a run: git state, interpreter, package versions, seed.

Everything here is best effort: a project outside git, or a machine without
git, records nothing for those fields and runs as usual.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional


SEED_KEYS = ("seed", "random_seed", "random_state")


@dataclass
class GitState:
    commit: str
    dirty: bool
    diff: str


def _git(root: str, *args: str) -> Optional[str]:
    import subprocess  # local: a child process reporting package versions needs none of this

    try:
        proc = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=20,
                              errors="replace")
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def in_git_work_tree(root: str) -> bool:
    """Is there a .git above ``root``? (A few stat calls; saves spawning git
    for every run of a project that is not in git.)"""
    path = os.path.abspath(root)
    ceilings = {os.path.abspath(p) for p in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(os.pathsep) if p}
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path or parent in ceilings:
            return False
        path = parent


def git_state(root: str) -> Optional[GitState]:
    """The commit and dirty flag of the git work tree holding ``root``, if any."""
    if not in_git_work_tree(root):
        return None
    status = _git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None
    commit = next((line.split()[2] for line in status.splitlines() if line.startswith("# branch.oid ")), "")
    if not commit or commit == "(initial)":
        return None
    dirty = any(not line.startswith("#") for line in status.splitlines() if line.strip())
    diff = (_git(root, "diff", "HEAD") or "") if dirty else ""
    return GitState(commit, dirty, diff)


def python_version() -> str:
    import platform

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
