"""mlpipeline: run every version of your model scripts, as a test or as a queued batch.

Kept import-light on purpose: ``mlpipeline --help`` must not pull in numpy,
TensorFlow, tabulate or watchdog.
"""

__version__ = "2.0.0.dev0"

import logging as _logging

# The library never prints: without a handler configured by the application,
# its module loggers stay silent instead of falling back to bare stderr lines.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
