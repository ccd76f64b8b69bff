"""Plain training scripts as model scripts.

A ``.py`` in the models folder that binds no ``MODEL`` and has a section of argument lines named after it in
the queue config (``[train.py]`` / ``small = --lr 0.1``) runs each line as ``python train.py <arguments>``:
its own ``__main__``, ``sys.argv``, its folder first on ``sys.path``, the project root as working folder, and
``MLPIPELINE_RUN_ID``, ``MLPIPELINE_MODEL_DIR``, ``MLPIPELINE_VERSION`` in its environment. It is never
imported to be described: what ``-u`` compares (its code and the local modules it imports) and what a warm
parent preloads (the installed packages it imports) are read from its syntax tree.

``Command`` (``script.command``) declares the same from Python, so sweeps and searches reach plain scripts.
"""
from __future__ import annotations

import os
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

from ..core.errors import ScriptError, display
from . import report as _report

if TYPE_CHECKING:  # (ast, shlex and hashlib are imported where they are used: a MODEL's version never needs them)
    import ast

# the environment a plain script (and what it starts) reads
ENV_RUN_ID, ENV_MODEL_DIR, ENV_VERSION, ENV_TEST_MODE = ("MLPIPELINE_RUN_ID", "MLPIPELINE_MODEL_DIR",
                                                         "MLPIPELINE_VERSION", "MLPIPELINE_TEST_MODE")
DEFAULT_VERSION = "default"  # a listed plain script's name alone in its section: no arguments


# --- Which scripts are plain ------------------------------------------------------------------------------

def binds_model(tree: ast.AST) -> bool:
    """Whether a script's code can bind ``MODEL`` (or ``EXPERIMENT``, its 1.1a3.post8 ... post12 name:
    assigns, imports or defines it, or imports ``*``): a model script, whatever its config says."""
    import ast

    names = ("MODEL", "EXPERIMENT")

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                alias.name == "*" or (alias.asname or alias.name) in names for alias in node.names):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            return True
        if isinstance(node, ast.Global) and any(n in node.names for n in names):
            return True
    return False


PLAIN_API = {"log_metric", "log_params", "test_mode"}


def looks_plain(tree: ast.AST) -> bool:
    """Whether a script without MODEL reads like a training script meant to run as itself (it parses its
    arguments, guards ``__main__`` or logs through ``mlpipeline.log_metric``): describing must not run it."""
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module == "argparse" or node.module == "mlpipeline" and any(
                a.name in PLAIN_API for a in node.names)):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "argv" and isinstance(node.value, ast.Name) \
                and node.value.id == "sys":
            return True
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "__name__":
            return True
    return False


def read_source(path: str) -> bytes:
    """A script's bytes; ScriptError naming it when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ScriptError(f"{display(path)}: cannot read: {exc.strerror}") from None


def read_tree(path: str) -> ast.AST:
    """A script's syntax tree; ScriptError naming the file (unreadable) or the line (does not parse)."""
    return parse_source(path, read_source(path))


def parse_source(path: str, source: bytes) -> ast.AST:
    """The script's syntax tree; ScriptError naming the line when it does not parse."""
    import ast

    try:
        return ast.parse(source, path)
    except SyntaxError as exc:
        raise ScriptError(f"{display(path)}:{exc.lineno}: SyntaxError: {exc.msg}; fix the script") from None
    except ValueError as exc:
        raise ScriptError(f"{display(path)}: not Python source ({exc})") from None


# --- Argument lines ---------------------------------------------------------------------------------------

