"""``MLPipelineLogger``: a PyTorch Lightning logger that records into the running version.

    from mlpipeline.integrations.lightning import MLPipelineLogger
    trainer = L.Trainer(logger=MLPipelineLogger(), max_epochs=args.epochs)

Metrics become curves (``val_loss`` and ``val/loss`` in split ``val``, ``train_loss`` in ``train``, others in
``train``), ``save_hyperparameters()`` and ``log_hyperparams`` add to the run's parameters, checkpoints go to
the version's model dir (``<model dir>/checkpoints``), and in test mode the Trainer is built with
``fast_dev_run`` (one batch of each loop) unless the script sets it. Works with ``lightning`` or
``pytorch_lightning``; outside a runner it records nothing.
"""
from __future__ import annotations

import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older package name
    from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
    from pytorch_lightning.utilities import rank_zero_only

from ..script.command import log_metric, log_params
from ..script.plain import ENV_MODEL_DIR, test_mode
from . import split_name

FAST_DEV_RUN = "PL_TRAINER_FAST_DEV_RUN"  # Lightning's Trainer reads its defaults from PL_TRAINER_* variables

__all__ = ["MLPipelineLogger"]


class MLPipelineLogger(Logger):
    """Lightning metrics and hyperparameters into mlpipeline's ledger. ``save_dir``: where checkpoints go
    (default: the version's model dir)."""

    def __init__(self, save_dir: Optional[str] = None):
        super().__init__()
        self._save_dir = save_dir or os.environ.get(ENV_MODEL_DIR) or None
        if test_mode():
            os.environ.setdefault(FAST_DEV_RUN, "1")

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> Optional[str]:
        return self._save_dir

    @property
    def root_dir(self) -> Optional[str]:
        return self._save_dir

    @property
    def log_dir(self) -> Optional[str]:
        return self._save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> None:
        return None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        for key, value in metrics.items():
            if key == "epoch":
                continue
            split, name = split_name(str(key))
            number = value.item() if hasattr(value, "item") else value
            log_metric(name, float(number), step=step, split=split)

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace], *args: Any, **kwargs: Any) -> None:
        plain = vars(params) if isinstance(params, Namespace) else dict(params or {})
        log_params(_flat(plain))


def _flat(params: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    found: Dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(_flat(value, name + "."))
        elif isinstance(value, Namespace):
            found.update(_flat(vars(value), name + "."))
        else:
            found[name] = value
    return found
