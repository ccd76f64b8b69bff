"""mlpipeline: run every version of your model scripts, as a test or as a queued batch.

Kept import-light on purpose: ``mlpipeline --help`` must not pull in numpy,
TensorFlow, tabulate or watchdog.
"""

__version__ = "3.0.0.dev0"

# What any training script imports (``from mlpipeline import log_metric``), loaded on first use: ``--help``
# stays import-light.
_API = {"log_metric", "log_params", "test_mode", "Command"}
# What 2.0a1 ... 2.0a7.post1 scripts import from here (``from mlpipeline import Versions, iterator``).
_API_2X = {"Versions": "versions2x", "MetricContainer": "metrics", "iterator": "iterate", "log": "utils",
           # and what 2.0a4.post8 alone also put here (gone again in 2.0a4.post9)
           "ExperimentABC": "experiment", "DataLoaderABC": "experiment", "DataLoaderCallableWrapper": "experiment",
           "ExecutionModeKeys": "modes", "ExperimentModeKeys": "modes", "version_parameters": "versions2x",
           "add_script_dir_to_PATH": "utils"}
# For notebooks: the ledger as pandas DataFrames (pandas is imported when they are called).
_NOTEBOOK = {"runs", "curves"}


def __getattr__(name: str):
    if name in _API:
        from .script import command

        # in a version's child, ``log_metric`` is the running reporter's point taker itself (one call less)
        return command.bound_log_metric() if name == "log_metric" else getattr(command, name)
    if name in _NOTEBOOK:
        from .read import frames

        return getattr(frames, name)
    if name in _API_2X:
        import importlib

        return getattr(importlib.import_module(f".script.{_API_2X[name]}", __name__), name)
    raise AttributeError(f"module 'mlpipeline' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _API | set(_API_2X) | _NOTEBOOK)
