"""Loading a model script and checking that it defines a usable MODEL.

In execution mode only a short-lived child process calls ``load_script``
(see ``describe.py``); the runner parent sees scripts through ``ScriptInfo``,
plain data cached by the script's content and the files it read while loading.

Loading also records what the script depends on (``Reads``): local modules it
imports and data files it opens for reading at import. Those dependencies and
the script's code, minus its version declarations, make the ``fingerprint`` of
what trains, which ``-u`` compares: adding a version reruns nothing else, and
editing a helper module reruns the versions that use it.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import types
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from .versions import MANDATORY, Version, dir_suffix, ordered, params_digest, version_params, version_parameters
from ..core.layout import PACKAGE_DIR
from ..core.errors import MLPipelineError, ScriptError

if TYPE_CHECKING:
    import ast


class VersionInfo(NamedTuple):
    """One version as a script declares it: its name and plain-data parameters."""

    name: str
    params: Dict[str, Any]
    params_sha256: str




class ScriptInfo:
    """What loading a script told us: its versions, the fingerprint of what
    trains, and ``deps``, the ``[abs path, sha256]`` of every file it read while
    loading (not the script itself). A plain class, not a dataclass: every
    version's child imports this module, and dataclasses pulls in inspect."""

    def __init__(self, path: str, sha256: str, versions: Optional[List[VersionInfo]] = None,
                 fingerprint: str = "", deps: Optional[List[List[str]]] = None,
                 searches: Optional[List[Dict[str, Any]]] = None, imports: Optional[List[str]] = None,
                 plain: bool = False):
        self.path, self.sha256 = path, sha256
        # the third-party modules it imported as it loaded, in the order it began them (a warm parent's preload)
        self.imports: List[str] = list(imports or [])
        self.versions: List[VersionInfo] = list(versions or [])
        self.fingerprint = fingerprint
        self.deps: List[List[str]] = list(deps or [])
        # add_search: [{name, budget, parallel, stopper, template: the plain params every point starts from}]
        self.searches: List[Dict[str, Any]] = list(searches or [])
        self.plain = plain  # a plain script (script.plain): its versions are the queue config's argument lines

    def to_json(self) -> Dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "versions": [dict(v._asdict()) for v in self.versions],
                "fingerprint": self.fingerprint, "deps": [list(d) for d in self.deps], "searches": self.searches,
                "imports": self.imports, "plain": self.plain}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScriptInfo) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"ScriptInfo({self.path!r}, {self.sha256[:12]!r}, {len(self.versions)} versions)"

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> ScriptInfo:
        return cls(data["path"], data["sha256"], [VersionInfo(**v) for v in data["versions"]],
                   data.get("fingerprint") or "", [list(d) for d in data.get("deps") or []],
                   list(data.get("searches") or []), list(data.get("imports") or []), bool(data.get("plain")))

    @property
    def names(self) -> List[str]:
        """The names a queue config can list: the versions, then the searches."""
        return [v.name for v in self.versions] + [s["name"] for s in self.searches]


def file_sha256(path: str) -> str:
    """The sha256 of a file, read a MiB at a time (data files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def display(path: str) -> str:
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


def _user_frames(tb: Optional[types.TracebackType], path: str) -> Tuple[Optional[int], str]:
    """The line in ``path`` where an import-time exception surfaced, and the
    traceback with mlpipeline's own frames left out."""
    import traceback

    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(PACKAGE_DIR)]
    line = next((f.lineno for f in reversed(frames) if os.path.abspath(f.filename) == path), None)
    return line, "".join(traceback.format_list(frames))


