"""The ledger as pandas DataFrames, for notebooks: ``mlpipeline.runs()`` and ``mlpipeline.curves()``.

One row per run, as ``mlpipeline runs`` lists them (``all=True``: as ``runs --all``), with each
parameter as a ``params.<name>`` column and each result as a ``<split>/<name>`` column, like MLflow's
``search_runs``. pandas is imported here, when called: ``import mlpipeline`` stays light.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from ..core.errors import UsageError, display
from ..core.layout import Project
from ..plan.config import find_project
from ..store.reader import Reader, open_reader
from .queries import flatten, list_runs, resolve_run

if TYPE_CHECKING:
    import pandas

RUN_COLUMNS = ("id", "uid", "script", "version", "mode", "status", "started", "ended", "duration", "tags", "note",
               "deleted")

ProjectRef = Union[None, str, "os.PathLike[str]", Project]


def _project(project: ProjectRef) -> Project:
    if isinstance(project, Project):
        return project
    return find_project(os.fspath(project) if project is not None else None)


def _tags(tag: Union[None, str, Sequence[str]]) -> List[str]:
    return [] if tag is None else [tag] if isinstance(tag, str) else list(tag)


def run_rows(reader: Optional[Reader], script: Optional[str] = None, status: Optional[str] = None,
             tag: Union[None, str, Sequence[str]] = None, all: bool = False, limit: Optional[int] = None,
             **filters: Any) -> List[Dict[str, Any]]:
    """The rows of ``runs()`` as dicts: the listing's columns, then params and results, newest first
    (``filters``: more of ``list_runs``'s, e.g. ``version``, ``mode``, ``since``)."""
    if reader is None:
        return []
    listed = list_runs(reader, script=script, status=status, tags=_tags(tag), deleted=all, limit=limit, **filters)
    params = {r["id"]: flatten(json.loads(r["params"] or "{}")) for r in reader.runs([r["id"] for r in listed])}
    rows = []
    for r in listed:
        row: Dict[str, Any] = {"id": r["id"], "uid": r["uid"], "script": r["script"], "version": r["version"],
                               "mode": r["mode"], "status": r["status"], "started": r["started_at"],
                               "ended": r["ended_at"], "duration": r["duration"], "tags": r["tags"],
                               "note": r["note"], "deleted": r["deleted_at"]}
        row.update({f"params.{k}": v for k, v in params.get(r["id"], {}).items()})
        row.update(r["metrics"])
        rows.append(row)
    return rows


def runs(project: ProjectRef = None, script: Optional[str] = None, status: Optional[str] = None,
         tag: Union[None, str, Sequence[str]] = None, all: bool = False) -> pandas.DataFrame:
    """The project's runs as a DataFrame, newest first: ``id, uid, script, version, mode, status, started,
    ended`` (UTC timestamps), ``duration`` (seconds), ``tags`` (a list), ``note``, ``deleted`` (when it
    was, with ``all``), then ``params.<name>`` per parameter (nested ones dotted) and ``<split>/<name>``
    per result. ``project``: its folder (default: found from the current one, as the CLI does);
    ``tag``: runs with this tag (a list: with all of them); ``all``: deleted runs too."""
    reader = open_reader(_project(project).outputs_dir)
    try:
        rows = run_rows(reader, script=script, status=status, tag=tag, all=all)
    finally:
        if reader is not None:
            reader.close()
    return frame_of(rows)


def frame_of(rows: Sequence[Dict[str, Any]]) -> pandas.DataFrame:
    """``run_rows``'s rows as ``runs()`` gives them: a DataFrame, times as UTC timestamps."""
    import pandas as pd

    extra: List[str] = []
    for row in rows:
        extra += [k for k in row if k not in RUN_COLUMNS and k not in extra]
    params = sorted(k for k in extra if k.startswith("params."))
    metrics = sorted((k for k in extra if not k.startswith("params.")), key=lambda k: (not k.startswith("test/"), k))
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *params, *metrics])
    for column in ("started", "ended", "deleted"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def curves(run_id: Union[int, str], project: ProjectRef = None) -> pandas.DataFrame:
    """A run's training curves (points logged with a step) as a long DataFrame: ``split, name, step,
    value``, by split, name and step. ``run_id``: a run id or a unique prefix of its uid."""
    import pandas as pd

    reader = open_reader(_project(project).outputs_dir)
    if reader is None:
        raise UsageError(f"run {run_id}: no runs recorded yet in this project")
    try:
        run = resolve_run(reader, str(run_id))
        points = [(p["split"], p["name"], p["step"], p["value"]) for p in reader.points(run["id"])
                  if p["step"] is not None]
    finally:
        reader.close()
    frame = pd.DataFrame(points, columns=["split", "name", "step", "value"])
    frame["value"] = frame["value"].astype("float64")
    return frame.sort_values(["split", "name", "step"], kind="stable").reset_index(drop=True)


def write_parquet(reader: Optional[Reader], path: str, outputs_dir: Optional[str] = None, **filters: Any) -> int:
    """``run_rows(reader, **filters)`` as ``runs()`` frames them, written to a parquet file at ``path``;
    how many runs. Needs pyarrow (a UsageError says how to install it). Written to a temporary file beside
    it, then renamed into place; never into ``outputs_dir`` nor over a file that is no parquet file."""
    try:
        import pyarrow  # noqa: F401 - pandas writes parquet through it
    except ImportError:
        raise UsageError("--format parquet needs pyarrow: pip install pyarrow") from None
    _check_target(path, outputs_dir)
    frame = frame_of(run_rows(reader, **filters))
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".runs-", suffix=".parquet", dir=folder)
    os.close(handle)
    try:
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)  # whole or not at all: a reader never sees half a file
    except OSError as exc:
        raise UsageError(f"--output {display(path)}: cannot be written ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return len(frame)


PARQUET_MAGIC = b"PAR1"


def _check_target(path: str, outputs_dir: Optional[str]) -> None:
    """Refuse, in one line, a file ``--output`` must not be: inside the project's outputs (the ledger,
    model dirs), a folder, a file that is no parquet file (a script, a config), or one in a folder that is
    not there or cannot be written. An earlier export (a parquet file) is replaced."""
    real = os.path.realpath(path)
    if outputs_dir and (real + os.sep).startswith(os.path.realpath(outputs_dir) + os.sep):
        raise UsageError(f"--output {display(path)}: that is inside the project's outputs folder (the ledger, "
                         f"model dirs, run folders); write the export elsewhere, e.g. --output runs.parquet")
    if os.path.isdir(real):
        raise UsageError(f"--output {display(path)}: is a folder; give a file name, e.g. "
                         f"{display(os.path.join(path, 'runs.parquet'))}")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise UsageError(f"--output {display(path)}: the folder {display(folder)} does not exist; make it first")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--output {display(path)}: the folder {display(folder)} cannot be written")
    if os.path.lexists(path):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
        except OSError as exc:
            raise UsageError(f"--output {display(path)}: cannot be read ({exc.strerror or exc})") from None
        if head != PARQUET_MAGIC:
            raise UsageError(f"--output {display(path)}: a file that is not a parquet file is there; it is not "
                             f"written over: give another name, or remove it first")
