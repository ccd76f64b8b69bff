"""The original mlpipeline 1.x, installed from the package index into its own venv (cached).

``mlpipeline==1.1a3.post7`` is the original's only release of the Model-era
API (byte-identical to ml-pipeline commit 003a5f7); it needs ``easydict``.
The venv lives in ``$MLP_COMPAT_VENV`` or ``~/.cache/mlpipeline-compat/`` and
is made once per Python version; a half-made one is rebuilt.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

ORIGINAL = "mlpipeline==1.1a3.post7"
REQUIREMENTS = [ORIGINAL, "easydict>=1.8"]


def venv_dir() -> Path:
    """$MLP_COMPAT_VENV, else ~/.cache/mlpipeline-compat/..., else .compat-venv/ in the repository
    (gitignored) when the home folder cannot be written."""
    if os.environ.get("MLP_COMPAT_VENV"):
        return Path(os.environ["MLP_COMPAT_VENV"])
    name = f"mlpipeline-1.1a3.post7-py{sys.version_info[0]}{sys.version_info[1]}"
    cache = Path.home() / ".cache" / "mlpipeline-compat"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return cache / name
    except OSError:
        pass
    return Path(__file__).resolve().parents[2] / ".compat-venv" / name


def cached_venv(root: Path, steps: List[List[str]], version: str,
                check: str = "import mlpipeline; print(mlpipeline.__version__)") -> Path:
    """A venv at ``root`` made once (under a lock, a half-made one rebuilt): each of ``steps`` is a
    ``pip install`` argument list, and ``check`` must print ``version`` in it."""
    stamp = root / ".ready"
    if stamp.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return root
        shutil.rmtree(root, ignore_errors=True)
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(root)], check=True, timeout=300)
        python = str(root / "bin" / "python")
        for step in steps:
            result = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *step],
                                    capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                raise RuntimeError(f"installing {' '.join(step)} into {root} failed (needs the package index):\n"
                                   f"{result.stderr[-3000:]}")
        checked = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=str(root))
        if checked.returncode != 0 or checked.stdout.strip() != version:
            raise RuntimeError(f"{root}: the installed original does not import: {checked.stderr[-2000:]}")
        stamp.write_text(version + "\n")
    return root


def original_venv() -> Path:
    """The venv's folder, made (and the original installed into it) if needed."""
    return cached_venv(venv_dir(), [REQUIREMENTS], "1.1.a.3.post.7",
                       "import mlpipeline, mlpipeline.utils, mlpipeline.helper; print(mlpipeline.__version__)")


SHARED = Path(__file__).resolve().parent / "shared"  # _observe.py, imported by every fixture script


def clean_env(bin_dir: Path) -> dict:
    """An environment for a subprocess of one installation: its bin first on PATH, and on
    PYTHONPATH only the fixtures' shared helpers (no mlpipeline there)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(SHARED)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_COLOR"] = "1"
    return env
