"""Where a project keeps what: one object for every path (the ledger, a run's folder, a
version's model dir, the output cache), so a path is spelled in one place — and where
mlpipeline's own files are, to tell them from a user's."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import FrozenSet, List, Optional, Tuple

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../mlpipeline
PACKAGE_PARENT = os.path.dirname(PACKAGE_DIR)  # what a child puts on sys.path to import mlpipeline

PROJECT_FILE = "mlp.config"
RUN_CONFIG = "models.config"
TEST_CONFIG = "models_test.config"
# The original's 1.1a3.post8 ... post12 spelled the same files (and [MLP] experiments_dir, the
# [WHITELISTED_/BLACKLISTED_EXPERIMENTS] sections) with "experiments"; a project keeps its spelling.
EXPERIMENTS = "experiments"
EXPERIMENT_CONFIGS = {False: "experiments.config", True: "experiments_test.config"}
OUTPUTS_DIR = "outputs"        # under models_dir
DB_NAME = "mlpipeline.db"      # the ledger, in outputs/
MODEL_DIRS = "model_ckpts"     # a version's persistent model dir: model_ckpts/<script stem><suffix>
RUN_DIRS = "runs"              # a run's folder: runs/<run id>/ (its output.log, rich results, predictions)
RUN_LOG = "output.log"         # a run's captured stdout and stderr, in its folder
CACHE_DIR = "cache"            # values versions saved (save_output): cache/<aa>/<sha256>.<ext>
NOTIFIED_DIR = "notified"      # what was notified once for every process (a dead runner): notified/<what>
OUTPUT_EXTENSIONS = {"array": "npy", "frame": "npz", "series": "npz", "json": "json"}  # by the kind of value


def run_log(run_dir: str) -> str:
    return os.path.join(run_dir, RUN_LOG)


def tree_size(path: str, limit: Optional[int] = None) -> int:
    """The bytes under ``path`` (a file or a folder; links not followed, unreadable entries skipped),
    counted up to just past ``limit`` when one is given."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            return os.lstat(path).st_size
    except OSError:
        return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
            if limit is not None and total > limit:
                return total
    return total


@dataclass(frozen=True)
class NotifySettings:
    """``[NOTIFY]`` in mlp.config: where notifications go (apprise URLs: they hold secrets, so
    they are left out of the repr) and on which events (``NotifyEvent`` values)."""

    urls: Tuple[str, ...] = field(repr=False)
    on: FrozenSet[str] = frozenset()
    dashboard_url: Optional[str] = None  # messages link to <dashboard_url>/runs/<id>


@dataclass(frozen=True)
class SlurmSettings:
    """``[SLURM]`` in mlp.config: what every version's job asks Slurm for, besides what the
    version declares (``resources``). ``time`` as sbatch reads it (minutes, or D-HH:MM:SS)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time: Optional[str] = None
    constraint: Optional[str] = None
    extra: Tuple[str, ...] = ()          # more sbatch options, as written (split as a shell would)
    poll: float = 2.0                    # seconds between two looks at Slurm (one squeue each)


@dataclass
class Project:
    """A project folder: where its configs, scripts and outputs are."""

    root: str
    models_dir: str
    warnings: List[str] = field(default_factory=list)
    backend: Optional[str] = None        # [MLP] backend: local, ray or slurm
    ray_address: Optional[str] = None    # [MLP] ray_address: auto or HOST:PORT
    notify: Optional[NotifySettings] = None  # [NOTIFY], when mlp.config has one
    slurm: SlurmSettings = field(default_factory=SlurmSettings)  # [SLURM]
    mlflow_uri: Optional[str] = None     # [MLFLOW] tracking_uri (a path made a file: URI from the root)
    spelling: str = "models"             # "experiments": a 1.1a3.post8-post12 project's configs
    records_in: Optional[str] = None     # another project's outputs folder whose ledger (and runner lock) this
                                         # one's runs go to: an exact re-run's checkout records in the original's

    @property
    def outputs_dir(self) -> str:
        return os.path.join(self.models_dir, OUTPUTS_DIR)

    @property
    def ledger_dir(self) -> str:
        """Where the ledger and the runner lock are: the outputs folder, unless ``records_in`` says otherwise."""
        return self.records_in or self.outputs_dir

    @property
    def ledger_path(self) -> str:
        return os.path.join(self.ledger_dir, DB_NAME)

    @property
    def notified_dir(self) -> str:
        return os.path.join(self.outputs_dir, NOTIFIED_DIR)

    def run_dir(self, run_id: int) -> str:
        return os.path.join(self.outputs_dir, RUN_DIRS, str(run_id))

    def model_dir(self, script: str, suffix: str) -> str:
        """A version's persistent model dir: the script's stem and the version's suffix."""
        return os.path.join(self.outputs_dir, MODEL_DIRS, os.path.splitext(os.path.basename(script))[0] + suffix)

    def config_path(self, test_mode: bool) -> str:
        if self.spelling == EXPERIMENTS:
            return os.path.join(self.root, EXPERIMENT_CONFIGS[test_mode])
        return os.path.join(self.root, TEST_CONFIG if test_mode else RUN_CONFIG)

    def rel(self, path: str) -> str:
        """``path`` relative to the project root (how runs name their scripts)."""
        return os.path.relpath(path, self.root)