def _value(text: str) -> Any:
    """A command-line value as data: whole numbers and finite floats as numbers, the rest as text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if number == number and number not in (float("inf"), float("-inf")) else text


def _is_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not isinstance(_value(token), (int, float))


def split_line(line: str) -> List[str]:
    """An argument line as the shell would split it; ValueError (its message says why) on bad quoting."""
    import shlex

    try:
        return shlex.split(line or "", comments=False, posix=True)
    except ValueError as exc:
        raise ValueError(f"cannot split {line!r} into arguments ({exc}); close the quote") from None


def params_of(argv: List[str]) -> Dict[str, Any]:
    """The parameters an argument list sets, as a reader expects them: ``--lr 0.1`` → ``{"lr": 0.1}``,
    ``--num-layers=2`` → ``{"num_layers": 2}``, a flag alone → True, several values → a list, arguments before
    any option under ``"args"``."""
    params: Dict[str, Any] = {}
    key: Optional[str] = None
    for token in argv:
        if token == "--":
            key = "args"
            continue
        if _is_option(token) and key != "args":
            name, eq, value = token.lstrip("-").partition("=")
            key = name.replace("-", "_") or token
            params[key] = _value(value) if eq else True
            if eq:
                key = None
            continue
        value = _value(token)
        if key is None or key == "args":
            params.setdefault("args", []).append(value)
        elif params.get(key) is True:
            params[key] = value
        elif isinstance(params[key], list):
            params[key].append(value)
        else:
            params[key] = [params[key], value]
    return params


def argv_of(params: Dict[str, Any], skip: Iterable[str] = ()) -> List[str]:
    """A version's parameters as arguments: ``{"lr": 0.1}`` → ``--lr 0.1``; True → the flag alone, False and
    None → left out, a list → its values after the option; ``args`` → positional arguments first."""
    skipped = set(skip)
    argv = [str(v) for v in _as_list(params.get("args"))] if "args" not in skipped else []
    for key, value in params.items():
        if key in skipped or key == "args" or value is None or value is False:
            continue
        option = key if key.startswith("-") else f"--{key}"
        if value is True:
            argv.append(option)
        elif isinstance(value, (list, tuple)):
            argv += [option] + [str(v) for v in value]
        else:
            argv += [option, str(value)]
    return argv


def _as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


# --- What a plain script depends on, from its syntax tree ------------------------------------------------

def _imported_names(tree: ast.AST) -> List[Tuple[str, List[str]]]:
    """(module, names imported from it) for every absolute import in the tree, in order."""
    import ast

    found: List[Tuple[str, List[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _local_file(folder: str, module: str) -> Optional[str]:
    base = os.path.join(folder, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _installed_top(name: str) -> bool:
    """Whether ``name`` is an installed package (site-packages), found without importing it."""
    from importlib.util import find_spec

    if name in sys.builtin_module_names or name in getattr(sys, "stdlib_module_names", ()):
        return False
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = (spec.origin or "") if spec else ""
    if spec and not origin and spec.submodule_search_locations:
        origin = next(iter(spec.submodule_search_locations), "")
    return f"{os.sep}site-packages{os.sep}" in origin or f"{os.sep}dist-packages{os.sep}" in origin


def dependencies(path: str, tree: ast.AST) -> Tuple[List[str], List[str]]:
    """(local module files the script imports, followed through them; the installed packages it imports,
    in the order they appear). Local modules are found beside the script, as ``python script.py`` finds them."""
    import ast

    folder = os.path.dirname(os.path.abspath(path))
    local: Dict[str, None] = {}
    installed: Dict[str, None] = {}
    todo = [tree]
    while todo:
        for module, names in _imported_names(todo.pop()):
            files = [_local_file(folder, module)] + [_local_file(folder, f"{module}.{n}") for n in names]
            found = [f for f in files if f and f not in local and os.path.abspath(f) != os.path.abspath(path)]
            for file in found:
                local[file] = None
                try:
                    with open(file, "rb") as handle:
                        todo.append(ast.parse(handle.read(), file))
                except (OSError, SyntaxError, ValueError):
                    pass  # its content still counts in the fingerprint; the run will say what is wrong
            top = module.partition(".")[0]
            if not files[0] and top not in installed and top != "mlpipeline" and not _local_file(folder, top) \
                    and _installed_top(top):
                installed[top] = None
    return sorted(local), list(installed)


def fingerprint(path: str, tree: ast.AST, deps: List[List[str]]) -> str:
    """What ``-u`` compares for a plain script besides its arguments: its code (comments and layout aside)
    and the content of the local modules it imports."""
    import ast
    import hashlib

    digest = hashlib.sha256(b"plain\0" + ast.dump(tree).encode())
    folder = os.path.dirname(os.path.abspath(path))
    for rel, sha in sorted((os.path.relpath(dep, folder), sha) for dep, sha in deps):
        digest.update(f"\0{rel}\0{sha}".encode())
    return digest.hexdigest()


# --- Running one ------------------------------------------------------------------------------------------

class ScriptExit(Exception):
    """A plain script ended with a non-zero exit status."""

    def __init__(self, message: str, exit_status: Any):
        super().__init__(message)
        self.exit_status = exit_status


def test_mode() -> bool:
    """True while the runner runs this script in test mode (``mlpipeline`` without ``-r``): cut it to one step."""
    return os.environ.get(ENV_TEST_MODE) == "1"


test_mode.__test__ = False  # type: ignore[attr-defined]  # (pytest: imported into a test module, not a test)


class _ParseWatch:
    """Notes the namespace the script's first ``parse_args`` over its own arguments returns: its parameters
    with the parser's defaults. Installed on ``argparse.ArgumentParser`` for the script's run only."""

    def __init__(self) -> None:
        import argparse

        self.cls = argparse.ArgumentParser
        self.original = self.cls.parse_known_args
        self.namespace: Optional[Dict[str, Any]] = None
        watch = self

        def parse_known_args(parser: Any, args: Any = None, namespace: Any = None) -> Any:
            parsed = watch.original(parser, args, namespace)
            if watch.namespace is None and (args is None or list(args) == sys.argv[1:]):
                watch.namespace = dict(vars(parsed[0]))
                _send_params(watch.namespace)
            return parsed

        self.cls.parse_known_args = parse_known_args  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        self.cls.parse_known_args = self.original  # type: ignore[method-assign]


class _StderrTail:
    """``sys.stderr`` while a plain script runs: writes go through, the last line is kept for its error."""

    def __init__(self, stream: Any):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> int:
        lines = [line for line in str(text).splitlines() if line.strip()]
        if lines:
            self.last = lines[-1].strip()[:300]
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _exit_as_return(real_exit: Any) -> Any:
    """``os._exit`` while a plain script runs: called by the script itself (this process, its main thread) it
    ends the script as ``sys.exit`` would, so its status is recorded (and a test-mode runner, which runs it
    in its own process, lives on); a worker the script forked, or another thread, still leaves at once."""
    import threading

    pid = os.getpid()

    def _exit(status: int) -> None:
        if os.getpid() == pid and threading.current_thread() is threading.main_thread():
            raise SystemExit(status)
        real_exit(status)

    return _exit


def _send_params(params: Dict[str, Any]) -> None:
    from ..core.jsonable import jsonable

    try:
        _report.current().params({str(k): jsonable(v) for k, v in params.items()})
    except (TypeError, ValueError):
        pass  # parameters that cannot be shown are not worth failing the run over


class version_env:  # noqa: N801 - a context manager, like contextlib's
    """The environment a version runs in (plain script or MODEL, and whatever it starts): its run id, model
    dir, name and whether it is test mode; the process's own values are back afterwards."""

    def __init__(self, run_id: Optional[int], model_dir: str, version: str, exec_mode: str):
        from .utils import ExecutionModeKeys

        self.env = {ENV_RUN_ID: str(run_id or ""), ENV_MODEL_DIR: os.path.abspath(model_dir), ENV_VERSION: version,
                    ENV_TEST_MODE: "1" if exec_mode == ExecutionModeKeys.TEST else "0"}
        self.saved: Dict[str, Optional[str]] = {}

    def __enter__(self) -> None:
        self.saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)

    def __exit__(self, *exc: Any) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_plain(script: str, argv: List[str], version: str, model_dir: str, exec_mode: str,
              keep_script: bool = True) -> Any:
    """Run ``script`` as ``python script <argv>`` in this process; its VersionResult. A non-zero exit is a
    ScriptExit; its TensorBoard scalars under ``model_dir`` become curves (also when it fails)."""
    from .execute import VersionResult
    from .utils import ExecutionModeKeys

    script = os.path.abspath(script)
    source = read_source(script)
    code = compile(source, script, "exec")
    test = exec_mode == ExecutionModeKeys.TEST
    os.makedirs(model_dir, exist_ok=True)
    if keep_script and not test:
        with open(os.path.join(model_dir, os.path.basename(script)), "wb") as handle:
            handle.write(source)
    reporter = _report.current()
    import shlex

    reporter.log(f"version {version}: python {display(script)} {shlex.join(argv)}".rstrip())
    saved_argv, saved_path, saved_main = sys.argv, list(sys.path), sys.modules.get("__main__")
    # in test mode versions run one after another in one process: each sees what a fresh `python` would
    saved_modules, saved_filters, saved_stdout = set(sys.modules), list(warnings.filters), sys.stdout
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.argv = [script] + list(argv)
    sys.path.insert(0, os.path.dirname(script))
    sys.modules["__main__"] = main
    watch = _ParseWatch()
    real_exit = os._exit
    os._exit = _exit_as_return(real_exit)
    tail = sys.stderr = _StderrTail(sys.stderr)
    earlier = set(event_files(model_dir))  # an earlier attempt's or run's: not this run's points
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:
        status = exc.code
        if status not in (None, 0):
            if isinstance(status, int) and not isinstance(status, bool):
                said = f": {tail.last}" if tail.last else "; its output says why"
                raise ScriptExit(f"{display(script)} exited with status {status}{said}", status) from None
            print(status, file=sys.stderr, flush=True)  # as python prints sys.exit("why"), and exits 1
            raise ScriptExit(f"{display(script)} exited with status 1: {status}", 1) from None
    except Exception as exc:
        if not test:  # its output (the run's log) ends as python's would; test mode shows the traceback itself
            from ..proc.outcome import user_traceback

            print(user_traceback(exc).rstrip(), file=sys.stderr, flush=True)
        raise
    finally:
        sys.stderr = tail.stream
        os._exit = real_exit
        watch.close()
        sys.argv = saved_argv
        sys.path[:] = saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        _forget_local_modules(saved_modules, os.path.dirname(script))
        warnings.filters[:] = saved_filters  # type: ignore[index]
        sys.stdout = saved_stdout
        read_tensorboard(model_dir, earlier)
    return VersionResult()


