"""Cached outputs: predictions or features a version keeps with ``self.save_output(name, value)``.

A value is written without pickle (see ``_output_formats``) and stored by content,
``outputs/cache/<2 hex>/<sha256>.<npy|npz|json>``: written atomically, once per content.
The version's process tells the runner (an ``output`` event) and the runner, the
ledger's only writer, records a row in ``outputs`` with what produced it: the script's
sha256 and code fingerprint, the version's params sha256 and its data fingerprint.

``load`` reads the newest back after checking that the script's code, the version's
parameters and its data are still those; ``output_rows`` lists them. The script's
current state is learnt by loading it in a child process (``script_state``), so the
caller never imports user code.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Union

from . import _report
from ._output_formats import EXTENSIONS, OutputError, decode, encode
from .errors import display, write_failed
from .lifecycle import RunStatus
from .procs import kill_marked, probe_mark
from .scripts import file_sha256

if TYPE_CHECKING:
    from .config import Project
    from .reader import Reader

__all__ = ["CorruptOutput", "OutputError", "StaleOutput", "list_outputs", "load", "output_rows", "save"]

CACHE_DIR = "cache"          # under the project's outputs folder
STATE_TIMEOUT = 120.0        # seconds loading a script to check an output may take
RECIPE = ("script_sha256", "code_fingerprint", "params_sha256", "data_fingerprint")  # what produced an output
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# As describe's child: the project root (its current folder) leaves sys.path; mlpipeline is found even uninstalled.
CHILD_MAIN = ("import sys; del sys.path[0]; sys.path.append(sys.argv.pop()); "
              "from mlpipeline.cached_outputs import state_main; sys.exit(state_main(sys.argv[1:]))")


class StaleOutput(OutputError):
    """The output was made by other code, parameters or data than the script has now."""


class CorruptOutput(OutputError):
    """An output's file is missing or no longer holds what was stored."""


# -- in the version's process ---------------------------------------------------------------------------------

def save(model: Any, name: str, value: Any) -> str:
    """``Model.save_output``: store ``value`` by content and tell the runner; returns its sha256.
    Test mode (no run folder) checks that the value can be stored and stores nothing."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise OutputError(f"save_output({name!r}): name it with text of 1 to 200 characters, without control "
                          f"characters")
    context = getattr(model, "_mlp_saving", None)  # set by execute.run_version
    if context is None:
        raise OutputError(f"save_output({name!r}): outputs are saved while mlpipeline runs a version; call it from "
                          f"the model's hooks (train_model, evaluate_model)")
    try:
        encoded = encode(value)
    except OutputError as exc:
        raise OutputError(f"save_output({name!r}): {exc}") from None
    sha = hashlib.sha256(encoded.data).hexdigest()
    reporter = _report.current()
    version = context["version"].get("name")
    if not context.get("run_dir"):
        reporter.log(f"version {version}: output {name!r} ({encoded.summary}) not saved in test mode")
        return sha
    # A run's folder is <outputs>/runs/<id> (runner.Runner._start); the cache is shared by all runs.
    outputs_dir = os.path.dirname(os.path.dirname(os.path.abspath(context["run_dir"])))
    path = store(outputs_dir, sha, encoded.ext, encoded.data, name)
    if "recipe" not in context:
        context["recipe"] = recipe(context["script"], context["version"], context.get("data_fingerprint"))
    reporter.output({"name": name, "sha256": sha, "path": path, "kind": encoded.kind, "summary": encoded.summary,
                     "size": len(encoded.data), **context["recipe"]})
    return sha


def store(outputs_dir: str, sha: str, ext: str, data: bytes, name: str = "") -> str:
    """Write ``data`` as ``cache/<aa>/<sha>.<ext>`` under ``outputs_dir`` unless an intact copy is
    there; atomically (a temp file renamed into place). Returns the path relative to ``outputs_dir``."""
    rel = f"{CACHE_DIR}/{sha[:2]}/{sha}.{ext}"
    path = os.path.join(outputs_dir, *rel.split("/"))
    try:
        if file_sha256(path) == sha:
            return rel
    except OSError:
        pass
    folder = os.path.dirname(path)
    partial = ""
    try:
        os.makedirs(folder, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{sha[:16]}.", suffix=".part", dir=folder)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except OSError as exc:
        if partial:
            try:
                os.unlink(partial)
            except OSError:
                pass
        raise write_failed(exc.filename or path, exc, f"store output {name!r}", "nothing was recorded for it") from None
    return rel


def _script_module(script: str) -> Any:
    """The module mlpipeline loaded ``script`` as, in this process (None if none)."""
    for module in list(sys.modules.values()):
        if getattr(module, "__mlpipeline_script__", False) and getattr(module, "__file__", None) == script:
            return module
    return None


def recipe(script: str, version: Any, data_fingerprint: Optional[str], module: Any = None) -> Dict[str, Optional[str]]:
    """What produces a version's outputs, computed the same way where it runs and where ``load``
    checks it: the script's sha256; its code fingerprint (``scripts.fingerprint`` of the code
    without version declarations, with the local modules it uses, not the data files it reads);
    the version's params sha256; and ``data_fingerprint``, the ``mlpipeline.data`` loaders the
    version's dataloader holds (else those the script created) once the script is loaded."""
    from ._versions import params_digest, version_params
    from .scripts import _hashed, _used_module_files, fingerprint

    module = module if module is not None else _script_module(script)
    source = getattr(module, "__mlpipeline_source__", None)
    if source is None:
        with open(script, "rb") as handle:
            source = handle.read()
    deps = _hashed(_used_module_files(module)) if module is not None else []
    return {"script_sha256": hashlib.sha256(source).hexdigest(), "code_fingerprint": fingerprint(script, source, deps),
            "params_sha256": params_digest(version_params(version)), "data_fingerprint": data_fingerprint}


