"""Loggers for the frameworks people train with, each a thin bridge to ``mlpipeline.log_metric``:
``lightning.MLPipelineLogger`` (PyTorch Lightning), ``transformers.MLPipelineCallback`` (Hugging Face
``Trainer``); the Keras callback is ``mlpipeline.keras``. Each works in a plain script and inside a ``Model``,
and does nothing outside a runner."""

SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
          "test": "test", "eval": "eval", "evaluation": "eval"}


def split_name(key: str, default: str = "train") -> tuple:
    """``val_loss``, ``val/loss`` or ``loss/val`` as (``val``, ``loss``); a name without a known split prefix
    or suffix keeps ``default``."""
    for sep in ("/", "_", "-"):
        head, found, rest = key.partition(sep)
        if found and rest and head.lower() in SPLITS:
            return SPLITS[head.lower()], rest
        rest, found, tail = key.rpartition(sep)
        if found and rest and tail.lower() in SPLITS and sep == "/":
            return SPLITS[tail.lower()], rest
    return default, key
