"""Rows of features and a target, split into train and test and served in batches.

``TableLoader`` is the base of every loader in ``mlpipeline.data``; the
column encoding that turns named columns (a DataFrame, a CSV file, a query's
rows) into ``x`` and ``y`` lives here too.
"""
from __future__ import annotations

import decimal
import hashlib
import importlib
import math
import numbers
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..core.errors import MLPipelineError
from ..script.helper import DataLoader
from ..script.utils import ModeKeys
from ._fingerprint import combine_fingerprints, hash_array, register, registered

# Cells a CSV file or a query leaves empty, as pandas reads them by default.
MISSING = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "#N/A", "<NA>"})


class DataError(MLPipelineError, ValueError):
    """A loader given data or options it cannot use."""


class MissingDependency(MLPipelineError, ImportError):
    """A conversion or a source that needs a package that is not installed."""


def _require(module: str, extra: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        install = f"pip install 'mlpipeline[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependency(f"{what} needs {module}, which is not installed; install it with {install}") from None


Split = Tuple[Sequence[int], Sequence[int]]


def _split_indices(n: int, test_size: Union[float, int], split: Optional[Split], shuffle: bool,
                   seed: Optional[int], where: str) -> Tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): an explicit ``split`` as given, else each in data order."""
    if split is not None:
        try:
            train, test = (np.asarray(part, dtype=np.int64).reshape(-1) for part in split)
        except (TypeError, ValueError):
            raise DataError(f"{where}: split should be (train_indices, test_indices), got {split!r}") from None
        for name, part in (("train", train), ("test", test)):
            if part.size and (part.min() < 0 or part.max() >= n):
                raise DataError(f"{where}: split's {name} indices should be row numbers from 0 to {n - 1}")
        if np.intersect1d(train, test).size:
            raise DataError(f"{where}: split's train and test indices overlap; a row is either train or test")
        return train, test
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise DataError(f"{where}: test_size should be a fraction (0.2) or a row count (100), got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        if not 0 <= test_size <= n:
            raise DataError(f"{where}: test_size={test_size} rows, but there are {n} rows")
        n_test = int(test_size)
    else:
        if not 0.0 <= test_size < 1.0:
            raise DataError(f"{where}: test_size={test_size} should be a fraction in [0, 1) or a row count")
        n_test = math.ceil(n * test_size)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    return np.sort(order[:n - n_test]), np.sort(order[n - n_test:])


def _numbers(values: np.ndarray) -> Tuple[Optional[np.ndarray], bool, np.ndarray]:
    """(values as float64 with NaN where missing, or None if a value is not a number;
    whether all are integers; the missing mask)."""
    if values.dtype.kind in "biuf":
        numbers_ = values.astype(np.float64)
        return numbers_, values.dtype.kind != "f", np.isnan(numbers_)
    if values.dtype.kind not in "OUS":
        raise DataError(f"a column of dtype {values.dtype} cannot be used as it is; convert it to numbers or strings")
    out, missing, integral = np.empty(len(values)), np.zeros(len(values), dtype=bool), True
    for i, value in enumerate(values.tolist()):
        if _is_missing(value):
            out[i], missing[i] = np.nan, True
        elif isinstance(value, numbers.Integral):
            out[i] = int(value)
        elif isinstance(value, (numbers.Real, decimal.Decimal)):
            out[i], integral = float(value), False
        elif isinstance(value, str):
            text = value.strip()
            try:
                out[i] = int(text)
            except ValueError:
                try:
                    out[i], integral = float(text), False
                except ValueError:
                    return None, False, np.array([_is_missing(v) for v in values.tolist()], dtype=bool)
        else:
            return None, False, np.array([_is_missing(v) for v in values.tolist()], dtype=bool)
    return out, integral, missing


def _is_missing(value: Any) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, float):
        return value != value
    return isinstance(value, str) and value.strip() in MISSING


def _encode(table: Dict[str, np.ndarray], target: Optional[str], features: Optional[Sequence[str]], dropna: bool,
            where: str) -> Tuple[np.ndarray, Optional[np.ndarray], List[str], Optional[List[Any]], int]:
    """(x float32, y, feature names, target classes, rows dropped) from named columns.
    Number columns stay numbers; others are one-hot encoded (``island=Biscoe``);
    a target of strings becomes class indices into ``classes``."""
    names = list(table)
    if target is not None and target not in table:
        raise DataError(f"{where}: no column {target!r} for the target (columns: {', '.join(names)})")
    chosen = [c for c in names if c != target] if features is None else list(features)
    unknown = [c for c in chosen if c not in table]
    if unknown:
        raise DataError(f"{where}: no column {', '.join(map(repr, unknown))} (columns: {', '.join(names)})")
    if target is not None and target in chosen:
        raise DataError(f"{where}: the target {target!r} is also a feature; leave it out of features")
    if not chosen:
        raise DataError(f"{where}: no feature columns (columns: {', '.join(names)})")
    parsed = {}
    for column in chosen + ([target] if target is not None else []):
        try:
            parsed[column] = _numbers(np.asarray(table[column]))
        except DataError as exc:
            raise DataError(f"{where}: column {column!r}: {exc}") from None
    rows = len(next(iter(table.values())))
    missing = np.zeros(rows, dtype=bool)
    for _, _, gaps in parsed.values():
        missing |= gaps
    keep = ~missing if dropna else np.ones(rows, dtype=bool)
    blocks, feature_names = [], []
    for column in chosen:
        values, _, _ = parsed[column]
        if values is not None:
            blocks.append(values[keep, None].astype(np.float32))
            feature_names.append(column)
            continue
        text = np.array([None if _is_missing(v) else str(v) for v in np.asarray(table[column])[keep].tolist()],
                        dtype=object)
        categories = sorted({v for v in text.tolist() if v is not None})
        blocks.append(np.stack([text == c for c in categories], axis=1).astype(np.float32)
                      if categories else np.zeros((int(keep.sum()), 0), dtype=np.float32))
        feature_names += [f"{column}={c}" for c in categories]
    x = np.concatenate(blocks, axis=1)
    if target is None:
        return x, None, feature_names, None, int(rows - keep.sum())
    values, integral, gaps = parsed[target]
    if not dropna and gaps.any():
        raise DataError(f"{where}: the target {target!r} is missing in {int(gaps.sum())} rows; keep dropna=True")
    classes: Optional[List[Any]] = None
    if values is not None:
        y = values[keep].astype(np.int64 if integral else np.float32)
    else:
        labels = [str(v) for v in np.asarray(table[target])[keep].tolist()]
        classes = sorted(set(labels))
        index = {label: i for i, label in enumerate(classes)}
        y = np.array([index[label] for label in labels], dtype=np.int64)
    return x, y, feature_names, classes, int(rows - keep.sum())


class TableLoader(DataLoader):
    """Base of the loaders here: rows of features ``x`` (and a target ``y``), split
    into train and test rows, served in batches; subclasses load and call ``_setup``.

    Options: ``test_size`` (a fraction, or a row count) or an explicit
    ``split=(train_indices, test_indices)``; ``shuffle`` (a shuffled split, and
    train batches in a new order each time the train input is asked for with
    ``mode=ModeKeys.TRAIN``); ``seed`` (None: another split and order in every
    process); ``batch_size`` (the default of every input and conversion: keep it
    equal to the version's batch size, which the runner's step count uses).
    """

    kind = "data"
    x: np.ndarray
    y: Optional[np.ndarray]
    train_indices: np.ndarray
    test_indices: np.ndarray

    def __init__(self, *, test_size: Union[float, int] = 0.2, split: Optional[Split] = None, shuffle: bool = True,
                 seed: Optional[int] = 0, batch_size: int = 32):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"{type(self).__name__}: batch_size should be a positive integer, got {batch_size!r}")
        self.test_size = test_size
        self.split = split
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.batch_size = int(batch_size)
        self.feature_names: List[str] = []
        self.classes: Optional[List[Any]] = None
        self.fingerprint = ""
        self._epochs = 0

    def _setup(self, x: np.ndarray, y: Optional[np.ndarray], digest: str, source: str) -> None:
        where = f"{type(self).__name__}({source})"
        if y is not None and len(y) != len(x):
            raise DataError(f"{where}: x has {len(x)} rows but y has {len(y)}; give one target per row")
        self.x = x
        self.y = y
        self.train_indices, self.test_indices = _split_indices(len(x), self.test_size, self.split, self.shuffle,
                                                               self.seed, where)
        self.fingerprint = f"{self.kind}:{digest}"
        register(self.fingerprint)
        self.add_to_summery(f"{where}: {len(self.train_indices)} train / {len(self.test_indices)} test rows, "
                            f"x {tuple(x.shape[1:])} {x.dtype}"
                            + (f", y {y.dtype}" if y is not None else "")
                            + (f" ({len(self.classes)} classes)" if self.classes else "")
                            + f", data {self.fingerprint[:len(self.kind) + 13]}")

    # the DataLoader API the runner calls
    def get_train_sample_count(self) -> int:
        return len(self.train_indices)

    def get_test_sample_count(self) -> int:
        return len(self.test_indices)

    def get_train_input(self, mode: str = ModeKeys.TRAIN, batch_size: Optional[int] = None,
                        **kwargs: Any) -> Iterator[Any]:
        """A fresh generator of ``(x, y)`` train batches (``x`` alone without a target), in a new
        order each call when ``mode`` is TRAIN and ``shuffle`` (else in data order)."""
        order = self.train_indices
        if mode == ModeKeys.TRAIN and self.shuffle:
            order = self._rng(self._epochs).permutation(order)
            self._epochs += 1
        return self._batches(order, batch_size or self.batch_size)

    def get_test_input(self, batch_size: Optional[int] = None, **kwargs: Any) -> Iterator[Any]:
        """A fresh generator of test batches, in data order."""
        return self._batches(self.test_indices, batch_size or self.batch_size)

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng(None if self.seed is None else [self.seed, epoch])

    def _batches(self, order: np.ndarray, batch_size: int) -> Iterator[Any]:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            yield (self.x[rows], self.y[rows]) if self.y is not None else self.x[rows]

    def arrays(self, split: str = "train") -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(x, y) of ``split`` ("train", "test" or "all") as numpy arrays, in data order."""
        rows = {"train": self.train_indices, "test": self.test_indices, "all": np.arange(len(self.x))}.get(split)
        if rows is None:
            raise DataError(f"{type(self).__name__}: split should be 'train', 'test' or 'all', got {split!r}")
        return self.x[rows], (self.y[rows] if self.y is not None else None)

    # conversions
    def to_tf_dataset(self, split: str = "train", batch_size: Optional[int] = None) -> Any:
        """``split`` as a batched ``tf.data.Dataset`` of (x, y); the train split is reshuffled every epoch."""
        tf = _require("tensorflow", "tf", f"{type(self).__name__}.to_tf_dataset")
        x, y = self.arrays(split)
        dataset = tf.data.Dataset.from_tensor_slices((x, y) if y is not None else x)
        if split == "train" and self.shuffle and len(x):
            dataset = dataset.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size or self.batch_size)

    def to_torch(self, split: str = "train", batch_size: Optional[int] = None, shuffle: Optional[bool] = None) -> Any:
        """``split`` as a ``torch.utils.data.DataLoader`` of (x, y) tensors; floating
        arrays become torch's default dtype, integer targets int64 (what its losses take).
        ``shuffle`` defaults to the loader's for the train split, off for the others."""
        torch = _require("torch", "torch", f"{type(self).__name__}.to_torch")
        from torch.utils.data import DataLoader as TorchDataLoader
        from torch.utils.data import TensorDataset

        def tensor(values: np.ndarray) -> Any:
            out = torch.from_numpy(np.ascontiguousarray(values))
            if out.is_floating_point():
                return out.to(torch.get_default_dtype())
            return out.long() if values.dtype.kind in "iub" else out

        x, y = self.arrays(split)
        shuffle = (split == "train" and self.shuffle) if shuffle is None else shuffle
        generator = torch.Generator().manual_seed(self.seed) if shuffle and self.seed is not None else None
        tensors = [tensor(x)] + ([tensor(y)] if y is not None else [])
        return TorchDataLoader(TensorDataset(*tensors), batch_size=batch_size or self.batch_size, shuffle=shuffle,
                               generator=generator)


