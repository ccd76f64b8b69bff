"""``mlpipeline.pytorch`` as 2.0a1 … 2.0a7.post1 had it: its helpers compared against the released
2.0a7.post1, and a 2.x project built on them run unmodified through ``mlpipeline test``/``mlpipeline run``.

The release's venv (test_2x.py) holds no torch: it is given this venv's torch, and what torch requires that
it lacks, through a folder of links on its PYTHONPATH (nothing it has is shadowed)."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from original import clean_env
from test_2x import release_venv

HERE = Path(__file__).parent


def _top_level(dist: metadata.Distribution) -> set:
    names = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith((".dist-info", ".pth")):
            names.add(first)
    return names


def torch_overlay(venv: Path, dst: Path) -> Path:
    """``dst``, holding links to this venv's torch and the packages it requires (transitively) that ``venv``
    does not have."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    have = {p.name for p in site.iterdir()}
    dst.mkdir()
    todo, seen = ["torch"], set()
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for top in _top_level(dist) - have:
            (dst / top).symlink_to(Path(str(dist.locate_file(top))))
        todo += [re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in dist.requires or () if "extra ==" not in r]
    return dst


def release_env(tmp: Path) -> tuple:
    venv = release_venv()
    env = clean_env(venv / "bin")
    env["PYTHONPATH"] += os.pathsep + str(torch_overlay(venv, tmp / "torch-overlay"))
    return venv, env


def observe(python: Path, env: dict, tmp: Path, label: str) -> dict:
    out, work = tmp / f"{label}.json", tmp / label
    (work / "checkpoints").mkdir(parents=True)
    result = subprocess.run([str(python), str(HERE / "v2" / "pytorch_2x.py"), str(out), "checkpoints"], cwd=work,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"pytorch_2x.py under {label}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_the_pytorch_helpers_match_the_release(tmp_path):
    venv, env = release_env(tmp_path)
    expected = observe(venv / "bin" / "python", env, tmp_path, "original")
    ours = observe(Path(sys.executable), clean_env(Path(sys.executable).parent), tmp_path, "ours")
    # A listed difference: save_checkpoint saves no scheduler when the script set none (2.x: AttributeError).
    assert expected.pop("save_without_scheduler") == {"raised": True, "is_AttributeError": True}
    assert ours.pop("save_without_scheduler") is None
    assert json.dumps(ours, sort_keys=True) == json.dumps(expected, sort_keys=True)


def run(command, root: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, env=env)


def ours(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "mlpipeline", *args], root, clean_env(Path(sys.executable).parent))


def project(dst: Path) -> Path:
    shutil.copytree(HERE / "projects" / "v2_pytorch", dst)
    return dst


EPOCH = re.compile(r"epoch (\d+) loss ([0-9.]+)")


def test_a_2x_pytorch_project_runs_unmodified(tmp_path):
    """Execution mode (test mode: below), twice: the second run of each version goes on from its checkpoint."""
    root = project(tmp_path / "ours")
    ran = ours(root, "run")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    with sqlite3.connect(root / "experiments" / "outputs" / "mlpipeline.db") as db:
        rows = [tuple(r) for r in db.execute("SELECT version, status, mode FROM runs ORDER BY id")]
    assert rows == [("lr-small", "succeeded", "run"), ("lr-big", "succeeded", "run")]
    ckpts = root / "experiments" / "outputs" / "model_ckpts"
    assert sorted(os.listdir(ckpts / "linear-lr-big")) == ["linear.py"] + [f"model_params{n}.tch" for n in range(4)]
    assert "No checkpoint" in ran.stdout and "ancient: model_params3.tch" in ran.stdout
    assert "validation inputs: 4" in ran.stdout
    losses = [float(loss) for _, loss in EPOCH.findall(ran.stdout)]
    assert len(losses) == 3 + 4 and losses[2] < losses[0] and losses[6] < losses[3]  # it learns
    again = ours(root, "run")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Loading parameters from: " + str(ckpts / "linear-lr-big" / "model_params0.tch") in again.stdout
    # 2.x's loop runs from the epoch its checkpoint was saved at: each version's last epoch again
    assert sorted(int(e) for e, _ in EPOCH.findall(again.stdout)) == [2, 3]


def test_the_project_matches_the_release(tmp_path):
    """The release's test mode ran one version (lr-big, the last: a listed difference); it trained and
    evaluated it as ours does, to the same losses."""
    venv, env = release_env(tmp_path)
    expected = run([str(venv / "bin" / "mlpipeline"), "test"], project(tmp_path / "original"), env)
    assert expected.returncode == 0, expected.stdout[-3000:] + expected.stderr[-3000:]
    text = expected.stdout + expected.stderr
    assert "version loaded: lr-big" in text and "Traceback" not in text, text[-3000:]
    mine = ours(project(tmp_path / "ours"), "test")
    assert mine.returncode == 0, mine.stdout[-3000:] + mine.stderr[-3000:]
    # iterator(..., 2) cut the epochs at two; each version started with no checkpoint (a fresh dir)
    assert mine.stdout.count("No checkpoint") == 2 and "epoch 1 loss" in mine.stdout and "epoch 2" not in mine.stdout
    theirs_epochs = EPOCH.findall(text)
    assert theirs_epochs and theirs_epochs == EPOCH.findall(mine.stdout)[-len(theirs_epochs):]
    lines = re.findall(r"(?:TRAIN|TEST)_loss: [0-9.]+|ancient: \S+|validation inputs: \d+", text)
    assert len(lines) == 4
    for line in lines:
        assert line in mine.stdout + mine.stderr, line


def test_torch_is_imported_only_when_used():
    code = ("import sys, mlpipeline, mlpipeline.cli; mlpipeline.cli.build_parser(); "
            "import mlpipeline.pytorch, mlpipeline.base, mlpipeline.entities; "
            "from mlpipeline.pytorch import BaseTorchExperimentABC, BaseTorchDataLoader, DatasetFactory; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "from mlpipeline.pytorch import DatasetBasicABC; import torch.utils.data; "
            "assert issubclass(DatasetBasicABC, torch.utils.data.Dataset)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
