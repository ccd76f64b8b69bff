"""The ``mlpipeline`` command: parse, call one library function, render.

Errors become exit codes here and nowhere else: 0 all versions succeeded,
1 a version or script failed, 2 usage or config errors, 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, NoReturn, Optional

from . import __version__
from .errors import MLPipelineError, UsageError, display

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SHOW_VERSION = "\0show"  # `mlpipeline --version` with no NAME
INFO, WARNING, ERROR = 20, 30, 40  # logging's levels, without importing logging for --help
# ledger.RunStatus's values, spelt out so that --help need not import the ledger (sqlite3)
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "timeout", "interrupted", "cancelled", "pruned")


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
                        help="run up to N versions at once (default 1, or the number of --gpus)")
    parser.add_argument("--gpus", metavar="IDS", help="GPU ids, e.g. 0,1: each running version gets one "
                                                      "(CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--watch", action="store_true", help="when the queue is empty, wait for edits instead of "
                                                             "exiting (stop with Ctrl+C)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="kill a version that runs longer (also [MLP] timeout in models.config)")
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="address-space limit per version, e.g. 4G or 512M (child processes only)")
    cluster = parser.add_argument_group("on a Ray cluster (execution mode; pip install 'mlpipeline[ray]')")
    cluster.add_argument("--backend", choices=("local", "ray"),
                         help="where versions run: local child processes (default) or Ray tasks (also [MLP] backend "
                              "in mlp.config)")
    cluster.add_argument("--ray-address", metavar="ADDR",
                         help="join this Ray cluster (auto, or HOST:6379; also [MLP] ray_address); without it a local "
                              "Ray starts on loopback")
    cluster.add_argument("--gpus-per-version", type=float, metavar="N",
                         help="GPUs each version asks Ray for (fractions allowed; default 1 when the cluster has GPUs)")
    cluster.add_argument("--cpus-per-version", type=float, default=1.0, metavar="N",
                         help="CPUs each version asks Ray for (default 1)")
    cluster.add_argument("--resources", metavar="JSON", help="custom Ray resources per version, e.g. '{\"a100\": 1}'")
    cluster.add_argument("--retries", type=int, default=1, metavar="N",
                         help="run a version whose node was lost again, up to N times (default 1)")
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
    runs = command("runs", "list recorded runs, newest first")
    runs.add_argument("--script", metavar="S", help="only runs of this script (path or file name)")
    runs.add_argument("--version", dest="version_name", metavar="V", help="only runs of this version")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    runs.add_argument("--mode", choices=("test", "run"), help="only test-mode or execution-mode runs")
    runs.add_argument("--since", metavar="DATE", help="only runs started since DATE (2026-11-20) or an age (6h, 2d)")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50; 0: all)")
    show = command("show", "everything about one run")
    show.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    compare = command("compare", "one row per version of a script: params that differ, metrics")
    compare.add_argument("script", metavar="SCRIPT", help="the script, as a path or a file name (a.py or a)")
    compare.add_argument("--metric", metavar="NAME", help="show only this metric (e.g. accuracy or test/accuracy)")
    compare.add_argument("--sort", metavar="NAME", help="sort rows by this column")
    compare.add_argument("--desc", action="store_true", help="sort descending")
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
    for sub in (runs, show, compare, commands.choices["import-history"], status, metrics, outputs):
        sub.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
        sub.add_argument("--wide", action="store_true", help="tables keep every column at full width (by default "
                                                             "they fit the terminal)")
    return parser


def _say(message: str, level: int = INFO) -> None:
    """A line for the person at the terminal. A closed stderr (``2>&1 | head``)
    silences it; it never stops a batch (the log file and the ledger go on)."""
    prefix = {WARNING: "warning: ", ERROR: "error: "}.get(level, "")
    _write(sys.stderr, f"mlpipeline: {prefix}{message}")


def _write(stream, text: str) -> None:
    try:
        print(text, file=stream, flush=True)
    except (BrokenPipeError, ValueError, OSError):  # the reader went away (| head, quit less)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


def _out(text: str) -> None:
    _write(sys.stdout, text)


BATCH_COLUMNS = ("id", "script", "version", "status", "duration", "metrics", "error")
RUNS_COLUMNS = {
    "table": ("id", "script", "version", "mode", "status", "started", "duration", "metrics", "error"),
    "csv": ("id", "uid", "script", "version", "mode", "status", "started", "started_at", "ended_at",
            "duration", "exit_code", "signal", "metrics", "error"),
}
RUNS_COLUMNS["json"] = RUNS_COLUMNS["csv"]


def _open_ledger(args: argparse.Namespace):
    """The project and its ledger, read-only. Queries never create one:
    without a ledger they get ``None``."""
    from .config import find_project
    from .reader import open_reader

    project = find_project(args.directory)
    return project, open_reader(project.outputs_dir)


def _need_ledger(ledger, what: str):
    if ledger is None:
        raise UsageError(f"{what}: no runs recorded yet in this project; run mlpipeline (test mode) or "
                         f"mlpipeline -r first")
    return ledger


def _parse_gpus(text: Optional[str]) -> Optional[List[str]]:
    if text is None:
        return None
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus or len(set(gpus)) != len(gpus):
        raise UsageError(f"--gpus {text!r}: give distinct GPU ids separated by commas, e.g. --gpus 0,1")
    return gpus


def _parse_size(text: Optional[str], option: str = "--memory-limit", least: int = 16 << 20) -> Optional[int]:
    if text is None:
        return None
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "")
    try:
        size = int(float(number) * units[unit])
    except ValueError:
        size = 0
    if size < least:
        raise UsageError(f"{option} {text!r}: give a size of at least {least >> 10}K, e.g. 512M or 4G")
    return size


class _StopSignals:
    """First SIGINT/SIGTERM/SIGHUP: finish the running versions, then stop.
    Second: kill them. Installed before anything starts; a signal that arrives
    before the runner exists is passed on when it does."""

    def __init__(self) -> None:
        import signal

        self.count = 0
        self.runner = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.handler)

    def handler(self, signum, frame) -> None:
        import signal

        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            _say(f"{name}: finishing the running version(s), then stopping; {name} again kills them", WARNING)
        else:
            _say(f"{name} again: killing the running version(s)", WARNING)
        self._forward()

    def attach(self, runner) -> None:
        self.runner = runner
        self._forward()

    def _forward(self) -> None:
        if self.runner is None or not self.count:
            return
        self.runner.request_stop()
        if self.count > 1:
            self.runner.request_kill()


def _interrupt_on_hangup() -> None:
    """In-process (test mode): SIGHUP and SIGTERM end the session as Ctrl+C does
    (the running version is recorded interrupted, exit 130), not by the
    default action that leaves its run behind."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, handler)


