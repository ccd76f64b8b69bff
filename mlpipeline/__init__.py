"""mlpipeline: run every version of your model scripts, as a test or as a queued batch.

Kept import-light on purpose: ``mlpipeline --help`` must not pull in numpy,
TensorFlow, tabulate or watchdog.
"""

__version__ = "3.0.0.dev0"

# What any training script imports (``from mlpipeline import log_metric``), loaded on first use: ``--help``
# stays import-light.
_API = {"log_metric", "log_params", "test_mode", "Command"}


def __getattr__(name: str):
    if name in _API:
        from .script import command

        return getattr(command, name)
    raise AttributeError(f"module 'mlpipeline' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _API)
