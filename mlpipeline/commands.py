"""What each ``mlpipeline`` command does: call one library function, render what it returns.
Errors become exit codes in ``cli.main`` and nowhere else."""
from __future__ import annotations

import argparse
import os
import sys

from .core.errors import UsageError, display
from .core.vocabulary import QueueState, RunStatus

TYPE_CHECKING = False  # typing itself costs --help 2 ms: the names are for the type checker
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SHOW_VERSION = "\0show"  # `mlpipeline --version` with no NAME
INFO, WARNING, ERROR = 20, 30, 40  # logging's levels, without importing logging for --help
RUN_STATUSES = tuple(status.value for status in RunStatus)


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
            "duration", "exit_code", "signal", "metrics", "error", "reason", "attempt", "retry_of", "tags", "note",
            "deleted_at"),
}
RUNS_COLUMNS["json"] = RUNS_COLUMNS["csv"]


def _open_ledger(args: argparse.Namespace):
    """The project and its ledger, read-only. Queries never create one:
    without a ledger they get ``None``."""
    from .plan.config import find_project
    from .store.reader import open_reader

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
    from .core.resources import parse_size

    if text is None:
        return None
    size = parse_size(text)
    if size is None or size < least:
        floor = f" of at least {least >> 10}K" if least else ""
        raise UsageError(f"{option} {text!r}: give a size{floor}, e.g. 512M or 4G")
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

    from .core.retry import parse_kinds

    if args.retries is not None and args.retries < 0:
        raise UsageError(f"--retries {args.retries}: give 0 or more")
    for name in ("retry_delay", "stall_timeout"):
        value = getattr(args, name)
        if value is not None and not (0 <= value < float("inf")) or name == "stall_timeout" and value == 0:
            raise UsageError(f"--{name.replace('_', '-')} {value:g}: give a positive number of seconds")
    try:
        retry_on = None if args.retry_on is None else parse_kinds(args.retry_on, "--retry-on")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name in ("gpus_per_version", "cpus_per_version"):
        value = getattr(args, name)
        if value is not None and not (value >= 0 and value == value and value != float("inf")):
            raise UsageError(f"--{name.replace('_', '-')} {value:g}: give 0 or a positive number")
    share = args.gpus_per_version
    if share is not None and share > 1 and share != int(share):
        raise UsageError(f"--gpus-per-version {share:g}: give a fraction below 1 (0.5 shares a GPU) or a whole "
                         f"number of GPUs")
    return {"backend": args.backend, "ray_address": args.ray_address, "gpus_per_version": args.gpus_per_version,
            "cpus_per_version": args.cpus_per_version, "resources": parse_resources(args.resources),
            "gpu_foreign_memory": _parse_size(args.gpu_foreign_memory, "--gpu-foreign-memory", least=0),
            "retries": args.retries, "retry_on": retry_on, "retry_delay": args.retry_delay,
            "stall_timeout": args.stall_timeout, "stop_on_nan": args.stop_on_nan}


