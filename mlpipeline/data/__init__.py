"""``mlpipeline.data``: ready-made DataLoaders for numpy arrays, DataFrames, CSV files and SQL queries.

Each loader reads its data once, splits it into train and test rows, serves
batches of ``(x, y)`` numpy arrays to the runner's hooks, converts to a
``tf.data.Dataset`` (``to_tf_dataset``) or a ``torch.utils.data.DataLoader``
(``to_torch``) on demand, and fingerprints its data. The runner records the
fingerprint of what each version read on its run (``data_fingerprint``), so
``mlpipeline compare`` shows which versions trained on different data.
"""
from ._fingerprint import combine_fingerprints, registry_size, run_fingerprint
from ._sources import CSVLoader, FrameLoader, SQLLoader
from ._table import ArrayLoader, DataError, MissingDependency, TableLoader, version_fingerprint

__all__ = ["ArrayLoader", "CSVLoader", "DataError", "FrameLoader", "MissingDependency", "SQLLoader", "TableLoader",
           "combine_fingerprints", "registry_size", "run_fingerprint", "version_fingerprint"]
