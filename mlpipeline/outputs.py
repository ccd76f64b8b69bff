"""Values versions saved with ``Model.save_output``, read back: ``load`` and ``list_outputs``
(``mlpipeline.read.outputs`` does the work)."""
from __future__ import annotations

from typing import Any, Optional

from .proc.system import hostname  # noqa: F401 - kept at its old import path


def load(script: str, version: str, name: str, allow_stale: bool = False, project: Any = None,
         run: Optional[int] = None) -> Any:
    """The output ``name`` that the newest succeeded run of ``version`` of ``script`` saved with
    ``save_output``: a numpy array, a pandas DataFrame or Series, or JSON data (``run``: that run's,
    whatever its status). Raises ``StaleOutput`` (``mlpipeline.read.outputs``) when the script's code, the version's
    parameters or its data changed since, unless ``allow_stale``. ``project``: a folder or a Project
    (default: found from the current folder)."""
    from .read.outputs import load as load_output

    return load_output(script, version, name, allow_stale=allow_stale, project=project, run=run)


def list_outputs(script: Optional[str] = None, project: Any = None, check: bool = True) -> Any:
    """The recorded outputs, newest first, as plain rows with ``stale`` (what changed since, or ``no``)."""
    from .read.outputs import list_outputs as listed

    return listed(script, project=project, check=check)