def _cluster_options(args: argparse.Namespace) -> dict:
    """--backend and the Ray options, checked here so a typo costs no cluster start."""
    from .execution.raycluster import parse_resources

    if args.retries < 0:
        raise UsageError(f"--retries {args.retries}: give 0 or more")
    for name in ("gpus_per_version", "cpus_per_version"):
        value = getattr(args, name)
        if value is not None and not (value >= 0 and value == value and value != float("inf")):
            raise UsageError(f"--{name.replace('_', '-')} {value:g}: give 0 or a positive number")
    return {"backend": args.backend, "ray_address": args.ray_address, "gpus_per_version": args.gpus_per_version,
            "cpus_per_version": args.cpus_per_version, "resources": parse_resources(args.resources),
            "retries": args.retries}


def cmd_run(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, run_batch

    options = BatchOptions(directory=args.directory, run=args.run, use_history=args.use_history,
                           no_log=args.no_log, only_version=args.only_version, isolate=args.isolate,
                           jobs=args.jobs, gpus=_parse_gpus(args.gpus), watch=args.watch, timeout=args.timeout,
                           memory_limit=_parse_size(args.memory_limit),
                           command=" ".join(["mlpipeline", *sys.argv[1:]]), **_cluster_options(args))
    isolated = args.isolate if args.isolate is not None else args.run
    stops = None
    if isolated:
        stops = _StopSignals()
    else:
        _interrupt_on_hangup()
    try:
        result = run_batch(options, _say, prepare=stops.attach if stops else None)
    except KeyboardInterrupt:
        _say("interrupted", WARNING)
        return EXIT_INTERRUPTED
    finished, test = result.finished, result.test
    failed = result.failed
    if test and failed:
        if failed[0].traceback:
            _write(sys.stderr, failed[0].traceback.rstrip())
        _say(f"test mode stopped at the first failure (run {failed[0].run_id}); "
             f"{len(finished) - 1} version(s) passed before it")
        return EXIT_FAILED
    if not finished:
        if result.stopped_early:
            return EXIT_INTERRUPTED
        if result.missing:
            for reason in result.missing:
                _say(f"not run: {reason}", ERROR)
            return EXIT_FAILED
        if result.searches_ended:
            _say("nothing to run: " + "; ".join(result.searches_ended)
                 + ("; every other listed version already succeeded (-u)" if result.history_skipped else ""))
        elif result.history_skipped:
            _say("nothing to run: every listed version already succeeded with its current code, data and "
                 "parameters (-u); drop -u to run them again")
        else:
            _say(f"nothing to run: {result.config_name} selects no versions "
                 f"(see the [WHITELISTED_MODELS] section, or use_blacklist)")
        return EXIT_OK
    from .queries import list_runs
    from .reader import Reader
    from .render import render

    reader = Reader(result.ledger_path)
    try:
        rows = list_runs(reader, ids=[f.run_id for f in finished], limit=None)
    finally:
        reader.close()
    _out(render(reversed(rows), BATCH_COLUMNS))
    if result.total > len(finished):
        _say(f"(the last {len(finished)} of the {result.total} runs this batch ended; mlpipeline runs lists them all)")
    counts = dict(result.counts)
    counts.setdefault("succeeded", 0)
    counts.setdefault("failed", 0)
    order = ("succeeded", "failed", "pruned", "timeout", "cancelled", "interrupted")
    _say(", ".join(f"{counts[s]} {s}" for s in order if s in counts)
         + ("" if test else f"; ledger: {display(result.ledger_path)}")
         + ("; stopped before the queue was done" if result.stopped_early else ""))
    for reason in result.missing:
        _say(f"not run: {reason}", ERROR)
    if test:
        _say("test mode: each version ran 1 step in a temporary model dir; nothing was trained or kept. "
             "Train for real with: mlpipeline -r -u")
    if result.stopped_early:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed or result.failed_earlier or result.missing else EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import init_project

    written = init_project(args.target)
    for path in written:
        print(f"created {display(path)}")
    import shlex

    where = "" if os.path.abspath(args.target) == os.getcwd() else f" -C {shlex.quote(args.target)}"
    print(f"next: mlpipeline{where}        (test mode)\n      mlpipeline{where} -r -u  (train for real)")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from .queries import list_runs, parse_since
    from .render import render

    _, ledger = _open_ledger(args)
    if args.limit is not None and args.limit < 0:
        raise UsageError(f"--limit {args.limit}: give 0 (all runs) or a positive number")
    if ledger is None:
        if args.format == "table":
            _say("no runs recorded yet; run mlpipeline (test mode) or mlpipeline -r")
        else:
            print(render([], RUNS_COLUMNS[args.format], args.format))
        return EXIT_OK
    since = parse_since(args.since) if args.since else None
    rows = list_runs(ledger, script=args.script, version=args.version_name, status=args.status,
                     mode=args.mode, since=since, limit=args.limit or None)
    if not rows and args.format == "table":
        _say("no runs match" if any((args.script, args.version_name, args.status, args.mode, args.since))
             else "no runs recorded yet; run mlpipeline (test mode) or mlpipeline -r")
        return EXIT_OK
    print(render(rows, RUNS_COLUMNS[args.format], args.format))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from .queries import show_run
    from .render import render, render_record

    _, ledger = _open_ledger(args)
    record = show_run(_need_ledger(ledger, f"show {args.run}"), args.run)
    if args.format != "table":
        print(render_record(record, args.format))
        return EXIT_OK
    metrics = record.pop("metrics")
    traceback = record.pop("traceback", None)
    hidden = {"params_sha256", "script_sha256", "eval_train_text", "eval_test_text", "started_at", "ended_at",
              "heartbeat_at", "source_key"}
    print(render_record({k: v for k, v in record.items() if k not in hidden and v is not None}))
    if metrics:
        print("\nmetrics:")
        print(render(metrics, ("split", "name", "kind", "last", "best", "points", "last_step")))
    if traceback:
        print("\n" + traceback.rstrip())
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from .queries import compare_versions
    from .render import render

    _, ledger = _open_ledger(args)
    columns, rows = compare_versions(_need_ledger(ledger, f"compare {args.script}"), args.script, metric=args.metric,
                                     sort=args.sort, descending=args.desc)
    print(render(rows, columns, args.format))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from .queries import follow_log

    _, ledger = _open_ledger(args)
    out = sys.stdout.buffer
    for chunk in follow_log(_need_ledger(ledger, f"logs {args.run}"), args.run, follow=args.follow):
        out.write(chunk)
        out.flush()
    return EXIT_OK


def cmd_import_history(args: argparse.Namespace) -> int:
    from .legacy_import import import_history
    from .render import render

    from .config import find_project
    from .ledger import open_ledger

    project = find_project(args.directory)
    ledger = open_ledger(project.outputs_dir)
    report = import_history(project, ledger)
    for problem in report.problems:
        _say(problem, WARNING)
    summary = {"imported": report.imported, "already_present": report.already_present, "skipped": report.skipped}
    if args.format == "table":
        _say(f"imported {report.imported} run(s); {report.already_present} already present; "
             f"{report.skipped} skipped")
    else:
        print(render([summary], list(summary), args.format))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from .render import render, render_record
    from .status import project_status

    project, ledger = _open_ledger(args)
    state = project_status(project, ledger)
    if args.format == "json":
        print(render_record(state, "json"))
        return EXIT_OK
    if args.format == "csv":
        runner = state["runner"]
        rows = ([{"section": "runner", "id": runner["pid"], "script": runner["host"], "state":
                  "alive" if runner["alive"] else "ended", "reason": runner["options_text"],
                  "elapsed": runner["started"]}] if runner else [])
        rows += [{"section": "running", **r} for r in state["running"]]
        rows += [{"section": "queue", **r} for r in state["queue"]]
        print(render(rows, ("section", "position", "id", "script", "version", "state", "reason", "elapsed",
                            "last_metric"), "csv"))
        return EXIT_OK
    runner = state["runner"]
    if runner and runner["alive"]:
        print(f"runner: pid {runner['pid']} on {runner['host']}, {runner['mode']} mode, since {runner['started']}"
              f" ({runner['options_text']})" + ("; PAUSED: nothing new starts (mlpipeline resume)"
                                                if runner["paused"] else ""))
    else:
        print("runner: none running" + (f" (last: pid {runner['pid']}, ended {runner['ended'] or '?'})"
                                        if runner else ""))
    if state["config_error"]:
        print(f"config error: {state['config_error']}" + ("" if state["preview"] else
                                                           " (the runner keeps the last good queue)"))
    if state["interrupted"]:
        print(f"run(s) {', '.join(map(str, state['interrupted']))} interrupted: their runner is gone")
    if state["running"]:
        print("\nrunning:")
        shown = ("id", "script", "version", "node", "gpu", "elapsed", "last_metric")
        print(render(state["running"], shown if any(r["node"] for r in state["running"]) else
                     tuple(c for c in shown if c != "node")))
    queued = [{**q, "position": i} for i, q in
              enumerate((q for q in state["queue"] if q["state"] in ("queued", "running")), start=1)]
    skipped = [q for q in state["queue"] if q["state"] == "skipped"]
    if queued:
        print("\nqueue (what mlpipeline -r -u would run now, in order):" if state["preview"] else
              "\nqueue (in run order):")
        noted = ("reason",) if any(q.get("reason") for q in queued) else ()  # a search: its points so far
        print(render(queued, ("position", "script", "version", "state") + noted))
    if skipped:
        print("\nskipped:")
        print(render(skipped, ("script", "version", "reason")))
    if runner and runner["alive"] and not queued:
        print("\nqueue: empty" + (" (watching for edits)" if runner["options"].get("watch") else ""))
    elif state["preview"] and not queued and not state["config_error"]:
        print("\nqueue: mlpipeline -r -u would run nothing now")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from .status import request

    project, ledger = _open_ledger(args)
    asked = request(project, _need_ledger(ledger, f"cancel {args.run}"), "cancel", args.run)
    run = asked["run"]
    print(f"cancel requested for run {run['id']} ({run['script']} {run['version']}); the runner (pid "
          f"{asked['runner']['pid']}) ends it at its next step; see mlpipeline status")
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    from .status import request

    project, ledger = _open_ledger(args)
    asked = request(project, _need_ledger(ledger, args.command), args.command)
    if args.command == "pause":
        print(f"pause requested: the runner (pid {asked['runner']['pid']}) lets running versions finish and starts "
              f"nothing new until mlpipeline resume")
    else:
        print(f"resume requested: the runner (pid {asked['runner']['pid']}) goes on with the queue")
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace) -> int:
    from .queries import metric_curve
    from .render import render

    _, ledger = _open_ledger(args)
    rows = metric_curve(_need_ledger(ledger, f"metrics {args.run}"), args.run, args.name)
    if not rows and args.format == "table":
        _say(f"run {args.run}: no metrics recorded")
        return EXIT_OK
    print(render(rows, ("split", "name", "step", "value"), args.format))
    return EXIT_OK


