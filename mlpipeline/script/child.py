"""Entry point of the child processes the runner spawns (or its fork server forks).

``python -c "...; mlpipeline.script.child.run(sys.argv[1:])" run JSON FD``: loads the script and runs the
version the JSON spec names, sending events as JSON lines on file descriptor FD. stdout/stderr are the script's own, captured by the
parent. The exit status is 0 only when a result was sent. A forked child enters at ``run_forked`` with the same arguments.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Optional, Tuple

from ..core.timings import timings
from . import report as _report
from ..proc.outcome import failure
from ..proc.system import leave_now, watch_parent

# Set up ahead of the version by a fork server's spare (execution.forkserver): (this process's pid, the event
# pipe's fd, its reporter). A pid that is not ours: inherited, unused.
_prepared: Tuple[int, int, Optional[_report.PipeReporter]] = (0, -1, None)


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
    if argv[0] == "describe":  # forked by the fork server: SCRIPT RESULT_FILE PARENT_PID (EVENT_FD, unused)
        from .describing import describe_main

        return describe_main(argv[1:4], watch=False)
    if argv[0] == "search":  # forked: SCRIPT PARENT_PID SOCKET_FD (requests in, replies out)
        from .search_child import serve

        serve([argv[1], argv[3], argv[3], argv[2]])
        return 0
    if argv[0] != "run":
        raise SystemExit(f"mlpipeline.script.child: unknown operation {argv[0]!r}")
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
    from .packages import imported_packages

    try:
        from .runspec import run_spec

        # the spec is lifecycle.VersionSpec.to_json(), read as plain data (one import less per version)
        result = run_spec(payload["spec"], payload["model_dir"], payload["exec_mode"], payload.get("run_dir"),
                          payload.get("run_id"))
        reporter.send("result", result=result.to_json(), packages=imported_packages())
        return 0
    except BaseException as exc:  # noqa: BLE001 - report everything, then exit non-zero
        failed = failure(exc, memory_limit=limit)
        reporter.send("error", error=failed.error, traceback=failed.traceback, kind=failed.kind,
                      packages=imported_packages(), reason=failed.reason)
        status = getattr(exc, "exit_status", None)  # a plain script's own sys.exit(3): the run records 3
        return status if isinstance(status, int) and not isinstance(status, bool) and 0 < status < 256 else 1
    finally:
        reporter.close()




def run(argv) -> None:
    """Process entry point: ``python -c 'from mlpipeline.script.child import run; ...'``.

    A version that leaves a non-daemon thread running (a prefetcher, a
    logger) would keep the process alive for ever after its result is sent:
    such threads get ``timings().threads_grace`` seconds, then the process exits anyway
    (atexit handlers run, streams are flushed)."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code = main(argv)
    if _threads_done():
        sys.exit(code)
    leave_now(code)


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
        leave_now(code)


def _threads_done() -> bool:
    """Give the version's non-daemon threads ``timings().threads_grace`` seconds to end; whether they all did."""
    deadline = time.monotonic() + timings().threads_grace
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread())


if __name__ == "__main__":
    run(sys.argv[1:])
