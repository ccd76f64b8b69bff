"""A describe child (``plan.describe`` starts it): load a model script and write what it
declares — its versions, searches and imports, or why it does not load — as a cache entry."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

from ..core.errors import ScriptError
from ..proc.system import watch_parent
from .loading import Reads, ScriptInfo, display, file_sha256, load_script

# Found even where mlpipeline is not installed (appended, so it never shadows a user module). The first
# sys.path entry (the project root, the child's current folder) goes: a json.py or mlpipeline.py there must not
# shadow the standard library or mlpipeline.
CHILD_MAIN = ("import sys; del sys.path[0]; sys.path.append(sys.argv.pop()); "
              "from mlpipeline.script.describing import describe_main; sys.exit(describe_main(sys.argv[1:]))")


@dataclass
class Described:
    """A script's description: ``info`` when it loads, else ``error``."""

    info: Optional[ScriptInfo] = None
    error: Optional[ScriptError] = None
    deps: List[List[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.info is not None

    def to_entry(self) -> Dict[str, Any]:
        """The JSON-able cache entry."""
        error = [str(self.error), self.error.details, self.error.transient] if self.error is not None else None
        return {"info": self.info.to_json() if self.info else None, "error": error, "deps": self.deps}

    @classmethod
    def from_entry(cls, entry: Dict[str, Any]) -> Described:
        info = ScriptInfo.from_json(entry["info"]) if entry.get("info") else None
        error = ScriptError(*entry["error"][:3]) if entry.get("error") else None
        if info is None and error is None:
            raise ValueError("a description entry holds neither info nor error")
        return cls(info, error, [list(d) for d in entry.get("deps") or []])


FORMAT = 3  # of a description entry (2: with the script's imports; 3: a Command's too); a new one describes every script again


def cache_key(path: str, sha256: str) -> str:
    """Where a description is cached: the script's content and its path (the
    same text elsewhere imports other modules, and its errors name it)."""
    return hashlib.sha256(f"{FORMAT}\0{os.path.abspath(path)}\0{sha256}".encode()).hexdigest()


def describe_entry(path: str) -> Dict[str, Any]:
    """Load ``path`` in this process and return its cache entry (never raises
    for a broken script: the error is the entry). ``sha256`` says which content
    was loaded."""
    path = os.path.abspath(path)
    try:
        sha = file_sha256(path)
    except OSError:
        sha = ""
    unrun = _plain_unlisted(path)
    if unrun is not None:
        return {"sha256": sha, **Described(None, unrun, []).to_entry()}
    reads = Reads(path)
    before = set(sys.modules)
    try:
        module, model, info = load_script(path, reads)
        info.imports = third_party_imports(before, module)
        if getattr(model, "_mlp_command", False):  # its versions run a plain script: preload what that imports
            from .plain import dependencies, read_tree

            _, installed = dependencies(model.script, read_tree(model.script))
            info.imports += [name for name in installed if name not in info.imports]
        return {"sha256": info.sha256, **Described(info, None, info.deps).to_entry()}
    except ScriptError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - user code in a check (a property, a __repr__) failed
        error = ScriptError(f"{display(path)}: {type(exc).__name__} while checking MODEL: {exc}; fix the script",
                            details=_traceback(exc))
    return {"sha256": sha, **Described(None, error, reads.deps).to_entry()}


def _plain_unlisted(path: str) -> Optional[ScriptError]:
    """The error for a plain training script listed without its argument lines (it binds no MODEL and reads
    like a script that trains when run): describing it would run it, so it is not imported."""
    from .plain import binds_model, looks_plain, read_tree

    try:
        tree = read_tree(path)
    except ScriptError:
        return None  # loading says what is wrong, as for any script
    if binds_model(tree) or not looks_plain(tree):
        return None
    name = os.path.basename(path)
    return ScriptError(f"{display(path)}: defines no MODEL; to run it as a plain script, add a [{name}] section to "
                       f"the queue config with one argument line a version (small = --lr 0.1), or end it with "
                       f"MODEL = YourModel(versions)")


HEAVY_API = ("mlpipeline.keras", "mlpipeline.data")


def _installed(module: Any) -> bool:
    path = getattr(module, "__file__", None) or ""
    return os.sep + "site-packages" + os.sep in path or os.sep + "dist-packages" + os.sep in path


def third_party_imports(before: Set[str], module: Any) -> List[str]:
    """The installed packages (site-packages, never the project's own modules nor mlpipeline)
    a script's import brought in, in the order it began them, and those its top level names that
    were imported already (a describe in a process that had them)."""
    found: Dict[str, None] = {}
    for name in [n for n in list(sys.modules) if n not in before] + \
            [getattr(v, "__name__", "") for v in vars(module).values() if isinstance(v, type(sys))]:
        top = name.partition(".")[0]
        if name in HEAVY_API:
            found[name] = None  # mlpipeline's own, which the plain fork server leaves out (TensorFlow, numpy)
        elif top and top != "mlpipeline" and top not in found and _installed(sys.modules.get(top)):
            found[top] = None
    return list(found)


def _traceback(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def describe_main(argv: List[str], watch: bool = True) -> int:
    """Child entry: ``SCRIPT RESULT_FILE PARENT_PID``. Writes the cache entry as
    JSON to RESULT_FILE (stdout is the script's own) and exits 0 once written. ``watch=False``:
    the fork server's child, which dies with it already."""
    path, result, parent = argv[0], argv[1], int(argv[2])
    if watch:
        watch_parent(parent, every=0.5)
    entry = describe_entry(path)
    partial = result + ".part"
    with open(partial, "w") as handle:
        json.dump(entry, handle)
    os.replace(partial, result)
    return 0