OUTPUTS_COLUMNS = {
    "table": ("run", "status", "script", "version", "name", "kind", "summary", "created", "stale"),
    "csv": ("id", "run", "script", "version", "name", "kind", "summary", "size", "created", "stale", "sha256", "path",
            "script_sha256", "code_fingerprint", "params_sha256", "data_fingerprint", "status"),
}
OUTPUTS_COLUMNS["json"] = OUTPUTS_COLUMNS["csv"]


def cmd_outputs(args: argparse.Namespace) -> int:
    from .cached_outputs import output_rows
    from .render import render

    project, ledger = _open_ledger(args)
    rows = output_rows(ledger, project, script=args.script) if ledger is not None else []
    if not rows and args.format == "table":
        _say("no outputs match" if args.script else "no outputs recorded yet; call self.save_output(name, value) "
                                                    "in a version and run mlpipeline -r")
        return EXIT_OK
    print(render(rows, OUTPUTS_COLUMNS[args.format], args.format))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from .config import find_project
    from .predict import DEFAULT_TIMEOUT, run_predict
    from .render import render, render_record

    project = find_project(args.directory)
    timeout = DEFAULT_TIMEOUT if args.predict_timeout is None else args.predict_timeout
    outcome = run_predict(project, args.run, args.file, timeout=timeout if timeout > 0 else None)
    for warning in outcome["warnings"]:
        _say(warning, WARNING)
    results = outcome["results"]
    _say(f"run {outcome['run']}: prediction {outcome['prediction']} kept in {display(outcome['dir'])}")
    if args.format == "json":
        print(render_record(outcome, "json"))
        return EXIT_OK
    parts = [results["text"].rstrip()] if results.get("text") else []
    if results.get("data") is not None:
        columns = results.get("columns") or []
        parts.append(render([dict(zip(columns, row)) for row in results["data"]], columns))
        if "rows_total" in results:
            parts.append(f"({len(results['data'])} of {results['rows_total']} rows)")
    scalars = {**results.get("metrics", {}), **results.get("values", {})}
    if scalars:
        parts.append(render_record(scalars))
    if results.get("graphs"):
        count = len(results["graphs"])
        parts.append(f"{count} graph{'' if count == 1 else 's'}: see --format json or the web page")
    print("\n\n".join(parts) if parts else "(predict returned nothing)")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import find_project
    from .web.serve import serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: give a port between 1 and 65535 (or 0 for any free one)")
    project = find_project(args.directory)
    limit = _parse_size(args.max_upload, "--max-upload", 1 << 10) if args.max_upload else None
    try:
        return serve(project, host=args.host, port=args.port, token=args.token, allow_remote=args.allow_remote,
                     allow_hosts=args.allow_host, max_upload=limit, say=lambda text: print(text, flush=True),
                     warn=lambda text: _say(text, WARNING))
    except KeyboardInterrupt:
        return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "wide", False):
        from . import render

        render.WIDE = True
    if getattr(args, "only_version", None) == SHOW_VERSION:
        print(f"mlpipeline {__version__}")
        return EXIT_OK
    handler = {"init": cmd_init, "runs": cmd_runs, "show": cmd_show, "compare": cmd_compare, "logs": cmd_logs,
               "import-history": cmd_import_history, "status": cmd_status, "cancel": cmd_cancel,
               "pause": cmd_pause, "resume": cmd_pause, "metrics": cmd_metrics,
               "predict": cmd_predict, "serve": cmd_serve, "outputs": cmd_outputs}.get(args.command, cmd_run)
    try:
        return handler(args)
    except MLPipelineError as exc:
        _say(str(exc), ERROR)
        details = getattr(exc, "details", "")
        if details:
            print(details.rstrip(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted", WARNING)
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
