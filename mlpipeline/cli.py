"""The ``mlpipeline`` command: parse, call one library function, render.

Errors become exit codes here and nowhere else: 0 all versions succeeded,
1 a version or script failed, 2 usage or config errors, 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import List, Optional

from . import __version__
from .errors import MLPipelineError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlpipeline",
        description="Run every version of the model scripts a project lists. Without -r: test mode "
                    "(models_test.config, one step each in temp dirs, stop at the first error). With -r: "
                    "execution mode (models.config, each version in its own process, errors logged, the "
                    "queue goes on).",
        epilog="Exit codes: 0 all succeeded, 1 a version failed, 2 usage or config error, 130 interrupted.")
    parser.add_argument("-r", "--run", action="store_true", help="execution mode: train for real (models.config)")
    parser.add_argument("-u", "--use-history", action="store_true",
                        help="skip versions whose last run succeeded with the same script and parameters")
    parser.add_argument("-n", "--no-log", action="store_true", help="write no log-<host>/output-<host> files")
    parser.add_argument("-C", dest="directory", metavar="DIR", help="the project folder (default: current)")
    parser.add_argument("--version", dest="only_version", metavar="NAME", help="run only versions named NAME")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--isolate", action="store_true", default=None,
                       help="run each version in a child process (default in execution mode)")
    where.add_argument("--in-process", dest="isolate", action="store_false",
                       help="run versions in this process (default in test mode; a debugger works)")
    parser.add_argument("-V", "--mlpipeline-version", action="version", version=f"mlpipeline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    init = commands.add_parser("init", help="create a new project with an example script")
    init.add_argument("target", nargs="?", default=".", metavar="DIR")
    runs = commands.add_parser("runs", help="list recorded runs, newest first")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--format", choices=("table", "csv", "json"), default="table")
    return parser


def _say(message: str, level: int = logging.INFO) -> None:
    prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: "}.get(level, "")
    print(f"mlpipeline: {prefix}{message}", file=sys.stderr, flush=True)


def _duration(row) -> Optional[str]:
    if row["started_at"] is None:
        return None
    end = row["ended_at"] or time.time()
    return f"{end - row['started_at']:.1f}s"


def _run_rows(ledger, ids):
    for row in ledger.runs(ids=ids) if ids is not None else ledger.runs(limit=None):
        yield {
            "run": row["id"], "script": row["script"], "version": row["version"] or "(load)",
            "mode": row["mode"], "status": row["status"], "duration": _duration(row),
            "train": row["eval_train_text"], "test": row["eval_test_text"],
            "error": (row["error"] or "").splitlines()[0] if row["error"] else None,
        }


RUN_COLUMNS = ("run", "script", "version", "status", "duration", "train", "test", "error")


def cmd_run(args: argparse.Namespace) -> int:
    from .config import find_project
    from .executors import make_executor
    from .ledger import RunStatus, open_ledger
    from .outputs import HostOutputs, NullOutputs, hostname
    from .render import render
    from .runner import Options, Runner

    project = find_project(args.directory)
    os.chdir(project.root)
    for warning in project.warnings:
        _say(warning, logging.WARNING)
    test = not args.run
    if test and args.use_history:
        _say("-u applies to execution mode (-r); test mode runs every version", logging.WARNING)
    isolate = args.isolate if args.isolate is not None else not test
    host = hostname()
    ledger = open_ledger(project.outputs_dir)
    outputs = NullOutputs() if (test or args.no_log) else HostOutputs(project.outputs_dir, host)
    options = Options(test_mode=test, use_history=args.use_history, only_version=args.only_version,
                      command=" ".join(["mlpipeline", *sys.argv[1:]]))
    runner = Runner(project, ledger, make_executor(isolate, cwd=project.root), options,
                    outputs=outputs, host=host, notify=_say)
    outputs.log(f"session started: {options.command} (pid {os.getpid()})")
    try:
        finished = runner.run(stop_on_error=test)
    except KeyboardInterrupt:
        outputs.log("session interrupted", logging.WARNING)
        _say("interrupted", logging.WARNING)
        return EXIT_INTERRUPTED
    outputs.log("session ended")
    failed = [f for f in finished if f.outcome.status != RunStatus.SUCCEEDED]
    if test and failed:
        if failed[0].outcome.traceback:
            print(failed[0].outcome.traceback.rstrip(), file=sys.stderr)
        _say(f"test mode stopped at the first failure (run {failed[0].run_id}); "
             f"{len(finished) - 1} version(s) passed before it")
        return EXIT_FAILED
    if not finished:
        _say("nothing to run" + (" (every listed version already succeeded; drop -u to run again)"
                                 if args.use_history else " (the queue is empty)"))
        return EXIT_OK
    print(render(_run_rows(ledger, [f.run_id for f in finished]), RUN_COLUMNS))
    _say(f"{len(finished) - len(failed)} succeeded, {len(failed)} failed"
         + ("" if test else f"; ledger: {os.path.relpath(ledger.path)}"))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import init_project

    written = init_project(args.target)
    for path in written:
        print(f"created {os.path.relpath(path)}")
    where = "" if os.path.abspath(args.target) == os.getcwd() else f" -C {args.target}"
    print(f"next: mlpipeline{where}        (test mode)\n      mlpipeline{where} -r -u  (train for real)")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from .config import find_project
    from .ledger import open_ledger
    from .render import render

    project = find_project(args.directory)
    ledger = open_ledger(project.outputs_dir)
    ids = [row["id"] for row in ledger.runs(limit=args.limit)]
    print(render(reversed(list(_run_rows(ledger, ids))), ("run", "mode", *RUN_COLUMNS[1:]), args.format))
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"init": cmd_init, "runs": cmd_runs}.get(args.command, cmd_run)
    try:
        return handler(args)
    except MLPipelineError as exc:
        _say(str(exc), logging.ERROR)
        details = getattr(exc, "details", "")
        if details:
            print(details.rstrip(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted", logging.WARNING)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place an unexpected error is shown
        if os.environ.get("MLP_DEBUG"):
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (set MLP_DEBUG=1 for the traceback and "
             f"please report it)", logging.ERROR)
        return EXIT_FAILED