def _forget_local_modules(before: set, folder: str) -> None:
    """Drop the modules a script imported from the project (its own helpers), so the next version in this
    process imports its own (a sub-folder's ``helper``, a registry filled again): installed packages stay."""
    project = os.path.realpath(os.getcwd())
    roots = tuple(os.path.realpath(p) + os.sep for p in {folder, project})
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        real = os.path.realpath(path) if path else ""
        if real.startswith(roots) and "-packages" + os.sep not in real:
            sys.modules.pop(name, None)


# --- TensorBoard event files -------------------------------------------------------------------------------

def event_files(model_dir: str) -> List[str]:
    """The TensorBoard event files under ``model_dir`` (none when it is not there)."""
    found = []
    for folder, _, files in os.walk(model_dir):
        found += [os.path.join(folder, name) for name in files if "tfevents" in name]
    return sorted(found)


def read_tensorboard(model_dir: str, earlier: Iterable[str] = ()) -> int:
    """Send the scalars of the TensorBoard event files under ``model_dir`` as curves, but for the ``earlier``
    ones (there before the version started: a writer starts a file of its own each run), read with the
    tensorboard package's own loader (nothing when it is not installed). The split is the folder the file is
    in below the model dir (``train``, ``validation``), else ``train``. The points sent."""
    known = set(earlier)
    files = [path for path in event_files(model_dir) if path not in known]
    if not files:
        return 0
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboard.util import tensor_util
    except ImportError:
        _report.current().log(f"{len(files)} TensorBoard event file(s) under {model_dir} not read: the tensorboard "
                              f"package is not installed (pip install tensorboard)")
        return 0
    reporter, sent = _report.current(), 0
    for path in files:
        folder = os.path.relpath(os.path.dirname(path), model_dir)
        split = "train" if folder in (".", "") else folder.replace(os.sep, "/")
        try:
            for event in EventFileLoader(path).Load():
                for value in event.summary.value:
                    number = _scalar(value, tensor_util)
                    if number is not None:
                        reporter.metric(value.tag, number, step=int(event.step), split=split)
                        sent += 1
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file costs its points, not the run
            reporter.log(f"TensorBoard file {path}: stopped reading ({type(exc).__name__}: {exc})")
    return sent


