"""The commands that curate the ledger: ``tag``, ``untag``, ``note``, ``delete`` and ``gc``. Each
parses, calls one library function (``read.curate``, ``read.gc``), renders; errors become exit codes in
``cli.main``."""
from __future__ import annotations

import argparse
import sys

from .commands import ERROR, EXIT_FAILED, EXIT_OK, WARNING, _say

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List


def add_commands(command: Any, statuses: Any) -> None:
    """The curation subcommands, on ``command`` (cli's maker of subparsers)."""
    tag = command("tag", "add tags to a run (shown by runs and show; runs --tag T lists the runs tagged T)")
    tag.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    tag.add_argument("tags", nargs="+", metavar="TAG", help="a tag: 1 to 64 characters, no spaces or commas")
    untag = command("untag", "take tags off a run")
    untag.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    untag.add_argument("tags", nargs="+", metavar="TAG", help="a tag the run has")
    note = command("note", "set a run's note (shown by show and the run's page); no TEXT clears it")
    note.add_argument("run", metavar="RUN", help="run id or a unique prefix of its uid")
    note.add_argument("text", nargs="*", metavar="TEXT", help="the note (its words joined by spaces)")
    delete = command("delete", "hide runs from every listing (runs --all shows them; the rows stay, so history "
                               "and -u stay exact); mlpipeline gc then frees their files")
    delete.add_argument("runs", nargs="*", metavar="RUN", help="run ids or unique prefixes of their uids")
    delete.add_argument("--script", metavar="S", help="select the runs of this script (path or file name)")
    delete.add_argument("--status", choices=statuses, help="select the runs with this status")
    delete.add_argument("--before", metavar="DATE", help="select the runs started before DATE (2026-11-20) or "
                                                         "longer ago than an age (30d)")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    gc = command("gc", "remove what no kept run needs: run folders of deleted runs, model dirs no kept run points "
                       "to ([MLP] keep = N by METRIC keeps each script's best N), cached outputs only deleted runs "
                       "recorded, the ledger's WAL")
    gc.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    gc.add_argument("--dry-run", action="store_true", help="print what would be freed and remove nothing")


def _project(args: argparse.Namespace) -> Any:
    from .plan.config import find_project

    return find_project(args.directory)


def _via(via: str) -> str:
    return f" (through the {via})" if via.startswith("runner") else ""


def cmd_tag(args: argparse.Namespace) -> int:
    from .read.curate import tag_runs

    remove = args.command == "untag"
    done = tag_runs(_project(args), [args.run], args.tags, remove=remove)
    print(f"run {done['runs'][0]}: {'untagged' if remove else 'tagged'} {', '.join(done['tags'])}{_via(done['via'])}")
    return EXIT_OK


def cmd_note(args: argparse.Namespace) -> int:
    from .read.curate import note_run

    done = note_run(_project(args), args.run, " ".join(args.text))
    print(f"run {done['run']}: " + ("note set" if done["note"] else "note cleared") + _via(done["via"]))
    return EXIT_OK


def _confirm(question: str) -> bool:
    """Ask on the terminal; an answer other than y (or no answer: stdin closed) is no."""
    _say(question + " [y/N]")
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace) -> int:
    from .read.curate import delete_runs, runs_to_delete
    from .read.queries import parse_since

    project = _project(args)
    before = parse_since(args.before, option="--before") if args.before else None
    chosen = runs_to_delete(project, args.runs, script=args.script, status=args.status, before=before)
    runs: List[Dict[str, Any]] = chosen["runs"]
    if chosen["running_left"]:
        _say(f"{chosen['running_left']} running run(s) match too; they are left alone", WARNING)
    if chosen["already"]:
        _say(f"run(s) {', '.join(map(str, chosen['already']))}: already deleted (mlpipeline runs --all shows them)")
    if not runs:
        _say("no runs match; nothing deleted" if not chosen["already"] else "nothing else to delete")
        return EXIT_OK
    ids = [r["id"] for r in runs]
    shown = ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
    if not args.yes and not _confirm(f"delete {len(ids)} run(s) ({shown})? They are hidden from every listing "
                                     f"(mlpipeline runs --all shows them); mlpipeline gc then frees their files."):
        _say("nothing deleted (answer y, or give --yes)")
        return EXIT_FAILED
    done = delete_runs(project, ids)
    print(f"deleted {len(done['runs'])} run(s): {shown}{_via(done['via'])}; mlpipeline gc frees their files")
    return EXIT_OK


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _gc_table(plan: Any) -> str:
    from .read.render import render

    rows = [{**row, "size": _bytes(int(row["bytes"]))} for row in plan.summary()]
    return render(rows, ("what", "count", "size"))


def cmd_gc(args: argparse.Namespace) -> int:
    from .read.gc import collect, plan_gc

    project = _project(args)
    plan = plan_gc(project, allow_runner=args.dry_run)
    if plan.keep:
        _say(f"keep = {plan.keep[0]} by {plan.keep[1]}: the model dirs of each script's best {plan.keep[0]} runs stay"
             + (f"; {len(plan.ranked_out)} other run(s)' model dirs may go" if plan.ranked_out else ""))
        if plan.unranked:
            shown = ", ".join(plan.unranked[:5]) + (f" and {len(plan.unranked) - 5} more" if len(plan.unranked) > 5
                                                    else "")
            _say(f"keep = {plan.keep[0]} by {plan.keep[1]}: no run of {shown} recorded {plan.keep[1]} as a result, "
                 f"so all their model dirs stay (mlpipeline compare lists the metrics there are)", WARNING)
    if plan.empty:
        print(_gc_table(plan))
        _say("nothing to collect: every run folder, model dir and cached output is needed by a kept run"
             + ("" if args.dry_run or not plan.wal else "; the ledger's WAL is truncated"))
        if not args.dry_run and plan.wal:
            collect(project)
        return EXIT_OK
    print(("would free:\n" if args.dry_run else "") + _gc_table(plan))
    if args.dry_run:
        return EXIT_OK
    if not args.yes and not _confirm("remove them?"):
        _say("nothing removed (answer y, or give --yes)")
        return EXIT_FAILED
    done = collect(project)
    for problem in done.problems:
        _say(problem, WARNING)
    # the WAL as shown above: what gc's own writes added to it since is not news
    freed = sum(int(row["bytes"]) for row in done.summary() if row["what"] != "ledger WAL") + min(done.wal, plan.wal)
    _say(f"removed {len(done.model_dirs)} model dir(s), {len(done.run_dirs)} run folder(s), {len(done.outputs)} "
         f"cached output(s); freed {_bytes(freed)}"
         + ("; a reader kept the ledger's WAL busy: it is truncated next time" if done.wal_busy else ""))
    if done.problems:
        _say(f"{len(done.problems)} thing(s) could not be removed (above); fix their permissions and run "
             f"mlpipeline gc again", ERROR)
        return EXIT_FAILED
    return EXIT_OK
