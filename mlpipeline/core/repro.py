"""What it takes to reproduce a run: git state, interpreter, package versions, seed.

Everything here is best effort: a project outside git, or a machine without
git, records nothing for those fields and runs as usual.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple


SEED_KEYS = ("seed", "random_seed", "random_state")


@dataclass
class GitState:
    commit: str
    dirty: bool
    diff: str
    top: str = ""    # the work tree's top folder
    untracked: List[str] = field(default_factory=list)  # files git neither tracks nor ignores, from the top


# What a run keeps of the files git does not track (its run folder's untracked/): small ones only.
UNTRACKED_FILE_MAX = 1 << 20
UNTRACKED_TOTAL_MAX = 16 << 20
UNTRACKED_COUNT_MAX = 1000
DIFF_FILE, TREE_FILE, UNTRACKED_DIR = "git.diff", "git.json", "untracked"


def _git(root: str, *args: str) -> Optional[str]:
    ok, out = git(root, *args)
    return out if ok else None


def git(root: str, *args: str, timeout: float = 20) -> Tuple[bool, str]:
    """Run git in ``root``: (whether it succeeded, its output, or what it said on failure)."""
    import subprocess  # local: a child process reporting package versions needs none of this

    try:
        proc = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=timeout,
                              errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        return False, "; ".join(line.strip() for line in said[:3] if line.strip()) or f"exit {proc.returncode}"
    return True, proc.stdout


def git_top(root: str) -> Optional[str]:
    """The folder above ``root`` that holds a .git (a few stat calls; saves spawning git
    for every run of a project that is not in git)."""
    path = os.path.abspath(root)
    ceilings = {os.path.abspath(p) for p in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(os.pathsep) if p}
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path or parent in ceilings:
            return None
        path = parent


def in_git_work_tree(root: str) -> bool:
    """Is there a .git above ``root``?"""
    return git_top(root) is not None


def git_state(root: str, untracked: bool = False, exclude: Sequence[str] = ()) -> Optional[GitState]:
    """The commit and dirty flag of the git work tree holding ``root``, if any, and the diff of a dirty
    one; with ``untracked``, the files git neither tracks nor ignores (those under ``exclude``, folders
    such as the outputs, left out)."""
    top = git_top(root)
    if top is None:
        return None
    inside = [os.path.abspath(p) for p in exclude if os.path.abspath(p).startswith(top + os.sep)]
    spec = [":/", *(f":(exclude){os.path.relpath(p, os.path.abspath(root))}" for p in inside)]
    status = _git(root, "status", "--porcelain=v2", "--branch", "-z",
                  f"--untracked-files={'all' if untracked else 'no'}", "--", *spec)
    if status is None:
        return None
    commit, dirty, new = "", False, []
    fields = iter(status.split("\0"))
    for entry in fields:
        if entry.startswith("# branch.oid "):
            commit = entry.split()[2]
        elif entry.startswith("? "):
            new.append(entry[2:])
        elif entry[:2] in ("1 ", "2 ", "u "):
            dirty = True
            if entry.startswith("2 "):
                next(fields, None)  # a rename's original path
    if not commit or commit == "(initial)":
        return None
    diff = (_git(top, "diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/",
                 "--dst-prefix=b/", "HEAD") or "") if dirty else ""
    return GitState(commit, dirty, diff, top, new)


def python_version() -> str:
    import platform

    return f"{platform.python_implementation()} {platform.python_version()}"


def seed_of(params: Dict[str, Any]) -> Optional[str]:
    for key in SEED_KEYS:
        if params.get(key) is not None:
            return str(params[key])
    return None


def save_diff(run_dir: str, state: GitState, store: Optional[str] = None) -> Optional[str]:
    """Keep in ``run_dir`` what an exact re-run needs besides the commit: the diff of a dirty tree
    (git.diff), and git.json, which names the small untracked files and their content in ``store`` (a
    folder of files named by their sha256, shared by the project's runs: a sweep does not keep a copy
    per point) and what was left out. Best effort: the run itself matters more. Returns the diff's
    path, if one was written."""
    import json

    path = os.path.join(run_dir, DIFF_FILE) if state.dirty and state.diff else None
    kept: Dict[str, str] = {}
    left_out: List[str] = []
    total = 0
    try:
        os.makedirs(run_dir, exist_ok=True)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(state.diff)
        for rel in state.untracked if store else ():
            source = os.path.join(state.top, rel)
            try:
                size = os.path.getsize(source)
                if size > UNTRACKED_FILE_MAX or total + size > UNTRACKED_TOTAL_MAX or len(kept) >= UNTRACKED_COUNT_MAX:
                    left_out.append(f"{rel} ({size} bytes)")
                    continue
                kept[rel] = _stored(source, str(store))
            except OSError:
                left_out.append(f"{rel} (unreadable)")
                continue
            total += size
        with open(os.path.join(run_dir, TREE_FILE), "w", encoding="utf-8") as handle:
            json.dump({"commit": state.commit, "dirty": state.dirty, "untracked": kept, "left_out": left_out[:50],
                       "left_out_count": len(left_out), "store": os.path.relpath(str(store), run_dir) if store else None,
                       "limits": {"file": UNTRACKED_FILE_MAX, "total": UNTRACKED_TOTAL_MAX}}, handle, indent=1)
    except OSError:
        return None
    return path


_hashed: Dict[str, Tuple[int, int, str]] = {}  # path -> (mtime_ns, size, sha256) of files stored already


def _stored(source: str, store: str) -> str:
    """Put ``source`` in ``store`` under its sha256 unless it is there; returns the sha256."""
    import hashlib
    import shutil

    stat = os.stat(source)
    known = _hashed.get(source)
    if known is not None and known[:2] == (stat.st_mtime_ns, stat.st_size):
        sha = known[2]
    else:
        with open(source, "rb") as handle:
            sha = hashlib.sha256(handle.read()).hexdigest()
    target = os.path.join(store, sha)
    if not os.path.exists(target):
        os.makedirs(store, exist_ok=True)
        shutil.copyfile(source, target + ".part")
        os.replace(target + ".part", target)
    _hashed[source] = (stat.st_mtime_ns, stat.st_size, sha)
    return sha


SPEC_FILE = "spec.json"


def save_spec(run_dir: str, spec: Dict[str, Any]) -> None:
    """Keep the version's spec as it started (its argument line, parameters and seed) for an exact re-run."""
    import json

    try:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, SPEC_FILE), "w", encoding="utf-8") as handle:
            json.dump(spec, handle, indent=1, sort_keys=True)
    except (OSError, TypeError, ValueError):  # best effort, as the diff
        pass
