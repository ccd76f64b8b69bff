"""``MetricsCallback``: every Keras epoch's logs recorded as metrics.

    from mlpipeline.keras import MetricsCallback
    model.fit(data, epochs=10, callbacks=[MetricsCallback()])

Each entry of the epoch's ``logs`` becomes a metric row with step = epoch
(``val_`` entries go to split ``val``), written to the ledger as the epoch ends.
Needs Keras (standalone Keras 3, or TensorFlow's ``tf.keras``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from . import report as _report


def _callback_base() -> type:
    try:
        import keras  # Keras 3, or the one TensorFlow bundles

        return keras.callbacks.Callback
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.keras.callbacks.Callback
    except ImportError:
        raise ImportError("mlpipeline.keras needs Keras: pip install 'mlpipeline[tf]' (or keras)") from None


class MetricsCallback(_callback_base()):  # type: ignore[misc]
    """Logs every epoch's metrics through mlpipeline (ledger + terminal)."""

    def __init__(self, prefix: str = "", log_batches_every: Optional[int] = None):
        super().__init__()
        self.prefix = prefix
        self.log_batches_every = log_batches_every
        self._batches = 0

    def _record(self, logs: Optional[Dict[str, Any]], step: int) -> None:
        reporter = _report.current()
        for name, value in (logs or {}).items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            split = "val" if name.startswith("val_") else "train"
            reporter.metric(self.prefix + (name[4:] if split == "val" else name), number, step=step, split=split)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._record(logs, epoch)
        shown = "  ".join(f"{k}={float(v):.4f}" for k, v in (logs or {}).items()
                          if isinstance(v, (int, float)) or hasattr(v, "__float__"))
        _report.current().log(f"epoch {epoch}: {shown}")

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._batches += 1
        if self.log_batches_every and self._batches % self.log_batches_every == 0:
            self._record({f"batch_{k}": v for k, v in (logs or {}).items()}, self._batches)
