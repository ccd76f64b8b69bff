"""Cached outputs: predictions or features a version keeps with ``self.save_output(name, value)``.

A value is written without pickle (see ``_output_formats``) and stored by content,
``outputs/cache/<2 hex>/<sha256>.<npy|npz|json>``: written atomically, once per content.
The version's process tells the runner (an ``output`` event) and the runner, the
ledger's only writer, records a row in ``outputs`` with what produced it: the script's
sha256 and code fingerprint, the version's params sha256 and its data fingerprint.

Reading them back is ``read.outputs``; ``state_main`` here is the child it starts to
learn a script's current recipe (the caller never imports user code).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional

from . import report as _report
from ..core.layout import CACHE_DIR
from .output_formats import EXTENSIONS, OutputError, encode
from ..core.errors import display, write_failed
from .loading import file_sha256
from .versions import ordered

__all__ = ["CorruptOutput", "OutputError", "StaleOutput", "save"]

STATE_TIMEOUT = 120.0        # seconds loading a script to check an output may take
RECIPE = ("script_sha256", "code_fingerprint", "params_sha256", "data_fingerprint")  # what produced an output
# As describe's child: the project root (its current folder) leaves sys.path; mlpipeline is found even uninstalled.
CHILD_MAIN = ("import sys; del sys.path[0]; sys.path.append(sys.argv.pop()); "
              "from mlpipeline.script.cached_outputs import state_main; sys.exit(state_main(sys.argv[1:]))")


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
    from .versions import params_digest, version_params
    from .loading import _hashed, _used_module_files, fingerprint

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


def state_main(argv: List[str]) -> int:
    """Child entry: ``SCRIPT RESULT_FILE``; writes the script's state as JSON to RESULT_FILE."""
    from .versions import version_parameters
    from ..core.errors import ScriptError
    from .loading import get_model, load_module

    path, result = os.path.abspath(argv[0]), argv[1]
    try:
        module = load_module(path)
        model = get_model(module, path)
        data = sys.modules.get("mlpipeline.data")
        versions = {}
        shared: Dict[str, Any] = {}
        for version in ordered(model.versions):
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
