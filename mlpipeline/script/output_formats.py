"""How cached outputs become bytes and come back, without pickle.

numpy arrays: ``.npy`` (``allow_pickle=False``). pandas DataFrames and Series: ``.npz``,
a zip (stored, with fixed timestamps, so equal frames give equal bytes) of one ``.npy``
per column, mask, category codes and index, and ``header.json`` naming their dtypes.
Plain JSON data: ``.json``. A value that would not come back as it went in (an object
array, a column mixing text and numbers, a MultiIndex, a tuple in JSON data) is refused
with a message saying how to convert it. numpy and pandas are imported only here, and
only when a value needs them.
"""
from __future__ import annotations

import io
import json
import sys
import zipfile
from typing import Any, Dict, List, NamedTuple, Tuple

from ..core.errors import MLPipelineError
from ..core.layout import OUTPUT_EXTENSIONS

FRAME_FORMAT = "mlpipeline-frame-1"
EXTENSIONS = OUTPUT_EXTENSIONS
SUMMARY_WIDTH = 80


class OutputError(MLPipelineError):
    """A value ``save_output`` cannot store, or a stored output that cannot be read."""


class Encoded(NamedTuple):
    kind: str      # array, frame, series or json
    data: bytes
    summary: str   # dtype and shape, for listings

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.kind]


def encode(value: Any) -> Encoded:
    """``value`` as bytes of its kind; raises OutputError for what cannot be stored losslessly."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series)):
        return _encode_pandas(value, pandas)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        return _encode_array(numpy.asarray(value))
    if hasattr(value, "__array__") and not isinstance(value, (str, bytes, list, tuple, dict, int, float)):
        import numpy as np  # a tensor (torch, TensorFlow, JAX)

        try:
            array = np.asarray(value)
        except Exception as exc:  # noqa: BLE001 - a framework's own error type
            raise OutputError(f"a {type(value).__name__} does not convert to a numpy array ({exc}); pass "
                              f"value.detach().cpu().numpy() or np.asarray(value)") from None
        return _encode_array(array)
    return _encode_json(value)


def decode(kind: str, data: bytes) -> Any:
    """What ``encode`` stored, back as a numpy array, a DataFrame or Series, or JSON data."""
    if kind == "array":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "json":
        return json.loads(data.decode("utf-8"))
    if kind in ("frame", "series"):
        return _decode_pandas(data)
    raise OutputError(f"unknown output kind {kind!r} (written by a newer mlpipeline?); upgrade mlpipeline")


# -- numpy arrays -------------------------------------------------------------------------------------------

def _npy(array: Any, what: str) -> bytes:
    if array.dtype.hasobject:
        raise OutputError(f"{what} holds Python objects (dtype {array.dtype}), which cannot be stored without "
                          f"pickle; convert it first (e.g. .astype(str) or .astype(float))")
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _encode_array(array: Any) -> Encoded:
    return Encoded("array", _npy(array, "the array"), f"array {array.dtype} {array.shape}")


# -- plain JSON data ----------------------------------------------------------------------------------------

def _encode_json(value: Any) -> Encoded:
    what = type(value).__name__
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise OutputError("JSON data cannot hold NaN or infinity; use None, or store the numbers as a numpy "
                          "array") from None
    except TypeError as exc:
        raise OutputError(f"a {what} is neither a numpy array, a pandas DataFrame or Series, nor plain JSON data "
                          f"({exc}); convert it (np.asarray, pd.DataFrame, or dicts, lists, str and numbers)") from None
    if json.loads(text) != value:
        raise OutputError(f"this {what} would not come back as it is from JSON (tuples come back as lists, dict "
                          f"keys as str); use lists and str keys")
    if isinstance(value, dict):
        summary = f"json dict, {len(value)} key{'' if len(value) == 1 else 's'}"
    elif isinstance(value, list):
        summary = f"json list, {len(value)} item{'' if len(value) == 1 else 's'}"
    else:
        summary = f"json {what} {_cut(text, 40)}"
    return Encoded("json", text.encode("utf-8"), summary)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# -- pandas DataFrames and Series ---------------------------------------------------------------------------

def _zip(members: List[Tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _name(value: Any, what: str) -> Any:
    """A Series' or an index's name, kept as JSON: None, str, or a finite number."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        value = item()
    if value is None or isinstance(value, (str, bool, int)) or (isinstance(value, float) and value == value
                                                                 and abs(value) != float("inf")):
        return value
    raise OutputError(f"{what} is a {type(value).__name__} ({_cut(repr(value), 40)}); only str, numbers or None "
                      f"are kept as names: rename it")