# -- in the runner --------------------------------------------------------------------------------------------

def output_row(record: Mapping[str, Any], script: str, version: str) -> Optional[Dict[str, Any]]:
    """The ledger row for an ``output`` event of a run of ``script`` ``version``; None for a malformed one."""
    sha, path, kind = record.get("sha256"), record.get("path"), record.get("kind")
    if not (isinstance(sha, str) and len(sha) == 64 and isinstance(record.get("name"), str)
            and kind in EXTENSIONS and path == f"{CACHE_DIR}/{sha[:2]}/{sha}.{EXTENSIONS[kind]}"):
        return None
    row = {key: record.get(key) for key in ("name", "sha256", "path", "kind", "summary", "size") + RECIPE}
    row.update(script=script, version=version)
    return row


# -- reading them back ----------------------------------------------------------------------------------------

def _project(project: Union[None, str, os.PathLike, Project]) -> Project:
    from .config import Project, find_project

    if isinstance(project, Project):
        return project
    return find_project(os.fspath(project) if project is not None else None)


def _reader(project: Project) -> Reader:
    from .reader import open_reader

    reader = open_reader(project.outputs_dir)
    if reader is not None and reader.has("0009"):
        return reader
    if reader is not None:
        reader.close()
    raise OutputError(f"{display(project.outputs_dir)}: no outputs recorded yet; call self.save_output(name, value) "
                      f"in a version and run it with mlpipeline -r")


def _script_clause(project: Project, script: str) -> tuple:
    """A WHERE clause for outputs of ``script``: a path (absolute or from here), the path as runs
    record it (models/a.py), or its file name with or without .py."""
    from .queries import _script_match

    if os.path.isfile(script):
        script = project.rel(os.path.abspath(script))
    return _script_match(script)


