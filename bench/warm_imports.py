"""Versions pay their script's imports once (issue 19): a warm parent per script imports them and
forks the versions.

- ``torch_versions``: 50 versions of a script that imports torch at the top (each version one
  small matrix product) under ``mlpipeline -r``, against the same loop in one process (a driver
  that imports the script once and calls each version's hooks). Overhead per version = (runner wall
  - driver wall) / 50, with the script's description cached (a second batch; the note gives the
  first batch, which also describes the script) and interleaved runs. Needs torch (the torch extra).
- ``optuna_tpe``: a 100-point TPE search written as the README shows (``import optuna`` at the top,
  ``optuna_search`` over a study in a SQLite file under ``outputs/``) against Optuna's own
  ``study.optimize`` with the same sampler and seed over a study in a SQLite file, the objective the
  same trivial function of ``lr``. Needs optuna (the optuna extra).
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import textwrap
from typing import List, Optional

from .common import STUB_LOADER, Result, interleaved, mlpipeline_cmd, script_project, wall

VERSIONS = 50
TORCH_SCRIPT = "import torch\n" + STUB_LOADER + textwrap.dedent('''\
    class M(Model):
        def pre_execution_hook(self, version, model_dir, exec_mode="test"):
            self.size = version["size"]
        def train_model(self, input_fn, steps):
            torch.manual_seed(0)
            self.x = torch.randn(self.size, self.size) @ torch.randn(self.size, self.size)
        def evaluate_model(self, input_fn, steps):
            return {"x": float(self.x.abs().mean())}

    versions = Versions(L(), 1, 1)
    for i in range(__COUNT__):
        versions.add_version("v%03d" % i, size=32 + i)
    MODEL = M(versions)
    ''')
# The same hooks, each version in turn, in one process that imports the script (and torch) once.
DRIVER = textwrap.dedent('''\
    import importlib.util, sys, tempfile
    spec = importlib.util.spec_from_file_location("script", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for version in module.MODEL.versions.get_versions():
        module.MODEL.pre_execution_hook(version, tempfile.mkdtemp(), "train")
        module.MODEL.train_model(None, 1)
        module.MODEL.evaluate_model(None, 1)
        module.MODEL.evaluate_model(None, 1)
    ''')

POINTS = 100
OPTUNA_SCRIPT = "import optuna\nfrom mlpipeline.sweeps import loguniform, optuna_search\n" + STUB_LOADER + \
    textwrap.dedent('''\
    class M(Model):
        def pre_execution_hook(self, version, model_dir, exec_mode="test"):
            self.lr = version["lr"]
        def train_model(self, input_fn, steps): pass
        def evaluate_model(self, input_fn, steps): return {"loss": (self.lr - 0.01) ** 2}

    versions = Versions(L(), 1, 1)
    versions.add_version("base", lr=1e-3)
    versions.add_search(optuna_search(lambda: optuna.create_study(storage="sqlite:///models/outputs/study.db",
                                                                  study_name="lr", load_if_exists=True,
                                                                  sampler=optuna.samplers.TPESampler(seed=0)),
                                      "test/loss", "minimize", space={"lr": loguniform(1e-5, 1e-1)}),
                        budget=__POINTS__, parallel=__PARALLEL__, name="tpe")
    MODEL = M(versions)
    ''')
OPTIMIZE = textwrap.dedent('''\
    import os, sys
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = sys.argv[1]
    if os.path.exists(path):
        os.remove(path)
    study = optuna.create_study(storage="sqlite:///" + path, study_name="lr", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=0))
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        return (lr - 0.01) ** 2
    study.optimize(objective, n_trials=int(sys.argv[2]))
    ''')


def _ledger(root: str) -> str:
    return os.path.join(root, "models", "outputs", "mlpipeline.db")


def _last_id(root: str) -> int:
    if not os.path.exists(_ledger(root)):
        return 0
    with sqlite3.connect(f"file:{_ledger(root)}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]


def _batch(root: str, expect: int, fresh: bool = False, env: Optional[dict] = None,
           args: Optional[List[str]] = None) -> float:
    """One timed ``mlpipeline -r -n`` (no ``-u``: every version runs again); ``fresh``: a new ledger,
    so the script is described too. Checks that ``expect`` runs succeeded."""
    if fresh:
        shutil.rmtree(os.path.join(root, "models", "outputs"), ignore_errors=True)
    before = _last_id(root)
    took = wall(mlpipeline_cmd() + ["-r", "-n", *(args or [])], cwd=root, env={**os.environ, **(env or {})})
    with sqlite3.connect(f"file:{_ledger(root)}?mode=ro", uri=True) as conn:
        done = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND mode = 'run' AND id > ?",
                            (before,)).fetchone()[0]
    if done != expect:
        raise RuntimeError(f"{root}: expected {expect} succeeded runs, found {done}")
    return took


def torch_versions(runs: int = 5) -> List[Result]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return [Result("torch script, 50 versions", 0, None, "needs torch", False, note="pip install '.[torch]'")]
    root = script_project(TORCH_SCRIPT.replace("__COUNT__", str(VERSIONS)), "t.py")
    try:
        driver = os.path.join(root, "driver.py")
        with open(driver, "w") as handle:
            handle.write(DRIVER)
        script = os.path.join(root, "models", "t.py")
        first = _batch(root, VERSIONS, fresh=True)  # describes the script too
        ours, alone = interleaved(runs, lambda: _batch(root, VERSIONS),
                                  lambda: wall([sys.executable, driver, script], cwd=root))
        plain = _batch(root, VERSIONS, env={"MLPIPELINE_WARM_IMPORTS": "0"})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per = (ours - alone) / VERSIONS * 1000
    return [Result(f"torch script, {VERSIONS} versions: added per version", round(per, 1), round(alone * 1000, 1),
                   "<= 50 ms", per <= 50, note=(
                       f"-r wall {ours:.2f} s vs {alone:.2f} s for the same loop in one process (medians of {runs}, "
                       f"interleaved, description cached); first batch, describing it too: {first:.2f} s "
                       f"({(first - alone) / VERSIONS * 1000:.1f} ms a version); without warm parents "
                       f"(MLPIPELINE_WARM_IMPORTS=0): {plain:.2f} s ({(plain - alone) / VERSIONS * 1000:.1f} ms)"))]


def optuna_tpe(runs: int = 5) -> List[Result]:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return [Result("optuna TPE search", 0, None, "needs optuna", False, note="pip install '.[optuna]'")]
    roots = {parallel: script_project(OPTUNA_SCRIPT.replace("__POINTS__", str(POINTS))
                                      .replace("__PARALLEL__", str(parallel)), "search.py") for parallel in (2, 1)}
    study = os.path.join(tempfile.mkdtemp(prefix="mlp-bench-optuna-"), "study.db")
    try:
        ours, serial, theirs = interleaved(
            runs, lambda: _batch(roots[2], POINTS + 1, fresh=True, args=["-j", "2"]),
            lambda: _batch(roots[1], POINTS + 1, fresh=True),
            lambda: wall([sys.executable, "-c", OPTIMIZE, study, str(POINTS)]))
        with sqlite3.connect(os.path.join(roots[2], "models", "outputs", "study.db")) as conn:
            trials = conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        plain = _batch(roots[2], POINTS + 1, fresh=True, env={"MLPIPELINE_WARM_IMPORTS": "0"}, args=["-j", "2"])
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(os.path.dirname(study), ignore_errors=True)
    ratio = ours / theirs
    return [Result(f"{POINTS}-point TPE search as the README writes it (parallel=2, -j 2)", round(ours, 2),
                   round(theirs, 2), "<= 1.5x study.optimize", ratio <= 1.5, unit="s", note=(
                       f"`mlpipeline -r -j 2` (a fresh project each time: the script described, {POINTS} points and "
                       f"its base version run, {trials} trials COMPLETE in its study) vs `study.optimize` in one "
                       f"process (n_jobs=1, its fastest here), both TPESampler(seed=0) on a SQLite study, {runs} "
                       f"interleaved runs; the same search with parallel=1 (-j 1): {serial:.2f} s "
                       f"({serial / theirs:.2f}x); without warm parents (MLPIPELINE_WARM_IMPORTS=0): {plain:.2f} s"))]
