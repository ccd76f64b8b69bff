"""The environment a run ran in: the installed distributions and their versions, the interpreter, the
platform, and CUDA and the NVIDIA driver where they are known without importing a framework.

Read once per process (``capture`` is cached): the runner's interpreter is the one its versions' child
processes run, so what it sees installed is what they import. Stored once per distinct environment,
under the sha256 of its JSON (``digest``); ``differences`` says what changed between two of them.
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional

_captured: List[Dict[str, Any]] = []
_NAME = re.compile(r"[-_.]+")
# torch/version.py: ``cuda: Optional[str] = '12.1'``; tensorflow's build_info.py: ``'cuda_version': '12.3'``
_CUDA = {"torch": ("version.py", re.compile(r"""^cuda\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]""", re.M)),
         "tensorflow": (os.path.join("python", "platform", "build_info.py"),
                        re.compile(r"""['"]cuda_version['"]\s*:\s*['"]([^'"]+)['"]"""))}


def _normal(name: str) -> str:
    """A distribution's name as the package index compares them (PEP 503)."""
    return _NAME.sub("-", name).lower()


def installed_distributions(paths: Optional[List[str]] = None) -> Dict[str, str]:
    """Every distribution importable from ``paths`` (default ``sys.path``) and its version, the first
    found winning as ``importlib.metadata`` has it. Read from the ``name-version.dist-info`` folder names
    (a few listdir calls, where parsing every METADATA file takes a tenth of a second); ``importlib.metadata``
    reads the few whose folder name carries no version (an old ``.egg-info``)."""
    found: Dict[str, str] = {}
    for folder in sys.path if paths is None else paths:
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for entry in names:
            stem, dot, kind = entry.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            name, _, version = stem.partition("-")
            if kind == "egg-info":
                version = version.split("-py")[0]
            if not version:
                version = _metadata_version(os.path.join(folder or ".", entry))
            if name and version:
                found.setdefault(_normal(name), version)
    return dict(sorted(found.items()))


def _metadata_version(path: str) -> str:
    from importlib.metadata import PathDistribution
    from pathlib import Path

    try:
        return PathDistribution(Path(path)).version or ""
    except Exception:  # noqa: BLE001 - an unreadable entry is left out, never the run
        return ""


def cuda_builds() -> Dict[str, str]:
    """The CUDA version torch and TensorFlow were built against: from the module when the framework is
    already imported, else read from its version file (found without importing it)."""
    import importlib.util

    found: Dict[str, str] = {}
    torch = sys.modules.get("torch")
    if torch is not None and getattr(getattr(torch, "version", None), "cuda", None):
        found["torch"] = str(torch.version.cuda)
    for name, (rel, pattern) in _CUDA.items():
        if name in found:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        for folder in folders:
            try:
                with open(os.path.join(folder, rel), encoding="utf-8") as handle:
                    match = pattern.search(handle.read(200_000))
            except OSError:
                continue
            if match:
                found[name] = match.group(1)
                break
    return found


def capture(gpu: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """This process's environment (cached: computed once per process). ``gpu``: what NVML says of the
    driver and the devices, where it can be asked (the caller's layer owns NVML)."""
    if _captured:
        return _captured[0]
    import platform

    info: Dict[str, Any] = {
        "python": {"implementation": platform.python_implementation(), "version": platform.python_version(),
                   "executable": sys.executable},
        "platform": {"system": platform.platform(), "machine": platform.machine()},
        "packages": installed_distributions(),
    }
    cuda = cuda_builds()
    if cuda:
        info["cuda"] = cuda
    if gpu:
        info["gpu"] = dict(gpu)
    _captured.append(info)
    return info


def digest(info: Mapping[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(canonical(info).encode()).hexdigest()


def canonical(info: Mapping[str, Any]) -> str:
    return json.dumps(info, sort_keys=True, separators=(",", ":"))


def python_of(info: Mapping[str, Any]) -> str:
    python = info.get("python") or {}
    return f"{python.get('implementation', '?')} {python.get('version', '?')}"


def summary(info: Mapping[str, Any]) -> str:
    """One line: ``CPython 3.11.9, Linux-6.1-x86_64, 170 packages, CUDA 12.1 (torch), driver 535.104``."""
    parts = [python_of(info), (info.get("platform") or {}).get("system") or "?",
             f"{len(info.get('packages') or {})} packages"]
    cuda = info.get("cuda") or {}
    if cuda:
        parts.append("CUDA " + ", ".join(f"{v} ({k})" for k, v in sorted(cuda.items())))
    driver = (info.get("gpu") or {}).get("driver")
    if driver:
        parts.append(f"driver {driver}")
    return ", ".join(parts)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """What changed from ``old`` to ``new``, one item each: ``Python CPython 3.11.8 -> 3.11.9``,
    ``numpy 1.26.4 -> 2.0.1``, ``+pandas 2.2.0`` (added), ``-scipy 1.13.0`` (removed). Empty: the same."""
    found: List[str] = []
    if python_of(old) != python_of(new):
        found.append(f"Python {python_of(old)} -> {python_of(new)}")
    for key, label in (("platform", "platform"), ("cuda", "CUDA"), ("gpu", "GPU")):
        before, after = old.get(key) or {}, new.get(key) or {}
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                found.append(f"{label} {name} {before.get(name, '(none)')} -> {after.get(name, '(none)')}")
    before, after = old.get("packages") or {}, new.get("packages") or {}
    for name in sorted(set(before) | set(after)):
        if name not in after:
            found.append(f"-{name} {before[name]}")
        elif name not in before:
            found.append(f"+{name} {after[name]}")
        elif before[name] != after[name]:
            found.append(f"{name} {before[name]} -> {after[name]}")
    return found