def run_statuses(reader: Reader, run_ids: Any) -> Dict[int, str]:
    """{run id: its status as it truly stands (a dead runner's ``running`` run reads ``interrupted``)}."""
    from .liveness import Liveness

    liveness = Liveness(reader.conn)
    found: Dict[int, str] = {}
    for run_id in run_ids:
        row = reader.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            found[run_id] = liveness.derive(row)["status"]
    return found


def _recorded_script(reader: Reader, project: Project, script: str) -> str:
    clause, args = _script_clause(project, script)
    found = [r[0] for r in reader.conn.execute(f"SELECT DISTINCT script FROM outputs WHERE {clause}", args)]
    if len(found) == 1:
        return found[0]
    if found:
        raise OutputError(f"{script!r} matches {', '.join(found)}; give the script's path as runs list it")
    known = [r[0] for r in reader.conn.execute("SELECT DISTINCT script FROM outputs ORDER BY script LIMIT 20")]
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
        rows = [dict(r) for r in reader.conn.execute("SELECT * FROM outputs WHERE script = ? AND version = ? "
                                                     "ORDER BY id DESC", (rel, version))]
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
        result, output = os.path.join(folder, "state.json"), os.path.join(folder, "output.log")
        timed_out = False
        mark = probe_mark()
        with open(output, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", CHILD_MAIN, path, result, _PACKAGE_PARENT],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=project.root, env={**os.environ, mark[0]: mark[1]})
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:  # whatever the import started ends with the load
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
                kill_marked(*mark)  # in its group or not (setsid)
        if os.path.exists(result):
            with open(result, encoding="utf-8") as handle:
                return json.load(handle)
        with open(output, "rb") as handle:
            last = handle.read()[-4096:].decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
    how = f"took longer than {timeout:g} s" if timed_out else f"exited with code {proc.returncode}"
    return {"error": f"loading {rel} {how}; its last output: {last[0].strip()}"}


def state_main(argv: List[str]) -> int:
    """Child entry: ``SCRIPT RESULT_FILE``; writes the script's state as JSON to RESULT_FILE."""
    from ._versions import version_parameters
    from .errors import ScriptError
    from .scripts import get_model, load_module

    path, result = os.path.abspath(argv[0]), argv[1]
    try:
        module = load_module(path)
        model = get_model(module, path)
        data = sys.modules.get("mlpipeline.data")
        versions = {}
        shared: Dict[str, Any] = {}
        for version in model.versions.get_versions():
            loader = version.get(version_parameters.DATALOADER)  # as execute.run_version computes it
            made = recipe(path, version, data.version_fingerprint(loader, path, data.registry_size()) if data else None,
                          module)
            shared = {"script_sha256": made["script_sha256"], "code_fingerprint": made["code_fingerprint"]}
            versions[str(version.get("name"))] = {"params_sha256": made["params_sha256"],
                                                  "data_fingerprint": made["data_fingerprint"]}
        state: Dict[str, Any] = {**shared, "versions": versions}
    except ScriptError as exc:
        state = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - user code failed while checking: that is the answer
        state = {"error": f"{display(path)}: {type(exc).__name__}: {exc}"}
    with open(result + ".part", "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    os.replace(result + ".part", result)
    return 0


# -- listing --------------------------------------------------------------------------------------------------

def output_rows(reader: Reader, project: Project, script: Optional[str] = None,
                check: bool = True) -> List[Dict[str, Any]]:
    """Recorded outputs, newest first, as plain rows; ``stale`` says what changed since each was
    saved (``no``, ``code, data``, ...), learnt by loading each script once (``check``)."""
    from .queries import iso

    if not reader.has("0009"):
        return []
    clause, args = ("1", []) if script is None else _script_clause(project, script)
    rows = [dict(r) for r in reader.conn.execute(f"SELECT * FROM outputs WHERE {clause} ORDER BY id DESC", args)]
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
    from .reader import open_reader

    project = _project(project)
    reader = open_reader(project.outputs_dir)
    if reader is None:
        return []
    try:
        return output_rows(reader, project, script, check)
    finally:
        reader.close()
