"""Scripts in the shapes of the releases between the ones the differential suite runs (post7, post8, post12,
2.0a7.post1): each ran under its own release (checked once by hand against the released packages, through
their own runner: 2.0a2 for the callable dataloaders, 2.0a4.post5 for the loops with steps, 2.0a4.post8 for
the names), and runs here unmodified in test mode and in execution mode."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "between"
SCRIPTS = {
    "callable_dataloaders_2_0a1.py": ["small", "lam"],  # Versions(MyData, ...), dataloader=lambda: MyData()
    "loops_with_steps_2_0a4.py": ["small"],             # train_loop(input_fn, steps): 2.0a3.post1 ... 2.0a4.post6
    "class_dataloader_2_0a7.py": ["small"],             # Versions(MyData, ...) with 2.x's hooks
    "utils_names_2_0a4post7.py": ["small"],             # mlpipeline.utils.iterator, ExperimentModeKeys
    "top_names_2_0a4post8.py": ["small"],               # from mlpipeline import ExperimentABC, ...
}


def project(tmp_path: Path, script: str) -> Path:
    root = tmp_path / "proj"
    (root / "experiments").mkdir(parents=True)
    shutil.copy(HERE / script, root / "experiments" / script)
    (root / "mlp.config").write_text("[MLP]\nexperiments_dir = experiments\n")
    for name in ("experiments.config", "experiments_test.config"):
        (root / name).write_text("[MLP]\nuse_blacklist = False\n\n[BLACKLISTED_EXPERIMENTS]\n\n"
                                 f"[WHITELISTED_EXPERIMENTS]\n{script}\n")
    return root


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_script_of_a_release_in_between_runs_unmodified(script, tmp_path):
    root = project(tmp_path, script)
    for mode in ((), ("-r",)):
        done = subprocess.run([sys.executable, "-m", "mlpipeline", *mode], cwd=root, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (mode, done.stderr[-3000:])
    import sqlite3

    conn = sqlite3.connect(root / "experiments" / "outputs" / "mlpipeline.db")
    try:
        rows = conn.execute("SELECT version, mode, status FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [(v, m, "succeeded") for m in ("test", "run") for v in SCRIPTS[script]], rows
