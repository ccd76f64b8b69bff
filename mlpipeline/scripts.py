"""Loading a model script and checking that it defines a usable MODEL.

In execution mode only a short-lived child process calls ``load_script``
(see ``child.py``); the runner parent sees scripts through ``ScriptInfo``,
plain data cached by the script's sha256.
"""
from __future__ import annotations

import os
import sys
import types
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ._versions import MANDATORY, Version, params_digest, version_params, version_parameters
from .errors import MLPipelineError, ScriptError


@dataclass
class VersionSpec:
    name: str
    params: Dict[str, Any]
    params_sha256: str


@dataclass
class ScriptInfo:
    path: str
    sha256: str
    versions: List[VersionSpec] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "ScriptInfo":
        return cls(data["path"], data["sha256"], [VersionSpec(**v) for v in data["versions"]])

    @property
    def names(self) -> List[str]:
        return [v.name for v in self.versions]


def file_sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def display(path: str) -> str:
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


def _user_frames(tb: Optional[types.TracebackType], path: str) -> Tuple[Optional[int], str]:
    """The line in ``path`` where an import-time exception surfaced, and the
    traceback with mlpipeline's own frames left out."""
    import traceback

    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(os.path.dirname(__file__))]
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
    module.__mlpipeline_source__ = source  # the exact bytes that run: copied into the model dir
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
        hint = "; install the package or fix the import" if isinstance(exc, ImportError) else ""
        at = f":{line}" if line else ""
        raise ScriptError(f"{name}{at}: {kind} while importing the script: {exc}{hint}",
                          details=f"Traceback (most recent call last):\n{details}{kind}: {exc}\n") from None
    return module


def _safe_dir_part(text: str) -> bool:
    return text not in ("", ".", "..") and "/" not in text and "\\" not in text and "\0" not in text \
        and ".." not in text.split(os.sep)


def _check_version(name: str, version: Version) -> None:
    label = f"{name}: version {version.get(version_parameters.NAME)!r}"
    vname = str(version.get(version_parameters.NAME))
    if not _safe_dir_part(vname) or vname.startswith("-"):
        raise ScriptError(f"{label}: a version name names its model dir, so it cannot contain '/' or be '.' or '..'"
                          f"{' or start with -' if vname.startswith('-') else ''}; rename it (e.g. lr_0.1)")
    suffix = version.get(version_parameters.MODEL_DIR_SUFFIX)
    if suffix is not None and (not isinstance(suffix, str) or not _safe_dir_part(suffix) or ".." in suffix):
        raise ScriptError(f"{label}: model_dir_suffix {suffix!r} must be text without '/' or '..' (it is appended "
                          f"to the script's name under outputs/model_ckpts/)")
    for key in MANDATORY:
        if version.get(key) is None:
            raise ScriptError(f"{label} has no {key}; set it in Versions(...) or add_version(..., {key}=...)")
    loader = version[version_parameters.DATALOADER]
    if not (hasattr(loader, "get_train_input") and hasattr(loader, "get_train_sample_count")):
        raise ScriptError(f"{label}: dataloader is a {type(loader).__name__}, not an mlpipeline.helper.DataLoader; "
                          f"pass an instance of your DataLoader subclass")
    for key, minimum in ((version_parameters.BATCH_SIZE, 1), (version_parameters.EPOC_COUNT, 0)):
        value = version[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ScriptError(f"{label}: {key} = {value!r} must be a number >= {minimum}")


def get_model(module: types.ModuleType, path: str) -> Any:
    """The module's MODEL, checked: right type, non-empty Versions, mandatory parameters."""
    from .helper import Model  # local: helper imports utils; keep this module light

    name = display(path)
    if not hasattr(module, "MODEL"):
        raise ScriptError(f"{name}: defines no MODEL; end the script with MODEL = YourModel(versions)")
    model = module.MODEL
    if not isinstance(model, Model) and not all(hasattr(model, m) for m in ("train_model", "evaluate_model")):
        raise ScriptError(f"{name}: MODEL is of type {type(model).__name__}, not an mlpipeline.helper.Model; "
                          f"set MODEL to an instance of your Model subclass")
    versions = getattr(model, "versions", None)
    if not hasattr(versions, "get_versions"):
        raise ScriptError(f"{name}: MODEL.versions is a {type(versions).__name__}, not mlpipeline.utils.Versions; "
                          f"pass a Versions object to Model(versions)")
    listed = versions.get_versions()
    if not listed:
        raise ScriptError(f"{name}: MODEL's Versions has no versions; add one with versions.add_version('name', ...)")
    for version in listed:
        _check_version(name, version)
    return model


def describe(model: Any, path: str, sha256: str) -> ScriptInfo:
    specs = []
    for version in model.versions.get_versions():
        params = version_params(version)
        specs.append(VersionSpec(version[version_parameters.NAME], params, params_digest(params)))
    return ScriptInfo(os.path.abspath(path), sha256, specs)


def load_script(path: str) -> Tuple[types.ModuleType, Any, ScriptInfo]:
    """Import, check and describe a model script."""
    sha = file_sha256(path)
    module = load_module(path)
    model = get_model(module, path)
    return module, model, describe(model, path, sha)
