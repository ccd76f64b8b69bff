"""Cached outputs read back (``mlpipeline.outputs.load`` / ``list_outputs``, ``mlpipeline outputs``):
the newest a succeeded run saved, checked against the script as it is now — learnt by loading it
in a child process (``script.cached_outputs.state_main``), never here."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Union

from ..core.errors import display
from ..core.layout import PACKAGE_PARENT
from ..core.lifecycle import RunStatus
from ..core.text import iso
from ..plan.config import Project, find_project
from ..proc.spawn import spawn
from ..core.layout import CACHE_DIR, RUN_LOG
from ..script.cached_outputs import CHILD_MAIN, RECIPE, STATE_TIMEOUT, CorruptOutput, StaleOutput
from ..script.output_formats import OutputError, decode
from ..store.liveness import Liveness
from ..store.reader import Reader, open_reader

__all__ = ["CorruptOutput", "OutputError", "StaleOutput", "changes", "list_outputs", "load", "output_rows",
           "read_output", "script_state"]

# -- reading them back ----------------------------------------------------------------------------------------

def _project(project: Union[None, str, os.PathLike, Project]) -> Project:
    if isinstance(project, Project):
        return project
    return find_project(os.fspath(project) if project is not None else None)


def _reader(project: Project) -> Reader:
    reader = open_reader(project.outputs_dir)
    if reader is not None and reader.output_scripts(limit=1):
        return reader
    if reader is not None:
        reader.close()
    raise OutputError(f"{display(project.outputs_dir)}: no outputs recorded yet; call self.save_output(name, value) "
                      f"in a version and run it with mlpipeline -r")


def _as_recorded(project: Project, script: str) -> str:
    """``script`` as outputs match it: a path (absolute or from here) becomes the path as runs
    record it (models/a.py); the path as recorded, or a file name with or without .py, stays."""
    return project.rel(os.path.abspath(script)) if os.path.isfile(script) else script


def run_statuses(reader: Reader, run_ids: Any) -> Dict[int, str]:
    """{run id: its status as it truly stands (a dead runner's ``running`` run reads ``interrupted``)}."""
    liveness = Liveness(reader)  # (a Reader's Reads)
    return {row["id"]: liveness.derive(row)["status"] for row in reader.runs(sorted(run_ids))}


def _recorded_script(reader: Reader, project: Project, script: str) -> str:
    found = reader.output_scripts(matching=_as_recorded(project, script))
    if len(found) == 1:
        return found[0]
    if found:
        raise OutputError(f"{script!r} matches {', '.join(found)}; give the script's path as runs list it")
    known = reader.output_scripts(limit=20)
    raise OutputError(f"{script!r}: no outputs recorded for that script (scripts with outputs: "
                      f"{', '.join(known) or 'none'})")


def load(script: str, version: str, name: str, allow_stale: bool = False,
         project: Union[None, str, os.PathLike, Project] = None, run: Optional[int] = None) -> Any:
    """The output ``name`` that the newest *succeeded* run of ``version`` of ``script`` saved: a
    numpy array, a pandas DataFrame or Series, or JSON data. What a failed, cancelled, pruned,
    timed-out or unfinished run saved is never returned in its place; ask for it by ``run`` (its
    id). Refused (StaleOutput) when the script's code, the version's parameters or its data
    changed since, unless ``allow_stale``; its file's sha256 is checked (CorruptOutput).
    ``project``: a folder or a Project (default: found from here)."""
    project = _project(project)
    reader = _reader(project)
    try:
        rel = _recorded_script(reader, project, script)
        rows = [dict(r) for r in reader.outputs(script=rel, version=version)]
        statuses = run_statuses(reader, {r["run_id"] for r in rows})
    finally:
        reader.close()
    saved = [r for r in rows if r["name"] == name]
    chosen = [r for r in saved if r["run_id"] == run] if run is not None else \
        [r for r in saved if statuses.get(r["run_id"]) == RunStatus.SUCCEEDED.value]
    if not chosen:
        if not saved:
            names = sorted({repr(r["name"]) for r in rows})
            raise OutputError(f"{rel} {version}: no output named {name!r} (saved for that version: "
                              f"{', '.join(names) or 'none'})")
        if run is not None:
            runs = ", ".join(f"{r['run_id']} ({statuses.get(r['run_id'])})" for r in saved)
            raise OutputError(f"{rel} {version}: run {run} saved no output named {name!r} (runs that did: {runs})")
        latest = saved[0]["run_id"]
        raise OutputError(f"{rel} {version}: no succeeded run saved {name!r}; the newest that did is run {latest}, "
                          f"{statuses.get(latest)}: pass run={latest} to load it anyway, or run the version again "
                          f"(mlpipeline -r)")
    row = chosen[0]
    label = f"output {name!r} of {rel} {version} (run {row['run_id']})"
    if not allow_stale:
        state = script_state(project, rel)
        if state.get("error"):
            raise StaleOutput(f"{label}: cannot be checked against the script: {state['error']}; fix that, or "
                              f"pass allow_stale=True to load it anyway")
        reasons = changes(row, state)
        if reasons:
            raise StaleOutput(f"{label} is stale: {'; '.join(reasons.values())} since it was saved; run the version "
                              f"again (mlpipeline -r), or pass allow_stale=True to load it anyway")
    return read_output(project, row)


def read_output(project: Project, row: Mapping[str, Any]) -> Any:
    """An output's value from its file, after checking the file's sha256."""
    parts = str(row["path"]).split("/")
    path = os.path.join(project.outputs_dir, *parts)
    what = f"output {row['name']!r} of {row['script']} {row['version']} (run {row['run_id']})"
    if parts[0] != CACHE_DIR or ".." in parts:
        raise CorruptOutput(f"{what}: its recorded path {row['path']!r} is not under {CACHE_DIR}/")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise CorruptOutput(f"{display(path)}: the file of {what} is gone; run the version again "
                            f"(mlpipeline -r)") from None
    except OSError as exc:
        raise OutputError(f"{display(path)}: cannot read the file of {what} ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise CorruptOutput(f"{display(path)}: the file of {what} no longer matches its sha256 "
                            f"{row['sha256'][:12]}… (changed or damaged); delete it and run the version again")
    try:
        return decode(row["kind"], data)
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 - bytes that match their hash but do not parse
        raise CorruptOutput(f"{display(path)}: the file of {what} cannot be read as {row['kind']} ({exc})") from None


def changes(row: Mapping[str, Any], state: Mapping[str, Any]) -> Dict[str, str]:
    """What differs between what produced ``row`` and the script now: {cause: words}, causes
    among code, params and data (empty: the output is current)."""
    found: Dict[str, str] = {}
    if row.get("code_fingerprint"):
        if row["code_fingerprint"] != state.get("code_fingerprint"):
            found["code"] = f"the code changed ({row['script']} or a module it uses)"
    elif row.get("script_sha256") != state.get("script_sha256"):
        found["code"] = f"the code changed ({row['script']})"
    now = (state.get("versions") or {}).get(row["version"])
    if now is None:
        found["params"] = f"{row['script']} no longer declares version {row['version']!r}"
        return found
    if row.get("params_sha256") != now.get("params_sha256"):
        found["params"] = f"the parameters of version {row['version']!r} changed"
    then, data = row.get("data_fingerprint"), now.get("data_fingerprint")
    if then != data:
        found["data"] = f"the data changed ({_short(then)} then, {_short(data)} now)"
    return found


def _short(fingerprint: Optional[str]) -> str:
    if not fingerprint:
        return "no mlpipeline.data loader"
    kind, _, digest = fingerprint.partition(":")
    return f"{kind}:{digest[:12]}" if digest else fingerprint[:16]


# -- the script's current state, learnt in a child process ----------------------------------------------------

def script_state(project: Project, rel: str, timeout: float = STATE_TIMEOUT) -> Dict[str, Any]:
    """Load ``rel`` (the script's path in the project) in a child process, in the project root, and
    return its recipe per version: ``{script_sha256, code_fingerprint, versions: {name: {params_sha256,
    data_fingerprint}}}``, or ``{error: ...}`` when it is gone or cannot be loaded."""
    path = os.path.join(project.root, rel)
    if not os.path.isfile(path):
        return {"error": f"{rel} no longer exists"}
    with tempfile.TemporaryDirectory(prefix="mlp-outputs-") as folder:
        result, output = os.path.join(folder, "state.json"), os.path.join(folder, RUN_LOG)
        with open(output, "wb") as out:
            child = spawn(CHILD_MAIN, [path, result, PACKAGE_PARENT], cwd=project.root, stdout=out)
            try:
                code = child.wait(timeout)
            finally:
                child.end()  # whatever the import started ends with the load, in its group or not (setsid)
        if os.path.exists(result):
            with open(result, encoding="utf-8") as handle:
                return json.load(handle)
        with open(output, "rb") as handle:
            last = handle.read()[-4096:].decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
    how = f"took longer than {timeout:g} s" if code is None else f"exited with code {code}"
    return {"error": f"loading {rel} {how}; its last output: {last[0].strip()}"}


# -- listing --------------------------------------------------------------------------------------------------

def output_rows(reader: Reader, project: Project, script: Optional[str] = None,
                check: bool = True) -> List[Dict[str, Any]]:
    """Recorded outputs, newest first, as plain rows; ``stale`` says what changed since each was
    saved (``no``, ``code, data``, ...), learnt by loading each script once (``check``)."""
    rows = [dict(r) for r in reader.outputs(matching=None if script is None else _as_recorded(project, script))]
    statuses = run_statuses(reader, {r["run_id"] for r in rows})
    states: Dict[str, Dict[str, Any]] = {}
    listed = []
    for row in rows:
        stale = None
        if check:
            if row["script"] not in states:
                states[row["script"]] = script_state(project, row["script"])
            state = states[row["script"]]
            stale = f"unknown: {state['error']}" if state.get("error") else ", ".join(changes(row, state)) or "no"
        listed.append({"id": row["id"], "run": row["run_id"], "status": statuses.get(row["run_id"]),
                       "script": row["script"], "version": row["version"],
                       "name": row["name"], "kind": row["kind"], "summary": row["summary"], "size": row["size"],
                       "created": iso(row["created_at"]), "stale": stale, "sha256": row["sha256"],
                       "path": row["path"], **{key: row[key] for key in RECIPE}})
    return listed


def list_outputs(script: Optional[str] = None, project: Union[None, str, os.PathLike, Project] = None,
                 check: bool = True) -> List[Dict[str, Any]]:
    """``output_rows`` for a project (a folder or a Project; default: found from here)."""
    project = _project(project)
    reader = open_reader(project.outputs_dir)
    if reader is None:
        return []
    try:
        return output_rows(reader, project, script, check)
    finally:
        reader.close()
