"""Versions of the key packages a model script imported (read in its process)."""
from __future__ import annotations

import sys
from typing import Dict

from .. import __version__

TRACKED_PACKAGES = ("numpy", "tensorflow", "keras", "torch", "jax", "sklearn", "pandas")


def imported_packages() -> Dict[str, str]:
    """Versions of the key packages the running script has imported (plus ours)."""
    found = {"mlpipeline": __version__}
    for name in TRACKED_PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module else None
        if version:
            found[name] = str(version)
    return found
