"""What ``mlpipeline show RUN --env`` and ``mlpipeline rerun RUN [--exact]`` do: call one library function,
render what it returns. Errors become exit codes in ``cli.main``."""
from __future__ import annotations

import argparse

from .commands import EXIT_FAILED, EXIT_OK, WARNING, _need_ledger, _open_ledger, _out, _say, _StopSignals
from .core.errors import display


def cmd_show_env(args: argparse.Namespace) -> int:
    """The environment a run recorded: Python, platform, CUDA and the driver, and every package."""
    from .read.queries import run_environment
    from .read.render import render, render_record

    _, ledger = _open_ledger(args)
    run, info = run_environment(_need_ledger(ledger, f"show {args.run} --env"), args.run)
    if info is None:
        _say(f"run {run['id']} recorded no environment (it ran before mlpipeline kept them); its Python: "
             f"{run.get('python_version') or 'unknown'}", WARNING)
        return EXIT_OK
    packages = [{"package": name, "version": version} for name, version in (info.get("packages") or {}).items()]
    if args.format == "json":
        import json

        _out(json.dumps({"run": run["id"], "environment": run["environment"], **info}, indent=2, sort_keys=True))
        return EXIT_OK
    if args.format == "csv":
        _out(render(packages, ("package", "version"), "csv"))
        return EXIT_OK
    python, where, gpu = info.get("python") or {}, info.get("platform") or {}, info.get("gpu") or {}
    cuda = info.get("cuda") or {}
    _out(render_record({
        "run": run["id"], "environment": run["environment"],
        "python": f"{python.get('implementation')} {python.get('version')} ({python.get('executable')})",
        "platform": f"{where.get('system')} ({where.get('machine')})",
        "cuda": ", ".join(f"{version} ({name})" for name, version in sorted(cuda.items())) or "not known",
        "driver": (f"{gpu['driver']} (CUDA {gpu.get('cuda_driver', '?')})" if gpu.get("driver")
                   else "not known (no NVML)"),
        "gpus": gpu.get("devices") or "none seen"}))
    _out(f"\npackages ({len(packages)}):")
    _out(render(packages, ("package", "version")))
    return EXIT_OK


def cmd_rerun(args: argparse.Namespace) -> int:
    """``--exact``: the run's commit, diff, parameters and seed, in a worktree; else ask the runner to run the
    run's version again in its batch (the requests door, as the dashboard's button does)."""
    if not args.exact:
        from .read.status import request

        project, ledger = _open_ledger(args)
        asked = request(project, _need_ledger(ledger, f"rerun {args.run}"), "rerun", args.run)
        print(f"rerun requested: the runner (pid {asked['runner']['pid']}) runs {asked['run']['script']} "
              f"{asked['run']['version']} again in its batch; see mlpipeline status")
        return EXIT_OK
    from .run.rerun import rerun_exact

    stops = _StopSignals()
    result = rerun_exact(args.directory, args.run, _say, timeout=args.rerun_timeout, prepare=stops.attach)
    old = result.original
    if result.run_id is None:
        _say(f"run {old['id']} was not run again (see above); the checkout is in {display(result.checkout.worktree)}")
        return EXIT_FAILED
    same = (f"see mlpipeline logs {result.run_id}" if not result.succeeded
            else f"all {result.same_metrics} metric(s) equal to run {old['id']}'s" if not result.metrics
            else f"{len(result.metrics)} metric(s) differ from run {old['id']}'s: {'; '.join(result.metrics)}")
    _out(f"run {result.run_id} ({old['script']} {old['version']}, a re-run of run {old['id']} from commit "
         f"{old['git_commit'][:12]}{' and its diff' if 'its diff' in result.checkout.kept else ''}): {result.status}; "
         f"{same}")
    _out(f"checkout: {display(result.checkout.worktree)} (git worktree remove it when done)")
    return EXIT_OK if result.succeeded else EXIT_FAILED