def _module_name(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(stem)
    if existing is None or getattr(existing, "__mlpipeline_script__", None):
        return stem
    return f"_mlp_script_{stem}"


def load_module(path: str) -> types.ModuleType:
    """Import ``path`` as a fresh module with its folder first on ``sys.path``."""
    path = os.path.abspath(path)
    name = display(path)
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as exc:
        raise ScriptError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        code = compile(source, path, "exec")
    except SyntaxError as exc:
        raise ScriptError(f"{name}:{exc.lineno}: SyntaxError: {exc.msg}; fix the script") from None
    except ValueError as exc:  # e.g. NUL bytes
        raise ScriptError(f"{name}: not Python source ({exc})") from None
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = types.ModuleType(_module_name(path))
    module.__file__ = path
    module.__mlpipeline_script__ = True  # type: ignore[attr-defined]
    module.__mlpipeline_source__ = source  # type: ignore[attr-defined]  # the exact bytes that run: copied into the model dir
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)
    except SystemExit as exc:
        raise ScriptError(f"{name}: calls sys.exit({exc.code!r}) while being imported; put script-only code "
                          f"under if __name__ == '__main__':") from None
    except MLPipelineError as exc:
        line, _ = _user_frames(exc.__traceback__, path)
        raise ScriptError(f"{name}:{line}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any error in user code becomes one message
        line, details = _user_frames(exc.__traceback__, path)
        kind = type(exc).__name__
        hint = _import_hint(exc) if isinstance(exc, ImportError) else ""
        at = f":{line}" if line else ""
        raise ScriptError(f"{name}{at}: {kind} while importing the script: {exc}{hint}",
                          details=f"Traceback (most recent call last):\n{details}{kind}: {exc}\n",
                          transient=isinstance(exc, (ImportError, OSError))) from None
    return module


# Names of the original's later releases that this project does not provide (yet), and what to do instead.
_NOT_PROVIDED = {
    "mlpipeline.api": ("2.0a4.post9 ... 2.0a7.post1", "run the project with mlpipeline run / mlpipeline test"),
    "mlpipeline_execute_exeperiment": ("1.1a3.post9 ... 2.0a7.post1", "run the project with mlpipeline -r (or "
                                                                      "mlpipeline run), --version NAME for one version"),
    "mlpipeline_execute_pipeline": ("1.1a3.post9 ... 2.0a7.post1", "run the project with mlpipeline -r (or "
                                                                   "mlpipeline run)"),
    "get_experiment": ("2.0a3.post1 ... 2.0a4.post8", "run the project with mlpipeline run / mlpipeline test"),
    "ExperimentWrapper": ("1.1a3.post9 ... 2.0a7.post1", "run the project with mlpipeline run / mlpipeline test"),
    "Datasets": ("2.0a4.post1 ... 2.0a7.post1", "load the data in the DataLoader (mlpipeline.data has loaders)"),
    "PipelineConfig": ("2.0a5 ... 2.0a7.post1", "set the project up in mlp.config"),
}


def _import_hint(exc: ImportError) -> str:
    """What to do about an ImportError: a name of a release of the original that is not provided says which
    release it comes from; anything else is a package to install or an import to fix."""
    module = exc.name or ""
    missing = str(exc).split("'")[1] if str(exc).startswith("cannot import name '") else ""
    for key in (module, missing, *(m for m in _NOT_PROVIDED if module.startswith(m + "."))):
        if key in _NOT_PROVIDED and module.startswith("mlpipeline"):
            generation, instead = _NOT_PROVIDED[key]
            return f"; {key} is of the original's {generation} and is not provided here yet: {instead}"
    return "; install the package or fix the import"


def _safe_dir_part(text: str) -> bool:
    return text not in ("", ".", "..") and "/" not in text and "\\" not in text and "\0" not in text \
        and ".." not in text.split(os.sep)


NAME_MAX = 255  # bytes in one file name on Linux file systems (a version's model dir is one)


def _check_version(name: str, version: Version, command: bool = False) -> None:
    label = f"{name}: version {version.get(version_parameters.NAME)!r}"
    vname = str(version.get(version_parameters.NAME))
    if not _safe_dir_part(vname) or vname.startswith("-"):
        raise ScriptError(f"{label}: a version name names its model dir, so it cannot contain '/' or be '.' or '..'"
                          f"{' or start with -' if vname.startswith('-') else ''}; rename it (e.g. lr_0.1)")
    if any(ord(c) < 32 or ord(c) == 127 for c in vname):
        raise ScriptError(f"{label}: a version name cannot hold control characters (a newline, a tab); they "
                          f"would split log lines and file names; rename it")
    suffix = version.get(version_parameters.MODEL_DIR_SUFFIX)
    if version.get(version_parameters.EXPERIMENT_DIR_SUFFIX) is not None:
        suffix = version[version_parameters.EXPERIMENT_DIR_SUFFIX]  # (experiment_dir_suffix: the same rules)
    if suffix is not None and (not isinstance(suffix, str) or not _safe_dir_part(suffix) or ".." in suffix
                               or any(ord(c) < 32 for c in suffix)):
        raise ScriptError(f"{label}: model_dir_suffix {suffix!r} must be text without '/', '..' or control "
                          f"characters (it is appended to the script's name under outputs/model_ckpts/)")
    stem = os.path.splitext(os.path.basename(name))[0]
    dir_name = stem + dir_suffix(version, vname)
    if len(dir_name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise ScriptError(f"{label}: its model dir name {dir_name[:40]!r}... is {len(dir_name.encode())} bytes, "
                          f"longer than the file system allows ({NAME_MAX}); use a shorter version name or "
                          f"model_dir_suffix")
    if command:  # a Command's versions are arguments: no dataloader, batch size or epochs needed
        return
    if version_parameters.EPOCH_COUNT_2X in version and version_parameters.EPOC_COUNT not in version:
        _check_2x_version(label, version)  # a 2.0a1 ... 2.0a7.post1 version: its loops count no steps
        return
    for key in MANDATORY:
        if version.get(key) is None:
            raise ScriptError(f"{label} has no {key}; set it in Versions(...) or add_version(..., {key}=...)")
    loader = version[version_parameters.DATALOADER]
    if getattr(type(loader), "_mlp_dataloader", False):  # built when first used (a class or function given)
        pass
    elif not (hasattr(loader, "get_train_input") and hasattr(loader, "get_train_sample_count")):
        raise ScriptError(f"{label}: dataloader is a {type(loader).__name__}, not an mlpipeline.helper.DataLoader; "
                          f"pass an instance of your DataLoader subclass")
    for key, minimum in ((version_parameters.BATCH_SIZE, 1), (version_parameters.EPOC_COUNT, 0)):
        value = version[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ScriptError(f"{label}: {key} = {value!r} must be a number >= {minimum}")


def _check_2x_version(label: str, version: Version) -> None:
    """A 2.x version needs a dataloader (a ``DataLoaderCallableWrapper`` is not built to be checked); its
    batch size and epoch count are the script's own business, as they were there."""
    loader = version.get(version_parameters.DATALOADER)
    if getattr(type(loader), "_mlp_dataloader", False):
        return
    if not hasattr(loader, "get_train_input"):
        raise ScriptError(f"{label}: dataloader is a {type(loader).__name__}, not a DataLoaderABC; pass an instance "
                          f"of your DataLoaderABC subclass or DataLoaderCallableWrapper(YourDataLoader)")


def get_model(module: types.ModuleType, path: str, only: Optional[str] = None) -> Any:
    """The module's MODEL, checked: right type, non-empty Versions, mandatory parameters."""
    name = display(path)
    if not hasattr(module, "MODEL") and hasattr(module, "EXPERIMENT"):  # 1.1a3.post8 ... post12's name
        module.MODEL = module.EXPERIMENT  # type: ignore[attr-defined]
    if not hasattr(module, "MODEL"):
        raise ScriptError(f"{name}: defines no MODEL; end the script with MODEL = YourModel(versions), or run it "
                          f"as a plain script: add a [{os.path.basename(path)}] section of argument lines "
                          f"(small = --lr 0.1) to the queue config")
    model = module.MODEL
    if not all(hasattr(model, m) for m in ("train_model", "evaluate_model")):  # (a Model, or one in its shape)
        raise ScriptError(f"{name}: MODEL is of type {type(model).__name__}, not an mlpipeline.helper.Model; "
                          f"set MODEL to an instance of your Model subclass")
    versions: Any = getattr(model, "versions", None)
    if not hasattr(versions, "get_versions"):
        raise ScriptError(f"{name}: MODEL.versions is a {type(versions).__name__}, not mlpipeline.utils.Versions; "
                          f"pass a Versions object to Model(versions)")
    command = bool(getattr(model, "_mlp_command", False))
    if only is not None:  # running one version checks that one (describing checked them all)
        version = declared_version(versions, only)
        if version is not None:
            _check_version(name, version, command)
            return model
    listed = ordered(versions)
    searches = _searches(versions)
    if only is None:
        from .space import is_point_name

        for search in searches:
            _check_version(name, search_template(versions, search.name), command)
            taken = [v.get(version_parameters.NAME) for v in listed
                     if is_point_name(search.name, str(v.get(version_parameters.NAME)))]
            if taken:
                raise ScriptError(f"{name}: version {taken[0]!r} is named like a point of search {search.name!r} "
                                  f"(<name>-<8 hex>); rename the version or pass add_search(..., name=...) another "
                                  f"name")
    if not listed and not searches:
        raise ScriptError(f"{name}: MODEL's Versions has no versions; add one with versions.add_version('name', ...)")
    for version in listed:
        if only is None or version.get(version_parameters.NAME) == only:
            _check_version(name, version, command)
    return model


def declared_version(versions: Any, name: str) -> Any:
    """The version ``name`` as declared, found without sorting them all; None if
    it is not declared (or the Versions object cannot say quickly)."""
    try:
        found = versions.get_version(name)
    except Exception:  # noqa: BLE001 - an unknown name, or another Versions flavour
        return None
    return found if hasattr(found, "get") and found.get(version_parameters.NAME) == name else None


def describe(model: Any, path: str, sha256: str, deps: Optional[List[List[str]]] = None,
             fingerprint: str = "") -> ScriptInfo:
    """The plain-data description of a loaded, checked MODEL."""
    specs = []
    for version in ordered(model.versions):
        params = version_params(version)
        specs.append(VersionInfo(version[version_parameters.NAME], params, params_digest(params)))
    searches = [{**search.describe(), "template": version_params(search_template(model.versions, search.name))}
                for search in _searches(model.versions)]
    return ScriptInfo(os.path.abspath(path), sha256, specs, fingerprint, list(deps or []), searches)


def _searches(versions: Any) -> List[Any]:
    return list(getattr(versions, "searches", {}).values())


def search_template(versions: Any, name: str) -> Any:
    """The version every point of search ``name`` starts from (named ``<name>-00000000``)."""
    return versions.search_version(f"{name}-00000000", {})


def load_script(path: str, reads: Optional[Reads] = None) -> Tuple[types.ModuleType, Any, ScriptInfo]:
    """Import, check and describe a model script, recording the files it reads.

    Pass your own ``reads`` to learn the dependencies even when loading fails
    (``reads.deps`` is set once loading ends, either way).
    """
    path = os.path.abspath(path)
    reads = reads if reads is not None else Reads(path)
    with reads:
        module = load_module(path)
        reads.module = module
        model = get_model(module, path)
    source = module.__mlpipeline_source__
    sha = hashlib.sha256(source).hexdigest()  # of the bytes that ran, not a second read
    return module, model, describe(model, path, sha, reads.deps, fingerprint(path, source, reads.deps))


# --- What a script reads while it loads ------------------------------------------------------------------

_local = threading.local()      # .sinks: the recordings active on this thread
_hook_lock = threading.Lock()
_hook_installed = False
_roots: Optional[Tuple[str, ...]] = None


def _audit(event: str, args: tuple) -> None:
    """The one audit hook (it cannot be removed): notes files opened for
    reading, only while a ``recording()`` is active on the calling thread."""
    if event != "open":
        return
    sinks = getattr(_local, "sinks", None)
    if not sinks:
        return
    try:  # an exception here would fail the script's own open()
        path, mode, flags = args
        if isinstance(path, int):
            return
        if isinstance(mode, str):
            if any(c in mode for c in "wax+"):
                return
        elif flags & os.O_ACCMODE != os.O_RDONLY:
            return
        path = os.path.abspath(os.fsdecode(path))
        for sink in sinks:
            sink.add(path)
    except Exception:  # noqa: BLE001 - never break an open() for bookkeeping
        pass


class recording:  # noqa: N801 - used as a context manager, like contextlib's
    """``with recording() as opened:`` collects the absolute paths this thread
    opens for reading until the block ends (filtering is the caller's)."""

    def __init__(self) -> None:
        self.opened: Set[str] = set()

    def __enter__(self) -> Set[str]:
        global _hook_installed
        with _hook_lock:
            if not _hook_installed:
                sys.addaudithook(_audit)
                _hook_installed = True
        sinks = _local.__dict__.setdefault("sinks", [])
        sinks.append(self.opened)
        return self.opened

    def __exit__(self, *exc: Any) -> None:
        sinks = _local.sinks
        for index in range(len(sinks) - 1, -1, -1):
            if sinks[index] is self.opened:
                del sinks[index]
                break


def _excluded_roots() -> Tuple[str, ...]:
    global _roots
    if _roots is None:
        import site

        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                 PACKAGE_DIR, "/proc", "/dev", "/sys", "/etc"}
        try:
            roots.update(site.getsitepackages())
            roots.add(site.getusersitepackages())
        except AttributeError:  # old virtualenv's site module
            pass
        roots |= {os.path.realpath(r) for r in roots}
        _roots = tuple(sorted({r.rstrip(os.sep) + os.sep for r in roots if r and r.rstrip(os.sep)}))
    return _roots


def is_local_file(path: str) -> bool:
    """True for a file that belongs to the user's project, not to Python, an
    installed package, mlpipeline itself or the system (/proc, /dev, /sys, /etc)."""
    parts = path.split(os.sep)
    if "__pycache__" in parts or "site-packages" in parts or "dist-packages" in parts:
        return False
    roots = _excluded_roots()
    return not (path.startswith(roots) or os.path.realpath(path).startswith(roots))


def _module_file(module: Any) -> Optional[str]:
    try:
        file = vars(module).get("__file__")
    except TypeError:  # not a module: something put a plain object in sys.modules
        return None
    return os.path.abspath(file) if isinstance(file, str) and file.endswith(".py") else None


def _used_module_files(module: types.ModuleType) -> Set[str]:
    """Local modules the script's namespace refers to (modules, or classes and
    functions defined in them), followed through those modules. This finds a
    helper that an earlier load in this process had already imported."""
    files: Set[str] = set()
    seen, todo = {id(module)}, [module]
    while todo:
        for obj in list(vars(todo.pop()).values()):
            if isinstance(obj, types.ModuleType):
                target: Any = obj
            elif isinstance(obj, type):
                target = sys.modules.get(vars(obj).get("__module__") or "")
            elif isinstance(obj, types.FunctionType):
                target = sys.modules.get(obj.__module__ or "")
            else:
                continue
            if target is None or id(target) in seen:
                continue
            seen.add(id(target))
            file = _module_file(target)
            if file and is_local_file(file):
                files.add(file)
                todo.append(target)
    return files


class Reads:
    """The files a script reads while it loads, as ``deps`` (``[abs path,
    sha256]``, sorted): local modules it imports and data files it opens for
    reading, not the script itself. Use as a context manager around loading;
    set ``module`` once it exists to also catch helpers imported earlier."""

    def __init__(self, script: str):
        self.script = os.path.abspath(script)
        self.module: Optional[types.ModuleType] = None
        self.deps: List[List[str]] = []
        self._recording = recording()
        self._before: Set[str] = set()

    def __enter__(self) -> Reads:
        self._before = set(sys.modules)
        self._opened = self._recording.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._recording.__exit__(*exc)
        paths = set(self._opened)
        for name in set(sys.modules) - self._before:
            file = _module_file(sys.modules.get(name))
            if file:
                paths.add(file)
        if self.module is not None:
            paths |= _used_module_files(self.module)
        self.deps = _hashed(p for p in paths if p != self.script and is_local_file(p))


def _hashed(paths: Iterable[str]) -> List[List[str]]:
    deps = []
    for path in sorted(set(paths)):
        if os.path.isfile(path):  # a directory or a file that failed to open is no dependency
            try:
                deps.append([path, file_sha256(path)])
            except OSError:
                pass
    return deps


# calls that declare versions: their statements are left out of the -u fingerprint, so adding a version (or
# extending a sweep) does not make the versions already run look changed
VERSION_DECLARATIONS = ("add_version", "addV", "add_grid", "add_random", "add_search")


def _declares_versions(node: ast.AST) -> bool:
    import ast

    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in VERSION_DECLARATIONS
               for n in ast.walk(node))


def fingerprint(path: str, source: bytes, deps: List[List[str]]) -> str:
    """The sha256 of what trains, which ``-u`` compares besides a version's params.

    It covers the script's code without its version declarations, and every
    file the script read while loading. The rule: parse the script, drop each
    top-level statement that contains a call to ``.add_version(...)``,
    ``.addV(...)``, ``.add_grid(...)``, ``.add_random(...)`` or ``.add_search(...)``
    anywhere inside it (so a loop that adds versions goes too),
    keep everything else (``Versions(...)`` sets defaults, so it stays), and
    hash ``ast.dump`` of the rest, so comments, blank lines and line numbers do
    not count. Then add each dependency's path relative to the script's folder
    and its content sha256, in sorted order. Adding a version leaves the
    fingerprint as it was; editing the model class, a helper module it imports,
    or a data file read at import changes it.
    """
    import ast

    digest = hashlib.sha256()
    try:
        tree = ast.parse(source, path)
    except (SyntaxError, ValueError):
        digest.update(b"source\0" + source)
    else:
        body = [stmt for stmt in tree.body if not _declares_versions(stmt)]
        digest.update(ast.dump(ast.Module(body=body, type_ignores=[])).encode())
    folder = os.path.dirname(os.path.abspath(path))
    for rel, sha in sorted((os.path.relpath(dep, folder), sha) for dep, sha in deps):
        digest.update(f"\0{rel}\0{sha}".encode())
    return digest.hexdigest()
