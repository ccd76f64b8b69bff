"""The original 2.0a1 … 2.0a7.post1 command line beside this project's own: ``mlpipeline run`` (execution
mode, as ``mlpipeline -r``) and ``mlpipeline test`` (test mode, as ``mlpipeline``), with 2.x's options
``--no-log``, ``--experiments``, ``--experiments-dir`` and ``--mlflow_tracking_uri`` before the command and
``test --all``; ``--mlflow_tracking_uri`` logs execution-mode runs to that MLflow store, in place of mlp.config's
``[MLFLOW] tracking_uri``. What 2.x had and this project does not yet (``export``, ``single``, a list of scripts
or a folder given on the command line) is refused with the generation named."""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from ..commands import cmd_run
from ..core.errors import UsageError

GENERATION = "the original's 2.0a3 ... 2.0a7.post1"  # its click command line came with 2.0a3


def add_options(parser: argparse.ArgumentParser) -> None:
    """2.x's options before the command (``--no-log`` is this project's own too)."""
    group = parser.add_argument_group(f"from {GENERATION} (before run/test)")
    group.add_argument("--experiments", action="append", metavar="SCRIPT",
                       help="2.x: run only these scripts (not supported yet: list them in experiments.config)")
    group.add_argument("--experiments-dir", metavar="DIR",
                       help="2.x: the scripts' folder (not supported yet: set experiments_dir in mlp.config)")
    group.add_argument("--mlflow_tracking_uri", metavar="URI",
                       help="2.x: also log each run of mlpipeline run to this MLflow store (a folder, relative to "
                            "the current one, or a server's URL), in place of [MLFLOW] tracking_uri in mlp.config")


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``run``, ``test`` and the 2.x commands that only answer with a hint."""
    command("run", "2.x's spelling of mlpipeline -r: run the versions experiments.config lists")
    test = command("test", "2.x's spelling of mlpipeline (test mode): one step of each version in "
                           "experiments_test.config")
    test.add_argument("--all", action="store_true", help="2.x: every version (as this project's test mode always does)")
    for name in ("export", "single"):
        hint = command(name, f"{GENERATION}'s {name} command: not supported (the command says what to do instead)")
        hint.add_argument("rest", nargs=argparse.REMAINDER, help="2.x's arguments (not read)")


def cmd_2x(args: Any) -> int:
    """Run ``mlpipeline run``/``test`` as ``mlpipeline -r``/``mlpipeline``, after checking 2.x's options."""
    if args.command == "export":
        raise UsageError(f"mlpipeline export ({GENERATION}) is not supported: exporting a version's model is "
                         f"the script's own business here; call export_model() at the end of train_loop, or use "
                         f"mlpipeline predict RUN FILE")
    if args.command == "single":
        raise UsageError(f"mlpipeline single ({GENERATION}) is not supported: list the script in "
                         f"experiments.config and pick versions with --version NAME (mlpipeline --version NAME run)")
    if args.experiments:
        raise UsageError(f"--experiments ({GENERATION}) is not supported yet: list the scripts in "
                         f"experiments.config (experiments_test.config for test), [WHITELISTED_EXPERIMENTS]")
    if args.experiments_dir:
        raise UsageError(f"--experiments-dir ({GENERATION}) is not supported yet: set experiments_dir = "
                         f"{args.experiments_dir} under [MLP] in mlp.config")
    from ..plan.config import tracking_uri

    args.mlflow_uri = tracking_uri(args.mlflow_tracking_uri or "", os.getcwd())  # relative: to here, as 2.x read it
    args.run = args.command == "run"
    return cmd_run(args)
