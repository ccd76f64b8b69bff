"""What any training script can import from ``mlpipeline``: ``log_metric``, ``log_params``, ``test_mode``, and
``Command``, a MODEL that runs a plain script with each version's parameters as its arguments.

``log_metric`` reaches the runner through the same event channel a ``Model`` uses (batched, cheap); outside
a runner it does nothing at all.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, Optional

from . import report as _report
from .helper import Model
from .plain import argv_of, test_mode
from .versions import Versions, version_params

__all__ = ["Command", "log_metric", "log_params", "test_mode"]

_Quiet = _report.Reporter  # the reporter outside a runner: these functions leave it alone


def log_metric(name: str, value: float, step: Optional[int] = None, split: str = "train") -> None:
    """Record one point of a curve in the running version (a ValueError names what is wrong with it); outside
    a runner nothing happens."""
    point = _report._point
    if point is not None:
        point(name, value, step, split)


def bound_log_metric() -> Callable[..., None]:
    """What ``from mlpipeline import log_metric`` binds: in a version's child the reporter's point taker itself
    (the reporter of the process's whole life; one Python call less a point), elsewhere ``log_metric``, which
    finds the current reporter at each call (a script imported before a version runs keeps it)."""
    point = _report.own_point()
    return log_metric if point is None else point


def log_params(params: Optional[Dict[str, Any]] = None, **more: Any) -> None:
    """Add parameters to the running version's record (shown by ``show`` and the dashboard; ``-u`` still
    compares the version's own arguments); outside a runner nothing happens."""
    if type(_report._current) is _Quiet:
        return
    from ..core.jsonable import jsonable

    merged = {**(params or {}), **more}
    _report._current.params({str(k): jsonable(v) for k, v in merged.items()})


# version parameters that are the runner's, never a script's arguments
RUNNER_KEYS = ("name", "dataloader", "model_dir_suffix", "order", "resources")
# the 2019 Versions' own, the script's only where a version sets them (a sweep over the batch size must reach
# it); the value every version has from ``Versions(None, 32, 10)`` (given there because that API asked for
# three) is not passed: a script that takes no --batch_size would refuse it
DEFAULTED_KEYS = ("batch_size", "epoc_count")


class Command(Model):
    """``MODEL = Command("train.py")``: each version runs ``python train.py --name value ...`` from its
    parameters (``True`` a flag alone, ``False``/``None`` left out, a list several values), so ``Versions``'
    ``add_version``, ``add_grid``, ``add_random`` and ``add_search`` work over a plain script. ``script`` is
    found beside the declaring script, else from the project root; ``versions`` defaults to the one
    ``Versions`` the declaring script holds. ``args`` are arguments every version gets first."""

    _mlp_command = True

    def __init__(self, script: str, versions: Optional[Versions] = None, args: Any = (), **kwargs: Any):
        caller = sys._getframe(1).f_globals
        here = os.path.dirname(os.path.abspath(caller.get("__file__") or "."))
        if versions is None:
            found = [v for v in list(caller.values()) if isinstance(v, Versions)]
            if len(found) != 1:
                raise ValueError(f"Command({script!r}): {'no' if not found else len(found)} Versions objects in "
                                 f"the script; pass the one to use: Command({script!r}, versions)")
            versions = found[0]
        super().__init__(versions, **kwargs)
        path = script if os.path.isabs(script) else os.path.join(here, script)
        if not os.path.isfile(path) and os.path.isfile(os.path.abspath(script)):
            path = os.path.abspath(script)
        if not os.path.isfile(path):
            raise ValueError(f"Command({script!r}): no such script beside {here} or in {os.getcwd()}; give its "
                             f"path relative to the model script")
        self.script = os.path.abspath(path)
        self.args = [str(a) for a in (args.split() if isinstance(args, str) else args)]
        self._mlp_deps = _read_for_fingerprint(self.script)

    def argv(self, version: Any) -> list:
        """The arguments a version runs with."""
        params = version_params(version)
        defaults = getattr(self.versions, "_default_values", None) or {}
        given = [k for k in DEFAULTED_KEYS if defaults.get(k) is not None and params.get(k) == defaults.get(k)]
        return self.args + argv_of(params, skip=RUNNER_KEYS + tuple(given))

    def train_model(self, input_fn: Any, steps: int) -> None:  # never called: the runner runs the command
        raise NotImplementedError("a Command's versions run its script")

    def evaluate_model(self, input_fn: Any, steps: int) -> None:
        raise NotImplementedError("a Command's versions run its script")


def _read_for_fingerprint(script: str) -> list:
    """Read the command's script and the local modules it imports while the declaring script loads, so
    ``-u`` sees an edit to any of them (loading records the files a script reads)."""
    from .plain import dependencies, read_source, read_tree

    local, _ = dependencies(script, read_tree(script))
    for file in local:
        read_source(file)
    return local