class _Writer:
    """Collects the ``.npy`` members of one frame under their prefixes."""

    def __init__(self, pandas: Any):
        self.pd = pandas
        self.arrays: Dict[str, bytes] = {}

    def put(self, prefix: str, array: Any, what: str) -> None:
        self.arrays[prefix + ".npy"] = _npy(array, what)

    def values(self, series: Any, prefix: str, what: str) -> Dict[str, Any]:
        """One column (or index) as arrays; returns how to read it back."""
        pd = self.pd
        import numpy as np

        dtype = series.dtype
        spec: Dict[str, Any] = {"dtype": str(dtype)}
        if isinstance(dtype, pd.CategoricalDtype):
            spec.update(how="category", ordered=bool(dtype.ordered),
                        categories=self.values(pd.Series(dtype.categories, dtype=dtype.categories.dtype),
                                               prefix + ".categories", f"{what}'s categories"))
            self.put(prefix + ".codes", series.cat.codes.to_numpy(), what)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            spec.update(how="datetimetz", tz=str(dtype.tz))
            self.put(prefix, series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(), what)
        elif (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype):
            spec["how"] = "text"
            texts, missing = self._texts(series, what)
            self.put(prefix, np.array(texts, dtype=str), what)
            if any(missing):
                spec["missing"] = True
                self.put(prefix + ".missing", np.array(missing, dtype=np.uint8), what)
        elif isinstance(dtype, np.dtype):
            spec["how"] = "numpy"
            self.put(prefix, series.to_numpy(), what)
        elif isinstance(series.array, (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)):
            spec["how"] = "masked"
            zero = np.zeros((), dtype=dtype.numpy_dtype)[()]
            self.put(prefix, series.to_numpy(dtype=dtype.numpy_dtype, na_value=zero), what)
            self.put(prefix + ".missing", series.isna().to_numpy(), what)
        else:
            raise OutputError(f"{what} has dtype {dtype}, which is not stored without pickle; convert it "
                              f"(e.g. .astype(str) or .astype(float))")
        return spec

    def _texts(self, series: Any, what: str) -> Tuple[List[str], List[int]]:
        """Text values, and per row 0 (present), 1 (None), 2 (NaN) or 3 (pd.NA)."""
        texts, missing = [], []
        for value in series.tolist():
            if isinstance(value, str):
                if value.endswith("\0"):
                    raise OutputError(f"{what} holds text ending in a NUL character, which .npy text drops; "
                                      f"strip it or store the column as bytes in an array")
                texts.append(value)
                missing.append(0)
                continue
            if value is None:
                code = 1
            elif isinstance(value, float) and value != value:
                code = 2
            elif value is self.pd.NA:
                code = 3
            else:
                raise OutputError(f"{what} mixes text with {type(value).__name__} values ({_cut(repr(value), 30)}); "
                                  f"only text (and missing values) is stored for an object column without "
                                  f"pickle: convert it (e.g. .astype(str) or .astype(float))")
            texts.append("")
            missing.append(code)
        return texts, missing

    def index(self, index: Any, prefix: str, what: str) -> Dict[str, Any]:
        pd = self.pd
        if isinstance(index, pd.MultiIndex):
            raise OutputError(f"{what} is a MultiIndex, which is not stored; reset_index() it first")
        name = _name(index.name, f"{what}'s name")
        if isinstance(index, pd.RangeIndex):
            return {"range": [index.start, index.stop, index.step], "name": name}
        if index.dtype == object and not all(isinstance(label, str) for label in index):  # mixed labels: 'a', 7
            return {"labels": [_name(label, f"{what}: a label") for label in index], "name": name}
        return {"values": self.values(pd.Series(index, dtype=index.dtype), prefix, what), "name": name}