class ArrayLoader(TableLoader):
    """Numpy arrays (or anything ``np.asarray`` takes): ``ArrayLoader(x, y, test_size=0.2)``.
    Fingerprint: sha256 of each array's dtype, shape and bytes."""

    kind = "array"

    def __init__(self, x: Any, y: Any = None, **options: Any):
        super().__init__(**options)
        x = np.asarray(x)
        y = None if y is None else np.asarray(y)
        if x.ndim == 0:
            raise DataError(f"ArrayLoader: x should have one row per sample, got a scalar {x!r}")
        digest = hashlib.sha256()
        hash_array(digest, "x", x)
        if y is not None:
            hash_array(digest, "y", y)
        self._setup(x, y, digest.hexdigest(), f"{x.shape[0]} rows")


class _ColumnLoader(TableLoader):
    """Named columns in, features and a target out (see ``_encode``)."""

    def _setup_table(self, table: Dict[str, np.ndarray], target: Optional[str], features: Optional[Sequence[str]],
                     dropna: bool, digest: str, source: str) -> None:
        where = f"{type(self).__name__}({source})"
        if not table:
            raise DataError(f"{where}: no columns")
        x, y, self.feature_names, self.classes, dropped = _encode(table, target, features, dropna, where)
        self.target = target
        if dropped:
            self.add_to_summery(f"{where}: dropped {dropped} rows with a missing value")
        self._setup(x, y, digest, source)


def version_fingerprint(loader: Any, script: Optional[str] = None, since: int = 0) -> Optional[str]:
    """The data a version trained on: its dataloader's fingerprint (or those of the
    loaders its dataloader holds) with the loaders created since registry entry
    ``since`` (in the version's hooks); else every loader ``script`` created."""
    own = _held_fingerprints(loader) + registered(since)
    if own:
        return combine_fingerprints(own)
    return combine_fingerprints(registered(script=script)) if script else None


def _held_fingerprints(loader: Any) -> List[str]:
    if isinstance(loader, TableLoader):
        return [loader.fingerprint]
    try:
        values = list(vars(loader).values())
    except TypeError:
        return []
    found = []
    for value in values:
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        found += [item.fingerprint for item in items if isinstance(item, TableLoader)]
    return found
