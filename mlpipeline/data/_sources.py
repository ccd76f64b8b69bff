"""The loaders that read named columns: pandas DataFrames, CSV files and SQL queries."""
from __future__ import annotations

import csv
import hashlib
import os
import pathlib
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..core.errors import display
from ..script.loading import file_sha256
from ._fingerprint import hash_array
from ._table import DataError, MissingDependency, _ColumnLoader, _require

__all__ = ["CSVLoader", "FrameLoader", "SQLLoader"]


class FrameLoader(_ColumnLoader):
    """A pandas DataFrame: ``FrameLoader(df, target="species", features=None)`` (features:
    every column but the target). Number columns stay numbers, others are one-hot
    encoded; a string target becomes class indices (``loader.classes``). ``dropna``
    drops rows with a missing value. Fingerprint: sha256 of the used columns'
    names, dtypes and values."""

    kind = "frame"

    def __init__(self, frame: Any, target: Optional[str] = None, features: Optional[Sequence[str]] = None,
                 dropna: bool = True, **options: Any):
        super().__init__(**options)
        if not hasattr(frame, "columns") or not hasattr(frame, "__getitem__"):
            raise DataError(f"FrameLoader: expected a pandas DataFrame, got {type(frame).__name__}")
        used = [str(c) for c in frame.columns] if features is None else list(features) + ([target] if target else [])
        table = {str(c): frame[c].to_numpy() for c in frame.columns}
        digest = hashlib.sha256()
        for column in used:
            if column in table:
                hash_array(digest, column, table[column])
        self._setup_table(table, target, features, dropna, digest.hexdigest(), f"{len(frame)} rows")


class CSVLoader(_ColumnLoader):
    """A CSV file with a header row: ``CSVLoader("data/penguins.csv", target="species")``,
    read with pandas when it is installed (``read_options`` go to ``read_csv``), else
    with the csv module. Columns as ``FrameLoader``. Fingerprint: sha256 of the file."""

    kind = "csv"

    def __init__(self, path: Union[str, os.PathLike[str]], target: Optional[str] = None,
                 features: Optional[Sequence[str]] = None, dropna: bool = True, delimiter: str = ",",
                 read_options: Optional[Dict[str, Any]] = None, **options: Any):
        super().__init__(**options)
        self.path = os.fspath(path)
        shown = display(self.path)
        try:
            digest = file_sha256(self.path)
            table = _read_csv(self.path, delimiter, read_options or {})
        except OSError as exc:
            raise DataError(f"CSVLoader: {shown}: cannot read ({exc.strerror or exc})") from None
        self._setup_table(table, target, features, dropna, digest, shown)


def _read_csv(path: str, delimiter: str, read_options: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """The file's columns by name: with pandas when it is installed, else with the csv module."""
    try:
        import pandas
    except ImportError:
        pandas = None
    if pandas is not None:
        try:
            frame = pandas.read_csv(path, sep=delimiter, **read_options)
        except ValueError as exc:  # pandas' ParserError and EmptyDataError
            raise DataError(f"CSVLoader: {display(path)}: {exc}") from None
        return {str(c): frame[c].to_numpy() for c in frame.columns}
    if read_options:
        raise MissingDependency("CSVLoader: read_options need pandas, which is not installed; install it with "
                                "pip install 'mlpipeline[data]'")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, [])
        rows = [row for row in reader if row]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"CSVLoader: {display(path)}:{number}: {len(row)} fields, the header has {len(header)}")
    return {name: np.array([row[i] for row in rows], dtype=object) for i, name in enumerate(header)}


class SQLLoader(_ColumnLoader):
    """The rows of a query: ``SQLLoader("SELECT * FROM penguins", conn, target="species")``.

    ``connection``: a DB-API connection (sqlite3, psycopg, ...), a ``sqlite:///path``
    URL (opened read-only with sqlite3), or another SQLAlchemy URL or Engine
    (needs SQLAlchemy). ``params`` go to ``execute``. Columns as ``FrameLoader``.
    Fingerprint: sha256 of the query text, the row count and the rows' content."""

    kind = "sql"

    def __init__(self, query: str, connection: Any, target: Optional[str] = None,
                 features: Optional[Sequence[str]] = None, params: Any = None, dropna: bool = True, **options: Any):
        super().__init__(**options)
        self.query = query
        columns, rows = _run_query(query, connection, params)
        content = hashlib.sha256("\x1f".join(columns).encode())
        for row in rows:
            content.update(repr(tuple(row)).encode() + b"\n")
        digest = hashlib.sha256(f"{query}\0{len(rows)}\0{content.hexdigest()}".encode()).hexdigest()
        table = {name: np.array([row[i] for row in rows] or [], dtype=object) for i, name in enumerate(columns)}
        first_line = " ".join(query.split())
        source = first_line if len(first_line) <= 60 else first_line[:57] + "..."
        self._setup_table(table, target, features, dropna, digest, repr(source))


def _run_query(query: str, connection: Any, params: Any) -> Tuple[List[str], List[Sequence[Any]]]:
    """(column names, rows) of ``query`` on a DB-API connection, a URL or an SQLAlchemy engine."""
    if isinstance(connection, str) and connection.startswith("sqlite://") and "+" not in connection.split(":", 1)[0]:
        path = connection[len("sqlite:///"):] if connection.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise DataError(f"SQLLoader: {connection!r}: name a database file, as sqlite:///path/to/file.db")
        if not os.path.isfile(path):
            raise DataError(f"SQLLoader: {connection!r}: no such database file {display(path)}")
        conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro", uri=True)  # never creates one
        try:
            return _run_dbapi(query, conn, params)
        except sqlite3.Error as exc:
            raise DataError(f"SQLLoader: {display(path)}: {exc} in the query {query!r}") from None
        finally:
            conn.close()
    if isinstance(connection, str) or type(connection).__module__.startswith("sqlalchemy"):
        sqlalchemy = _require("sqlalchemy", "", "SQLLoader with an SQLAlchemy URL or engine")
        engine = sqlalchemy.create_engine(connection) if isinstance(connection, str) else connection
        try:
            with engine.connect() as conn:
                result = conn.execute(sqlalchemy.text(query), params or {})
                return [str(c) for c in result.keys()], [tuple(r) for r in result.fetchall()]
        finally:
            if isinstance(connection, str):
                engine.dispose()
    if not hasattr(connection, "cursor"):
        raise DataError(f"SQLLoader: expected a DB-API connection or a database URL, got {type(connection).__name__}")
    return _run_dbapi(query, connection, params)


def _run_dbapi(query: str, connection: Any, params: Any) -> Tuple[List[str], List[Sequence[Any]]]:
    cursor = connection.cursor()
    try:
        if params is None:
            cursor.execute(query)
        else:
            cursor.execute(query, params)
        if cursor.description is None:
            raise DataError(f"SQLLoader: the query returned no rows to read (is it a SELECT?): {query!r}")
        return [str(d[0]) for d in cursor.description], list(cursor.fetchall())
    finally:
        cursor.close()