def _encode_pandas(value: Any, pd: Any) -> Encoded:
    writer = _Writer(pd)
    header: Dict[str, Any] = {"format": FRAME_FORMAT}
    if isinstance(value, pd.Series):
        kind = "series"
        header["name"] = _name(value.name, "the Series' name")
        header["data"] = [writer.values(value, "c0", "the Series")]
        summary = f"series {len(value)} rows, {value.dtype}" + (f" ({value.name})" if value.name is not None else "")
    else:
        kind = "frame"
        header["columns"] = writer.index(value.columns, "columns", "the column labels")
        header["data"] = [writer.values(value.iloc[:, i], f"c{i}", f"column {value.columns[i]!r}")
                          for i in range(value.shape[1])]
        described = ", ".join(f"{c} {t}" for c, t in zip(value.columns, value.dtypes))
        summary = _cut(f"frame {value.shape[0]}x{value.shape[1]}: {described}", SUMMARY_WIDTH)
    header["index"] = writer.index(value.index, "index", "the index")
    head = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return Encoded(kind, _zip([("header.json", head)] + sorted(writer.arrays.items())), summary)


class _Reader:
    def __init__(self, archive: zipfile.ZipFile, pandas: Any):
        self.archive, self.pd = archive, pandas

    def array(self, prefix: str) -> Any:
        import numpy as np

        return np.load(io.BytesIO(self.archive.read(prefix + ".npy")), allow_pickle=False)

    def values(self, spec: Dict[str, Any], prefix: str) -> Any:
        pd, how = self.pd, spec["how"]
        if how == "numpy":
            return self.array(prefix)
        if how == "text":
            values = self.array(prefix).astype(object)
            if spec.get("missing"):
                codes = self.array(prefix + ".missing")
                for code, missing in ((1, None), (2, float("nan")), (3, pd.NA)):
                    values[codes == code] = missing
            return values if spec["dtype"] == "object" else pd.array(values, dtype=spec["dtype"])
        if how == "masked":
            values = pd.array(self.array(prefix), dtype=spec["dtype"])
            values[self.array(prefix + ".missing")] = pd.NA
            return values
        if how == "category":
            categories = self.values(spec["categories"], prefix + ".categories")
            dtype = pd.CategoricalDtype(pd.Index(categories, dtype=categories.dtype), ordered=spec["ordered"])
            return pd.Categorical.from_codes(self.array(prefix + ".codes"), dtype=dtype)
        if how == "datetimetz":
            return pd.Series(self.array(prefix)).dt.tz_localize("UTC").dt.tz_convert(spec["tz"]).array
        raise OutputError(f"unknown column encoding {how!r} (written by a newer mlpipeline?); upgrade mlpipeline")

    def index(self, spec: Dict[str, Any], prefix: str) -> Any:
        if "range" in spec:
            return self.pd.RangeIndex(*spec["range"], name=spec["name"])
        if "labels" in spec:
            return self.pd.Index(spec["labels"], dtype=object, name=spec["name"])
        values = self.values(spec["values"], prefix)
        return self.pd.Index(values, dtype=values.dtype, name=spec["name"])


def _decode_pandas(data: bytes) -> Any:
    import pandas as pd

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(archive.read("header.json"))
        if header.get("format") != FRAME_FORMAT:
            raise OutputError(f"frame format {header.get('format')!r} is not one this mlpipeline reads; upgrade it")
        reader = _Reader(archive, pd)
        index = reader.index(header["index"], "index")
        columns = [reader.values(spec, f"c{i}") for i, spec in enumerate(header["data"])]
        if "columns" not in header:
            values = columns[0]
            return pd.Series(values, index=index, dtype=values.dtype, name=header["name"])
        data_by_position = {i: pd.Series(values, index=index, dtype=values.dtype) for i, values in enumerate(columns)}
        frame = pd.DataFrame(data_by_position, index=index) if columns else pd.DataFrame(index=index)
        frame.columns = reader.index(header["columns"], "columns")
        return frame

