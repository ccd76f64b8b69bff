"""Entry point of the child processes the runner spawns (or its fork server forks).

``python -c "...; mlpipeline.child.run(sys.argv[1:])" run JSON FD``: loads the script and runs the
version the JSON spec names, sending events as JSON lines on file descriptor FD. stdout/stderr are the script's own, captured by the
parent. The exit status is 0 only when a result was sent. A forked child enters at ``run_forked`` with the same arguments.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Optional, Tuple

from . import _report
from .errors import ScriptError

_OWN_FILES = {os.path.join(os.path.dirname(__file__), *name.split("/"))
              for name in ("child.py", "execute.py", "specs.py", "execution/inprocess.py", "predict.py", "results.py")}


def user_traceback(exc: BaseException) -> str:
    """The traceback of a failure inside user code, without the runner's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in _OWN_FILES]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


def _die_with_parent(parent: int) -> None:
    """Let the kernel kill this process when the runner dies (PR_SET_PDEATHSIG),
    even while the version holds the GIL in C code. What the version started
    is ended by the next runner (its processes carry the run's markers)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watch thread below is all there is
    if os.getppid() != parent:  # the runner died before the line above
        os._exit(137)


def _exit_with_parent(parent: int) -> None:
    """Leave, with the whole process group, when the runner that started us is
    gone and this interpreter still runs Python (SIGKILL of the runner)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            try:
                os.killpg(0, signal.SIGKILL)
            finally:
                os._exit(137)


# Set up ahead of the version by a fork server's spare (execution.forkserver): (this process's pid, the parent
# it watches) and (this process's pid, the event pipe's fd, its reporter). A pid that is not ours: inherited, unused.
_watching: Tuple[int, int] = (0, 0)
_prepared: Tuple[int, int, Optional[_report.PipeReporter]] = (0, -1, None)


def watch_parent(parent: int) -> None:
    """Die with ``parent``: ``_die_with_parent``, and a thread that takes
    the process group along where the kernel cannot. Once per process."""
    global _watching
    if _watching == (os.getpid(), parent):
        return
    _die_with_parent(parent)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _watching = (os.getpid(), parent)


def prepare_reporter() -> int:
    """Start the event reporter before the event pipe exists, on a stand-in
    pipe: returns its fd, for the caller to replace (``dup2``) with the
    version's event pipe, and for ``main`` to find it by."""
    global _prepared
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # nothing is written before the stand-in is replaced
    if write_fd < 3:  # stdout or stderr was closed: keep clear of them
        import fcntl

        write_fd, stand_in = fcntl.fcntl(write_fd, fcntl.F_DUPFD, 3), write_fd
        os.close(stand_in)
    _prepared = (os.getpid(), write_fd, _report.PipeReporter(write_fd))
    return write_fd


def _reporter(fd: int) -> _report.PipeReporter:
    """The reporter on ``fd``: the one prepared for it, else a new one."""
    global _prepared
    pid, prepared_fd, reporter = _prepared
    _prepared = (0, -1, None)
    if reporter is not None and (pid, prepared_fd) == (os.getpid(), fd):
        return reporter
    return _report.PipeReporter(fd)


def _payload_text(arg: str) -> str:
    """The payload JSON: the argument, or the file ``@path`` names (a large one), which is then removed."""
    if not arg.startswith("@"):
        return arg
    with open(arg[1:]) as handle:
        text = handle.read()
    try:
        os.unlink(arg[1:])
    except OSError:
        pass
    return text


def main(argv) -> int:
    if argv[0] != "run":
        raise SystemExit(f"mlpipeline.child: unknown operation {argv[0]!r}")
    payload, fd = json.loads(_payload_text(argv[1])), int(argv[2])
    reporter = _reporter(fd)
    _report.install(reporter)
    limit = payload.get("memory_limit")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    parent = payload.get("parent_pid")
    if parent:
        watch_parent(parent)
    from ._packages import imported_packages
    from .scripts import get_model, load_module

    try:
        from .execute import run_version
        from .specs import version_for

        spec = payload["spec"]  # lifecycle.VersionSpec.to_json(); read as plain data (one import less per version)
        module = load_module(spec["script"])
        model = get_model(module, spec["script"], only=spec["version"])
        version = version_for(model, spec["version"], spec["params"])
        result = run_version(model, version, spec["script"], payload["model_dir"], payload["exec_mode"],
                             source=module.__mlpipeline_source__, run_dir=payload.get("run_dir"))
        reporter.send("result", result=result.to_json(), packages=imported_packages())
        return 0
    except ScriptError as exc:
        reporter.send("error", error=str(exc), traceback=exc.details, kind="script",
                      packages=imported_packages())
    except SystemExit as exc:
        reporter.send("error", error=f"the version called sys.exit({exc.code!r}) before finishing",
                      traceback=user_traceback(exc), kind="version", packages=imported_packages())
    except MemoryError as exc:
        what = f"the version ran out of memory ({type(exc).__name__}"
        what += f"; its --memory-limit is {limit // (1 << 20)} MiB)" if limit else ")"
        reporter.send("error", error=what, traceback=user_traceback(exc), kind="version",
                      packages=imported_packages())
    except BaseException as exc:  # noqa: BLE001 - report everything, then exit non-zero
        reporter.send("error", error=f"{type(exc).__name__}: {exc}", traceback=user_traceback(exc), kind="version",
                      packages=imported_packages())
    finally:
        reporter.close()
    return 1


THREADS_GRACE = 10.0  # seconds a finished version's leftover threads get before the process leaves anyway


def run(argv) -> None:
    """Process entry point: ``python -c 'from mlpipeline.child import run; ...'``.

    A version that leaves a non-daemon thread running (a prefetcher, a
    logger) would keep the process alive for ever after its result is sent:
    such threads get ``THREADS_GRACE`` seconds, then the process exits anyway
    (atexit handlers run, streams are flushed)."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code = main(argv)
    if _threads_done():
        sys.exit(code)
    _leave(code)


def run_forked(argv) -> None:
    """Entry point of a child the fork server forked (``execution.forkserver``):
    as ``run``, but it always leaves through ``os._exit``, so nothing of the
    server's own code runs after the version."""
    code = 1
    try:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        code = main(argv)
        _threads_done()
    finally:
        _leave(code)


def _threads_done() -> bool:
    """Give the version's non-daemon threads ``THREADS_GRACE`` seconds to end; whether they all did."""
    deadline = time.monotonic() + THREADS_GRACE
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread())


def _leave(code: int) -> None:
    """Exit now, threads or not: atexit handlers first, then the streams."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


if __name__ == "__main__":
    run(sys.argv[1:])
