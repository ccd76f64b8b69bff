"""``MetricsCallback``: every Keras epoch's logs recorded as metrics (``mlpipeline.script.keras``).

    from mlpipeline.keras import MetricsCallback
    model.fit(data, epochs=10, callbacks=[MetricsCallback()])
"""
from .script.keras import MetricsCallback  # noqa: F401

__all__ = ["MetricsCallback"]
