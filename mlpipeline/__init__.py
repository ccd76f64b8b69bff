"""mlpipeline: run every version of your model scripts, as a test or as a queued batch.

Kept import-light on purpose: ``mlpipeline --help`` must not pull in numpy,
TensorFlow, tabulate or watchdog.
"""

__version__ = "3.0.0.dev0"
