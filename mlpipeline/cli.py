"""The ``mlpipeline`` command: parse, call one library function, render.

Errors become exit codes here and nowhere else: 0 all versions succeeded,
1 a version or script failed, 2 usage or config errors, 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .commands import (ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, RUN_STATUSES, SHOW_VERSION,
                       WARNING, _say, cmd_cancel, cmd_import_history, cmd_init, cmd_logs,
                       cmd_metrics, cmd_notify, cmd_outputs, cmd_pause, cmd_predict, cmd_run, cmd_runs, cmd_serve,
                       cmd_show, cmd_status)
from .commands_curate import add_commands as add_curation
from .commands_curate import cmd_delete, cmd_gc, cmd_note, cmd_tag
from .commands_repro import cmd_rerun, cmd_show_env
from .commands_search import add_commands as add_search_commands
from .commands_search import cmd_compare, cmd_importance
from .compat import cli2x
from .core.errors import MLPipelineError

TYPE_CHECKING = False  # typing itself costs --help 2 ms: the names are for the type checker
if TYPE_CHECKING:
    from typing import List, NoReturn, Optional


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
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
    parser.add_argument("-n", "--no-log", "--no_log", action="store_true", help="write no log-<host>/output-<host> files")
    parser.add_argument("-C", dest="directory", metavar="DIR", help="the project folder (default: current)")
    parser.add_argument("--version", dest="only_version", nargs="?", const=SHOW_VERSION, metavar="NAME",
                        help="alone: print mlpipeline's version; with NAME: run only versions named NAME")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--isolate", action="store_true", default=None,
                       help="run each version in a child process (default in execution mode)")
    where.add_argument("--in-process", dest="isolate", action="store_false",
                       help="run versions in this process (default in test mode; a debugger works)")
    parser.add_argument("-j", "--jobs", type=int, metavar="N",
                        help="run up to N versions at once (default 1; where there are GPUs, as many as their "
                             "resources let run)")
    parser.add_argument("--gpus", metavar="IDS", help="the GPUs versions may use, e.g. 0,1 (default: all that NVML "
                                                      "sees); each version gets the GPUs it asks for in "
                                                      "CUDA_VISIBLE_DEVICES")
    parser.add_argument("--gpus-per-version", type=float, metavar="N",
                        help="GPUs a version gets unless it declares resources={'gpus': ...}: a fraction shares one "
                             "(default 1 where there are GPUs)")
    parser.add_argument("--cpus-per-version", type=float, metavar="N",
                        help="CPUs a version gets unless it declares resources={'cpus': ...} (default: not counted "
                             "here; 1 on Ray)")
    parser.add_argument("--gpu-foreign-memory", metavar="SIZE", default="1G",
                        help="a GPU on which another user's process holds more than this is busy: nothing is "
                             "placed on it (default 1G)")
    unattended = parser.add_argument_group("unattended (execution mode)")
    unattended.add_argument("--retries", type=int, metavar="N",
                            help="run a version whose run ended as --retry-on says again, up to N times (also [MLP] "
                                 "retries; default 0, 1 on a cluster backend)")
    unattended.add_argument("--retry-on", metavar="KINDS",
                            help="which endings are retried: error, signal, oom, node_lost, stalled, timeout (also "
                                 "[MLP] retry_on; default node_lost,signal,oom,stalled)")
    unattended.add_argument("--retry-delay", type=float, default=30.0, metavar="SECONDS",
                            help="wait before a retry (default 30; doubles each attempt, at most 600)")
    unattended.add_argument("--stall-timeout", type=float, metavar="SECONDS",
                            help="end a version that prints no line and logs no metric for SECONDS, as stalled "
                                 "(also [MLP] stall_timeout)")
    unattended.add_argument("--stop-on-nan", action="store_true",
                            help="end a version that logs a NaN or infinite value, failed with reason nan (also "
                                 "[MLP] stop_on_nan)")
    parser.add_argument("--watch", action="store_true", help="when the queue is empty, wait for edits instead of "
                                                             "exiting (stop with Ctrl+C)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="kill a version that runs longer (also [MLP] timeout in models.config)")
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="address-space limit per version, e.g. 4G or 512M (child processes only)")
    parser.add_argument("--sample-interval", type=float, default=2.0, metavar="SECONDS",
                        help="sample each running version's CPU %%, RSS and GPU memory/utilisation every SECONDS "
                             "(default 2; 0: off)")
    cluster = parser.add_argument_group("on a Ray cluster (execution mode; pip install 'mlpipeline[ray]')")
    cluster.add_argument("--backend", choices=("local", "ray", "slurm"),
                         help="where versions run: local child processes (default), Ray tasks, or one Slurm job each "
                              "(the [SLURM] section of mlp.config says which partition, account, time...; also "
                              "[MLP] backend in mlp.config)")
    cluster.add_argument("--ray-address", metavar="ADDR",
                         help="join this Ray cluster (auto, or HOST:6379; also [MLP] ray_address); without it a local "
                              "Ray starts on loopback")
    cluster.add_argument("--resources", metavar="JSON", help="custom Ray resources per version, e.g. '{\"a100\": 1}'")
    cli2x.add_options(parser)
    parser.add_argument("-V", "--mlpipeline-version", action="version", version=f"mlpipeline {__version__}")
    common = _Parser(add_help=False)  # -C works before or after a command
    common.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS,
                        help="the project folder (default: current)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                                   parents=[common])

    init = command("init", "create a new project with an example script")
    init.add_argument("target", nargs="?", default=".", metavar="DIR", help="where to create it (default: here)")
    init.add_argument("--plain", action="store_true",
                      help="the example is a plain argparse training script with two versions (no MODEL)")
    runs = command("runs", "list recorded runs, newest first")
    runs.add_argument("--script", metavar="S", help="only runs of this script (path or file name)")
    runs.add_argument("--version", dest="version_name", metavar="V", help="only runs of this version")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    runs.add_argument("--mode", choices=("test", "run"), help="only test-mode or execution-mode runs")
    runs.add_argument("--since", metavar="DATE", help="only runs started since DATE (2026-11-20) or an age (6h, 2d)")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50; 0: all)")
    runs.add_argument("--tag", action="append", metavar="T", help="only runs tagged T (repeat it: runs with all of them)")
    runs.add_argument("--all", action="store_true", help="deleted runs too (mlpipeline delete hides them)")
    runs.add_argument("--output", metavar="FILE", help="with --format parquet: the file to write")
    show = command("show", "everything about one run")
    show.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    show.add_argument("--env", action="store_true", help="the environment the run recorded: Python, platform, CUDA "
                                                         "and the NVIDIA driver, and every installed package")
    rerun = command("rerun", "run a run's version again: ask the runner to, or with --exact from the run's "
                             "recorded commit and diff, parameters and seed")
    rerun.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    rerun.add_argument("--exact", action="store_true",
                       help="check out the run's git commit plus its recorded diff and untracked files into "
                            "outputs/rerun/<id>-<n>/ and run the version there, recorded here as a new run; says "
                            "what differs in the environment")
    rerun.add_argument("--timeout", dest="rerun_timeout", type=float, metavar="SECONDS",
                       help="with --exact: kill the version if it runs longer")
    compare = command("compare", "one row per version of a script: params that differ, metrics")
    compare.add_argument("script", metavar="SCRIPT", help="the script, as a path or a file name (a.py or a)")
    compare.add_argument("--metric", metavar="NAME", help="show only this metric (e.g. accuracy or test/accuracy)")
    compare.add_argument("--sort", metavar="NAME", help="sort rows by this column")
    compare.add_argument("--desc", action="store_true", help="sort descending")
    compare.add_argument("--seed-param", default="seed", metavar="NAME",
                         help="versions that differ only in this parameter are one row: their metrics' mean and "
                              "std (default seed)")
    logs = command("logs", "the captured output of a run")
    logs.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    command("import-history", "import the original mlpipeline's history/output files")
    status = command("status", "the runner, what runs now, the queue and what is skipped")
    cancel = command("cancel", "ask the runner to kill a running version (status cancelled)")
    cancel.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    command("pause", "ask the runner to start nothing new (running versions finish)")
    command("resume", "ask a paused runner to go on with the queue")
    metrics = command("metrics", "the points of a run's training curves")
    metrics.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    metrics.add_argument("name", nargs="?", metavar="NAME", help="only this metric (loss or train/loss)")
    predict = command("predict", "run the script's predict(input_path, model_dir) for a finished run, in a child "
                                 "process, on FILE")
    predict.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid (a succeeded -r run)")
    predict.add_argument("file", metavar="FILE", help="the input file (copied into the run's predictions/<n>/)")
    predict.add_argument("--timeout", dest="predict_timeout", type=float, default=None, metavar="SECONDS",
                         help="kill the prediction after this long (default 300)")
    predict.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    serve = command("serve", "the dashboard: runs, curves, compare and the live queue in a browser, with steering")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; another needs "
                                                           "--allow-remote and --token)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    serve.add_argument("--token", help="the access token (default: a random one, printed in the address; or set "
                                       "MLPIPELINE_TOKEN, which other users cannot read in ps)")
    serve.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback (plain HTTP: "
                                                                   "prefer ssh -L)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also accept requests whose Host header is NAME (e.g. a name behind a proxy)")
    serve.add_argument("--max-upload", metavar="SIZE", help="largest model script that can be uploaded (default 1M)")
    outputs = command("outputs", "list the values versions saved with save_output, and whether each is stale")
    outputs.add_argument("--script", metavar="S", help="only outputs of this script (path or file name)")
    notify = command("notify", "the notifications [NOTIFY] in mlp.config sends: to which URLs (masked), on which "
                               "events")
    notify.add_argument("--test", action="store_true",
                        help="send one message to every URL now and print what each answered (exit 1 if one failed)")
    add_curation(command, RUN_STATUSES)
    importance = add_search_commands(command)
    cli2x.add_commands(command)
    for sub in (runs, show, compare, commands.choices["import-history"], status, metrics, outputs, importance):
        sub.add_argument("--format", choices=("table", "csv", "json") + (("parquet",) if sub is runs else ()),
                         default="table", help="output format" + (" (parquet: a file, with --output; needs "
                                                                  "pyarrow)" if sub is runs else ""))
        sub.add_argument("--wide", action="store_true", help="tables keep every column at full width (by default "
                                                             "they fit the terminal)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "wide", False):
        from .read import render

        render.WIDE = True
    if getattr(args, "only_version", None) == SHOW_VERSION:
        print(f"mlpipeline {__version__}")
        return EXIT_OK
    handler = {"init": cmd_init, "runs": cmd_runs, "show": cmd_show_env if getattr(args, "env", False) else cmd_show,
               "rerun": cmd_rerun, "compare": cmd_compare, "logs": cmd_logs,
               "import-history": cmd_import_history, "status": cmd_status, "cancel": cmd_cancel,
               "pause": cmd_pause, "resume": cmd_pause, "metrics": cmd_metrics,
               "predict": cmd_predict, "serve": cmd_serve, "outputs": cmd_outputs,
               "notify": cmd_notify, "run": cli2x.cmd_2x, "test": cli2x.cmd_2x, "export": cli2x.cmd_2x,
               "single": cli2x.cmd_2x, "tag": cmd_tag, "untag": cmd_tag, "note": cmd_note, "delete": cmd_delete,
               "gc": cmd_gc, "importance": cmd_importance}.get(args.command, cmd_run)
    try:
        return handler(args)
    except MLPipelineError as exc:
        _say(str(exc), ERROR)
        details = getattr(exc, "details", "")
        if details:
            print(details.rstrip(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted (Ctrl+C)", WARNING)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `mlpipeline runs | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place an unexpected error is shown
        if os.environ.get("MLP_DEBUG"):
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (set MLP_DEBUG=1 for the traceback and "
             f"please report it)", ERROR)
        return EXIT_FAILED