def _scalar(value: Any, tensor_util: Any) -> Optional[float]:
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor") and value.metadata.plugin_data.plugin_name in ("scalars", ""):
        try:
            array = tensor_util.make_ndarray(value.tensor)
        except Exception:  # noqa: BLE001 - not a numeric tensor
            return None
        if array.size == 1 and array.dtype.kind in "fiub":
            return float(array.reshape(()))
    return None


# --- Described for the planner ----------------------------------------------------------------------------

class PlainVersion(NamedTuple):
    """One argument line: a version of a plain script."""

    name: str
    params: Dict[str, Any]
    params_sha256: str
    argv: Tuple[str, ...]


def describe_plain(path: str) -> Tuple[Any, List[str]]:
    """(ScriptInfo of a plain script, the local files its fingerprint read) — read, never run. ScriptError
    when it does not parse; ``None`` info when its code binds MODEL (a model script after all)."""
    import hashlib

    from .loading import ScriptInfo, _hashed

    path = os.path.abspath(path)
    source = read_source(path)
    tree = parse_source(path, source)
    if binds_model(tree):
        return None, []
    local, installed = dependencies(path, tree)
    deps = _hashed(local)
    return ScriptInfo(path, hashlib.sha256(source).hexdigest(), [], fingerprint(path, tree, deps), deps, [],
                      installed, plain=True), local


def version_of(name: str, line: Optional[str]) -> PlainVersion:
    """The version an argument line declares; ValueError (what is wrong, and the fix) when it cannot be one."""
    from .loading import _safe_dir_part
    from .versions import params_digest

    if not _safe_dir_part(name) or name.startswith("-") or any(ord(c) < 32 for c in name):
        raise ValueError(f"version name {name!r} names its model dir: no '/', no leading '-', not '.' or '..'; "
                         f"rename it")
    argv = split_line(line or "")
    return PlainVersion(name, params_of(argv), params_digest({"argv": argv}), tuple(argv))
