"""Files the dashboard hands out or takes in: a model dir's listing, one file,
the whole dir as a streamed zip, and uploaded scripts — validated by the same
describe child the runner uses before they are saved into models_dir."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from typing import IO, Any, Dict, Iterator, List, Optional, cast

from ..plan.config import Project
from ..core.errors import UsageError
from .guard import inside

SCRIPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py")
INPUT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
MAX_LISTED = 2000


def model_dir_of(project: Project, run: Dict[str, Any]) -> str:
    """The run's model dir, only if it lies inside the project."""
    model_dir = run.get("model_dir")
    if not model_dir or not os.path.isdir(model_dir):
        raise UsageError(f"run {run['id']} has no model dir on this machine")
    if not inside(project.root, model_dir):
        raise UsageError(f"run {run['id']}: its model dir {model_dir} is outside the project; not served")
    return os.path.realpath(model_dir)


def _files(base: str) -> Iterator[str]:
    """Every file under ``base``, sorted, leaving out links that point out of it."""
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if inside(base, os.path.join(folder, d)))
        for name in sorted(files):
            path = os.path.join(folder, name)
            if inside(base, path) and os.path.isfile(path):
                yield path


def list_files(base: str) -> List[Dict[str, Any]]:
    """Files under ``base`` (links that point out of it are left out), up to ``MAX_LISTED``."""
    found: List[Dict[str, Any]] = []
    for path in _files(base):
        found.append({"path": os.path.relpath(path, base), "size": os.path.getsize(path)})
        if len(found) >= MAX_LISTED:
            break
    return found


class _Chunks:
    """A write-only file for ZipFile whose writes are collected and handed out."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.written = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_stream(base: str, top: str) -> Iterator[bytes]:
    """``base`` as a zip, streamed: never held whole in memory or on disk."""
    out = _Chunks()
    with zipfile.ZipFile(cast(IO[bytes], out), "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for path in _files(base):
            arcname = os.path.join(top, os.path.relpath(path, base))
            with open(path, "rb") as source, archive.open(arcname, "w", force_zip64=True) as target:
                while True:
                    block = source.read(1 << 20)
                    if not block:
                        break
                    target.write(block)
                    yield out.take()
            yield out.take()
    yield out.take()


def check_script_upload(name: str, data: bytes, limit: int) -> str:
    """The source of an uploaded script, or a one-line UsageError saying what is
    wrong with it. Compiles it (which runs nothing) to report a syntax error."""
    if not name.endswith(".py"):
        raise UsageError(f"{name!r}: only Python model scripts (.py) can be uploaded")
    if not SCRIPT_NAME.fullmatch(name):
        raise UsageError(f"{name!r}: give the script a plain file name (letters, digits, _ . -), e.g. my_model.py")
    if len(data) > limit:
        raise UsageError(f"{name}: {len(data)} bytes is over the upload limit of {limit} bytes "
                         f"(mlpipeline serve --max-upload)")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise UsageError(f"{name}:{exc.lineno}: {type(exc).__name__}: {exc.msg}; fix it and upload again") from None
    except ValueError as exc:  # NUL bytes
        raise UsageError(f"{name}: {exc}") from None
    return source


def save_script(project: Project, name: str, data: bytes, replace: bool, timeout: float) -> Dict[str, Any]:
    """Probe an uploaded script in a child process (where the runner would load
    it: the project root) from a folder of its own inside models_dir; if it
    loads and defines versions, move it into models_dir. Nothing of it ever
    runs in this process."""
    from ..plan.describe import Describer

    target = os.path.join(project.models_dir, name)
    if os.path.exists(target) and not replace:
        raise UsageError(f"{name} already exists in {os.path.relpath(project.models_dir, project.root)}/; rename "
                         f"the upload or ask to replace it")
    import ast

    from ..script.plain import binds_model, looks_plain

    tree = ast.parse(data.decode("utf-8"))  # (checked by the caller: it compiles)
    if not binds_model(tree) and looks_plain(tree):  # a plain training script: its versions are argument lines
        with open(target + ".upload", "wb") as handle:  # never run here, nor probed: it would train
            handle.write(data)
        os.replace(target + ".upload", target)
        return {"saved": os.path.relpath(target, project.root), "script": name, "versions": [], "plain": True,
                "hint": f"a plain script: list it in models.config with a [{name}] section of argument lines, "
                        f"e.g. small = --lr 0.1"}
    folder = tempfile.mkdtemp(prefix=".mlpipeline-upload-", dir=project.models_dir)
    try:
        staged = os.path.join(folder, name)
        with open(staged, "wb") as handle:
            handle.write(data)
        with Describer(project.root, lambda key: None, lambda key, entry: None, timeout=timeout) as describer:
            described = describer.describe_now(staged)
        if not described.ok or described.info is None:
            error = described.error
            message = str(error).replace(staged, name).replace(os.path.relpath(staged), name)
            raise UploadRejected(message, getattr(error, "details", "") or "")
        versions = [v.name for v in described.info.versions]
        if not versions:
            raise UploadRejected(f"{name}: MODEL defines no versions; add at least one with add_version", "")
        os.replace(staged, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"saved": os.path.relpath(target, project.root), "script": name, "versions": versions}


class UploadRejected(UsageError):
    """The probe child could not load the uploaded script; ``details`` is its traceback."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details


def defines_predict(path: str) -> Optional[bool]:
    """Whether the script at ``path`` defines ``predict`` (a function, a method, a name it binds or
    imports), read without running it: the web process never imports model code. None when that
    cannot be told: the file is unreadable, or a class of it derives from one imported from outside
    mlpipeline (which may define ``predict``)."""
    import ast

    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return None
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "predict":
            return True
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store) and \
                getattr(node, "id", getattr(node, "attr", None)) == "predict":
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            for alias in node.names:
                if (alias.asname or alias.name.split(".")[-1]) == "predict":
                    return True
                if not (module or alias.name).startswith("mlpipeline"):
                    imported.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id in imported for b in node.bases):
            return None
    return False


def safe_input_name(name: Optional[str]) -> str:
    name = os.path.basename((name or "input").replace("\\", "/"))
    return name if INPUT_NAME.fullmatch(name) else "input"