def cmd_run(args: argparse.Namespace) -> int:
    isolated = args.isolate if args.isolate is not None else args.run
    pool = None
    if isolated and args.backend not in ("ray", "slurm"):
        from .execution.forkpool import early_pool

        pool = early_pool(args.directory)  # its fork server imports while the runner's modules do
    from .run.batch import BatchOptions, run_batch

    options = BatchOptions(directory=args.directory, run=args.run, use_history=args.use_history,
                           no_log=args.no_log, only_version=args.only_version, isolate=args.isolate,
                           jobs=args.jobs, gpus=_parse_gpus(args.gpus), watch=args.watch, timeout=args.timeout,
                           memory_limit=_parse_size(args.memory_limit), sample_interval=args.sample_interval,
                           command=" ".join(["mlpipeline", *sys.argv[1:]]), **_cluster_options(args),
                           mlflow_uri=getattr(args, "mlflow_uri", None))
    stops = None
    if isolated:
        stops = _StopSignals()
    else:
        _interrupt_on_hangup()
    try:
        result = run_batch(options, _say, prepare=stops.attach if stops else None, pool=pool)
    except KeyboardInterrupt:
        _say("interrupted (Ctrl+C)", WARNING)
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
    from .read.queries import list_runs
    from .store.reader import Reader
    from .read.render import render

    reader = Reader(result.ledger_path)
    try:
        rows = list_runs(reader, ids=[f.run_id for f in finished], limit=None)
    finally:
        reader.close()
    _out(render(reversed(_with_attempt(rows)), BATCH_COLUMNS))
    if result.total > len(finished):
        _say(f"(the last {len(finished)} of the {result.total} runs this batch ended; mlpipeline runs lists them all)")
    from collections import Counter

    retried = Counter(f.status.value for f in result.retried)  # attempts whose version ran again
    counts = {status: n - retried[status] for status, n in result.counts.items()}
    counts.setdefault(RunStatus.SUCCEEDED.value, 0)
    counts.setdefault(RunStatus.FAILED.value, 0)
    order = [s.value for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PRUNED, RunStatus.TIMEOUT,
                               RunStatus.STALLED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)]
    again = sum(retried.values())
    _say(", ".join(f"{counts[s]} {s}" for s in order if s in counts) + (f", {again} retried" if again else "")
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
    from .plan.scaffold import init_project

    written = init_project(args.target, plain=getattr(args, "plain", False))
    for path in written:
        print(f"created {display(path)}")
    import shlex

    where = "" if os.path.abspath(args.target) == os.getcwd() else f" -C {shlex.quote(args.target)}"
    print(f"next: mlpipeline{where}        (test mode)\n      mlpipeline{where} -r -u  (train for real)")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from .read.queries import list_runs, parse_since
    from .read.render import render

    project, ledger = _open_ledger(args)
    if args.limit is not None and args.limit < 0:
        raise UsageError(f"--limit {args.limit}: give 0 (all runs) or a positive number")
    since = parse_since(args.since) if args.since else None
    if args.output and args.format != "parquet":
        raise UsageError("--output FILE goes with --format parquet (the other formats print: redirect them)")
    if args.format == "parquet":
        from .read.frames import write_parquet

        if not args.output:
            raise UsageError("--format parquet writes a file: give --output FILE")
        count = write_parquet(ledger, args.output, project.outputs_dir, script=args.script, version=args.version_name,
                              status=args.status, mode=args.mode, since=since, limit=args.limit or None, tag=args.tag,
                              all=args.all)
        _say(f"wrote {count} run(s) to {display(args.output)}")
        return EXIT_OK
    if ledger is None:
        if args.format == "table":
            _say("no runs recorded yet; run mlpipeline (test mode) or mlpipeline -r")
        else:
            print(render([], RUNS_COLUMNS[args.format], args.format))
        return EXIT_OK
    rows = list_runs(ledger, script=args.script, version=args.version_name, status=args.status,
                     mode=args.mode, since=since, limit=args.limit or None, tags=args.tag or (), deleted=args.all)
    if not rows and args.format == "table":
        _say(("no runs match" + ("" if args.all else " (deleted runs are left out: --all shows them too)"))
             if any((args.script, args.version_name, args.status, args.mode, args.since, args.tag))
             else "no runs recorded yet; run mlpipeline (test mode) or mlpipeline -r")
        return EXIT_OK
    if args.format != "table":
        print(render(rows, RUNS_COLUMNS[args.format], args.format))
        return EXIT_OK
    columns = RUNS_COLUMNS["table"]
    if any(r["tags"] for r in rows):  # a tags column when any run has tags
        columns = columns[:3] + ("tags",) + columns[3:]
    shown = [{**r, "status": f"{r['status']} (deleted)"} if r["deleted_at"] else r for r in _with_attempt(rows)]
    print(render(shown, columns))
    return EXIT_OK


def _with_attempt(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A retry says so where the status is read: ``succeeded (attempt 2)``."""
    return [{**r, "status": f"{r['status']} (attempt {r['attempt']})"} if (r.get("attempt") or 1) > 1 else r
            for r in rows]


def cmd_show(args: argparse.Namespace) -> int:
    from .read.queries import show_run, system_line
    from .read.render import render, render_record

    _, ledger = _open_ledger(args)
    record = show_run(_need_ledger(ledger, f"show {args.run}"), args.run)
    if args.format != "table":
        print(render_record(record, args.format))
        return EXIT_OK
    metrics = record.pop("metrics")
    traceback = record.pop("traceback", None)
    system = system_line(record.pop("system_peaks"))
    hidden = {"params_sha256", "script_sha256", "eval_train_text", "eval_test_text", "started_at", "ended_at",
              "heartbeat_at", "source_key", "environment_sha256", "deleted_at"}
    print(render_record({k: v for k, v in record.items() if k not in hidden and v is not None and v != []}))
    if metrics:
        print("\nmetrics:")
        print(render(metrics, ("split", "name", "kind", "last", "best", "points", "last_step")))
    if system:
        print(f"\nsystem: {system}")
    if traceback:
        print("\n" + traceback.rstrip())
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from .read.queries import follow_log

    _, ledger = _open_ledger(args)
    out = sys.stdout.buffer
    for chunk in follow_log(_need_ledger(ledger, f"logs {args.run}"), args.run, follow=args.follow):
        out.write(chunk)
        out.flush()
    return EXIT_OK


def cmd_import_history(args: argparse.Namespace) -> int:
    from .compat.legacy_import import import_history
    from .read.render import render

    from .plan.config import find_project
    from .store.ledger import open_ledger

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
    from .read.render import render, render_record
    from .read.status import project_status

    project, ledger = _open_ledger(args)
    state = project_status(project, ledger)
    if any(r.get("slurm_job_id") for r in state["running"]):  # (Slurm's commands only where its jobs run)
        from .execution.slurmcli import slurm_waits

        slurm_waits(state["running"])
    if args.format == "json":
        print(render_record(state, "json"))
        return EXIT_OK
    if args.format == "csv":
        runner = state["runner"]
        rows = ([{"section": "runner", "id": runner["pid"], "script": runner["host"], "state":
                  "alive" if runner["alive"] else "ended", "reason": runner["options_text"],
                  "elapsed": runner["started"]}] if runner else [])
        rows += [{"section": QueueState.RUNNING.value, **r} for r in state["running"]]
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
        shown = ("id", "script", "version", "state", "node", "slurm_job_id", "gpu", "elapsed", "last_metric")
        wanted = {"node": any(r["node"] for r in state["running"]),
                  "slurm_job_id": any(r.get("slurm_job_id") for r in state["running"]),
                  "state": any(r["state"] != QueueState.RUNNING.value for r in state["running"])}
        print(render(state["running"], tuple(c for c in shown if wanted.get(c, True))))
    queued = [{**q, "position": i} for i, q in
              enumerate((q for q in state["queue"] if q["state"] in (QueueState.QUEUED, QueueState.RUNNING)), start=1)]
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
    from .read.status import request

    project, ledger = _open_ledger(args)
    asked = request(project, _need_ledger(ledger, f"cancel {args.run}"), "cancel", args.run)
    run = asked["run"]
    print(f"cancel requested for run {run['id']} ({run['script']} {run['version']}); the runner (pid "
          f"{asked['runner']['pid']}) ends it at its next step; see mlpipeline status")
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    from .read.status import request

    project, ledger = _open_ledger(args)
    asked = request(project, _need_ledger(ledger, args.command), args.command)
    if args.command == "pause":
        print(f"pause requested: the runner (pid {asked['runner']['pid']}) lets running versions finish and starts "
              f"nothing new until mlpipeline resume")
    else:
        print(f"resume requested: the runner (pid {asked['runner']['pid']}) goes on with the queue")
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace) -> int:
    from .read.queries import metric_curve
    from .read.render import render

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
    from .read.outputs import output_rows
    from .read.render import render

    project, ledger = _open_ledger(args)
    rows = output_rows(ledger, project, script=args.script) if ledger is not None else []
    if not rows and args.format == "table":
        _say("no outputs match" if args.script else "no outputs recorded yet; call self.save_output(name, value) "
                                                    "in a version and run mlpipeline -r")
        return EXIT_OK
    print(render(rows, OUTPUTS_COLUMNS[args.format], args.format))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from .plan.config import find_project
    from .run.predict import DEFAULT_TIMEOUT, run_predict
    from .read.render import render, render_record

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


def cmd_notify(args: argparse.Namespace) -> int:
    from .plan.config import find_project
    from .run.notify import configured, mask, notify_test

    project = find_project(args.directory)
    for warning in project.warnings:
        _say(warning, WARNING)
    settings = configured(project)
    if not args.test:
        print(f"on: {', '.join(sorted(settings.on)) or 'no event'}")
        if settings.dashboard_url:
            print(f"links to: {settings.dashboard_url}/runs/<id>")
        for url in settings.urls:
            print(f"to: {mask(url)}")
        return EXIT_OK
    answers = notify_test(project)
    for shown, error in answers:
        print(f"{shown}: {'ok' if error is None else error}")
    failed = sum(error is not None for _, error in answers)
    if failed:
        _say(f"{failed} of {len(answers)} URL(s) did not take the test message", ERROR)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .plan.config import find_project
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


