"""Plain training scripts (issue 20): an argparse script whose versions are argument lines, ``Command`` for
sweeps and searches, ``log_metric``/``log_params``/``test_mode`` from any script, TensorBoard event files."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest
from helpers import pid_alive, wait_for
from mlpipeline.proc.system import MARK_VERSION

from mlpipeline.script.plain import argv_of, binds_model, params_of, parse_source, split_line

TRAIN = """\
import argparse, os
from mlpipeline import log_metric, log_params, test_mode
import helpers

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--layers", type=int, default=1)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--dropout", type=float, default=0.5)
args = parser.parse_args()
steps = 1 if test_mode() else args.epochs
for step in range(steps):
    log_metric("loss", helpers.loss(args.lr, step), step=step)
log_metric("acc", 0.5 + args.lr, split="test")
log_params(note="plain")
with open(os.path.join(os.environ["MLPIPELINE_MODEL_DIR"], "seen.json"), "w") as handle:
    json_text = '{"version": "%s", "run": "%s", "test": %s, "steps": %d}' % (
        os.environ["MLPIPELINE_VERSION"], os.environ["MLPIPELINE_RUN_ID"], str(test_mode()).lower(), steps)
    handle.write(json_text)
print("trained", os.environ["MLPIPELINE_VERSION"], "cwd", os.getcwd())
"""

HELPERS = "def loss(lr, step):\n    return 1.0 / (1.0 + lr * (step + 1))\n"

CONFIG = """\
[WHITELISTED_MODELS]
train.py

[train.py]
small = --lr 0.1 --layers 2
large = --lr 0.01 --layers 8 --epochs 5
"""


def plain_project(project, config: str = CONFIG):
    project.script("train.py", TRAIN)
    project.script("helpers.py", HELPERS)
    project.write("models.config", config)
    project.write("models_test.config", config)
    return project


def curve(project, run_id: int, name: str = "loss"):
    with project.db() as conn:
        return [tuple(r) for r in conn.execute("SELECT step, value FROM metrics WHERE run_id = ? AND name = ? "
                                               "ORDER BY step", (run_id, name))]


def test_argparse_script_runs_each_argument_line_records_params_and_curves_and_u_skips(project) -> None:
    plain_project(project)
    result = project.run("-r", "-u")
    assert result.returncode == 0, result.stderr
    runs = {r["version"]: r for r in project.runs()}
    assert set(runs) == {"small", "large"} and all(r["status"] == "succeeded" for r in runs.values())
    small, large = json.loads(runs["small"]["params"]), json.loads(runs["large"]["params"])
    # the argument line parsed, then argparse's whole namespace with its defaults
    assert small == {"lr": 0.1, "layers": 2, "epochs": 3, "dropout": 0.5, "note": "plain"}
    assert large["epochs"] == 5 and large["layers"] == 8
    assert curve(project, runs["large"]["id"]) == [(s, 1.0 / (1.0 + 0.01 * (s + 1))) for s in range(5)]
    assert curve(project, runs["small"]["id"], "acc") == [(None, pytest.approx(0.6))]
    seen = json.loads((project.root / runs["small"]["model_dir"] / "seen.json").read_text())
    assert seen == {"version": "small", "run": str(runs["small"]["id"]), "test": False, "steps": 3}
    assert f"cwd {project.root}" in (project.outputs / "runs" / str(runs["small"]["id"]) / "output.log").read_text()

    again = project.run("-r", "-u")
    assert again.returncode == 0 and len(project.runs()) == 2, again.stderr

    # editing one argument line reruns that version only
    project.write("models.config", CONFIG.replace("--epochs 5", "--epochs 4"))
    third = project.run("-r", "-u")
    assert third.returncode == 0, third.stderr
    assert [r["version"] for r in project.runs()][2:] == ["large"]

    # editing a local module the script imports reruns both
    project.script("helpers.py", HELPERS + "EXTRA = 1\n")
    fourth = project.run("-r", "-u")
    assert sorted(r["version"] for r in project.runs()[3:]) == ["large", "small"], fourth.stderr


def test_test_mode_runs_every_version_once_with_test_mode_true(project) -> None:
    plain_project(project)
    result = project.run()
    assert result.returncode == 0, result.stderr
    runs = project.runs()
    assert [r["version"] for r in runs] == ["small", "large"] and {r["mode"] for r in runs} == {"test"}
    assert all(len(curve(project, r["id"])) == 1 for r in runs)   # the script cut itself to one step
    assert not (project.outputs / "model_ckpts").exists()           # temporary model dirs only


def test_the_same_script_runs_alone_and_logs_nothing(project) -> None:
    plain_project(project)
    out = subprocess.run([sys.executable, "-c", "import runpy, sys, os; os.environ['MLPIPELINE_MODEL_DIR'] = '.';"
                          "os.environ['MLPIPELINE_VERSION'] = 'x'; os.environ['MLPIPELINE_RUN_ID'] = '';"
                          "sys.argv = ['models/train.py', '--lr', '0.1']; sys.path.insert(0, 'models');"
                          "runpy.run_path('models/train.py', run_name='__main__')"],
                         cwd=project.root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("trained x") and "loss" not in out.stdout   # log_metric: nothing outside a runner
    alone = subprocess.run([sys.executable, "models/helpers.py"], cwd=project.root, capture_output=True, text=True)
    assert alone.returncode == 0


def test_a_failing_script_fails_its_version_alone_with_its_last_error_line(project) -> None:
    plain_project(project, CONFIG + "bad = --lr abc\n")
    result = project.run("-r")
    assert result.returncode == 1
    runs = {r["version"]: r for r in project.runs()}
    assert runs["small"]["status"] == runs["large"]["status"] == "succeeded"
    assert runs["bad"]["status"] == "failed"
    assert "models/train.py exited with status 2" in runs["bad"]["error"]
    assert "invalid float value: 'abc'" in runs["bad"]["error"]


def test_a_bad_argument_line_is_named_by_file_and_line(project) -> None:
    plain_project(project, CONFIG + "oops = --msg 'unclosed\n")
    result = project.run("-r")
    assert result.returncode == 2
    assert "models.config:7:" in result.stderr and "close the quote" in result.stderr


def test_a_script_without_a_section_still_needs_model(project) -> None:
    plain_project(project, "[WHITELISTED_MODELS]\ntrain.py\n")
    result = project.run()
    assert result.returncode == 1
    assert "defines no MODEL" in result.stderr and "[train.py]" in result.stderr


COMMAND = """\
from mlpipeline import Command
from mlpipeline.utils import Versions
from mlpipeline.sweeps import asha

versions = Versions()
versions.add_grid("lr{lr}", lr=[0.5, 0.05], common={"epochs": 4})
LRS = [0.9, 0.001, 0.5, 0.002]

def propose(history):
    return {"lr": LRS[len(history)], "epochs": 6} if len(history) < len(LRS) else None

versions.add_search(propose, budget=4, parallel=2, stopper=asha("test/loss", grace=1, reduction=2))
MODEL = Command("slow.py")
"""

SLOW = """\
import argparse, time
from mlpipeline import log_metric
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--epochs", type=int)
args = p.parse_args()
for step in range(1, args.epochs + 1):
    log_metric("loss", 1.0 / (1.0 + args.lr * step), step=step, split="test")
    time.sleep(0.3)
"""


def test_command_runs_a_grid_and_an_asha_search_over_a_plain_script(project) -> None:
    project.script("sweep.py", COMMAND)
    project.script("slow.py", SLOW)
    project.configure(["sweep.py"])
    result = project.run("-r", "-j", "2", timeout=180)
    runs = project.runs()
    statuses = {r["version"]: r["status"] for r in runs}
    assert statuses["lr0.5"] == statuses["lr0.05"] == "succeeded", result.stderr
    grid = {r["version"]: json.loads(r["params"]) for r in runs if r["version"].startswith("lr")}
    assert grid["lr0.5"]["lr"] == 0.5 and grid["lr0.5"]["epochs"] == 4
    assert len(curve(project, next(r["id"] for r in runs if r["version"] == "lr0.05"))) == 4
    points = [r for r in runs if r["version"].startswith("s-")]
    assert len(points) == 4
    assert "pruned" in {r["status"] for r in points}, [(r["version"], r["status"], r["error"]) for r in points]
    assert all("pruned by ASHA" in (r["error"] or "") for r in points if r["status"] == "pruned")


def test_command_passes_a_sweep_over_the_batch_size(project) -> None:
    """``batch_size`` is a version parameter the 2019 ``Versions`` knows; over a plain script it is the
    script's argument like any other (it was dropped, and every version ran with the script's default)."""
    project.script("sweep.py", "from mlpipeline import Command\nfrom mlpipeline.utils import Versions\n"
                               "versions = Versions()\n"
                               "versions.add_grid('bs{batch_size}', batch_size=[16, 32], common={'lr': 0.5})\n"
                               "MODEL = Command('train.py')\n")
    project.script("train.py", "import argparse\nfrom mlpipeline import log_metric\np = argparse.ArgumentParser()\n"
                               "p.add_argument('--lr', type=float)\np.add_argument('--batch_size', type=int, default=8)\n"
                               "a = p.parse_args()\nlog_metric('acc', a.lr * a.batch_size, split='test')\n")
    project.configure(["sweep.py"])
    result = project.run("-r")
    assert result.returncode == 0, result.stderr
    with project.db() as conn:
        got = dict(conn.execute("SELECT r.version, m.value FROM runs r JOIN metrics m ON m.run_id = r.id "
                                "WHERE m.name = 'acc'").fetchall())
    assert got == {"bs16": 8.0, "bs32": 16.0}, got
    # Versions(None, 1, 1), as the 2019 API asked: that shared default is not an argument the script must take
    project.script("sweep.py", "from mlpipeline import Command\nfrom mlpipeline.utils import Versions\n"
                               "versions = Versions(None, 1, 1)\nversions.add_version('plain', lr=0.5)\n"
                               "versions.add_version('bs4', lr=0.5, batch_size=4)\nMODEL = Command('train.py')\n")
    again = project.run("-r")
    assert again.returncode == 0, again.stderr
    with project.db() as conn:
        got = dict(conn.execute("SELECT r.version, m.value FROM runs r JOIN metrics m ON m.run_id = r.id "
                                "WHERE m.name = 'acc' AND r.version IN ('plain', 'bs4')").fetchall())
    assert got == {"plain": 4.0, "bs4": 2.0}, got  # the script's own default (8), then the version's 4


TENSORBOARD = """\
import os
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter(os.environ["MLPIPELINE_MODEL_DIR"])
for step in range(3):
    writer.add_scalar("loss", 1.0 / (step + 1), step)
writer.close()
val = SummaryWriter(os.path.join(os.environ["MLPIPELINE_MODEL_DIR"], "validation"))
val.add_scalar("acc", 0.75, 2)
val.close()
"""


def test_a_tensorboard_only_script_has_its_scalars_in_the_ledger(project) -> None:
    assert importlib.util.find_spec("tensorboard") is not None, "pip install -e '.[integrations]'"
    project.script("tb.py", TENSORBOARD)
    config = "[WHITELISTED_MODELS]\ntb.py\n\n[tb.py]\nonly\n"
    project.write("models.config", config)
    result = project.run("-r")
    assert result.returncode == 0, result.stderr
    run = project.runs()[0]
    assert curve(project, run["id"]) == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    shown = project.run("metrics", str(run["id"]), "acc", "--format", "csv")
    assert "validation" in shown.stdout and "0.75" in shown.stdout, shown.stdout + shown.stderr
    listed = json.loads(project.run("runs", "--format", "json").stdout)[0]["metrics"]  # no result: curves' last
    assert listed == {"train/loss (last)": pytest.approx(1 / 3), "validation/acc (last)": 0.75}, listed
    again = project.run("-r")  # the same model dir, at once: the first run's event files are not this run's
    assert again.returncode == 0, again.stderr
    second = project.runs()[-1]
    assert second["id"] != run["id"] and curve(project, second["id"]) == [(0, 1.0), (1, 0.5),
                                                                          (2, pytest.approx(1 / 3))]


@pytest.mark.parametrize("line, argv, params", [
    ("--lr 0.1 --layers 2", ["--lr", "0.1", "--layers", "2"], {"lr": 0.1, "layers": 2}),
    ("--num-layers=3 --verbose", ["--num-layers=3", "--verbose"], {"num_layers": 3, "verbose": True}),
    ("data.csv --sizes 1 2 3 --lr -0.5", ["data.csv", "--sizes", "1", "2", "3", "--lr", "-0.5"],
     {"args": ["data.csv"], "sizes": [1, 2, 3], "lr": -0.5}),
    ("--name 'two words' --eps 1e-3", ["--name", "two words", "--eps", "1e-3"], {"name": "two words", "eps": 0.001}),
    ("", [], {}),
])
def test_argument_lines_parse_into_params(line, argv, params) -> None:
    assert split_line(line) == argv
    assert params_of(argv) == params


def test_params_become_arguments() -> None:
    assert argv_of({"lr": 0.1, "fast": True, "slow": False, "skip": None, "sizes": [1, 2], "args": ["x.csv"]}) == \
        ["x.csv", "--lr", "0.1", "--fast", "--sizes", "1", "2"]
    assert argv_of({"name": "v", "lr": 1}, skip=("name",)) == ["--lr", "1"]


@pytest.mark.parametrize("source, binds", [
    ("MODEL = 1\n", True),
    ("from x import MODEL\n", True),
    ("from x import *\n", True),
    ("if True:\n    MODEL = make()\n", True),
    ("import argparse\nargs = argparse.ArgumentParser().parse_args()\n", False),
    ("print(MODEL)\n", False),
])
def test_which_scripts_bind_model(source, binds) -> None:
    assert binds_model(parse_source("x.py", source.encode())) is binds


def test_init_plain_makes_a_project_whose_plain_script_passes_test_mode_and_trains(tmp_path) -> None:
    target = tmp_path / "fresh"
    made = subprocess.run([sys.executable, "-m", "mlpipeline", "init", "--plain", str(target)], capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (target / "models" / "train.py").exists() and "[train.py]" in (target / "models.config").read_text()
    test = subprocess.run([sys.executable, "-m", "mlpipeline"], cwd=target, capture_output=True, text=True,
                          timeout=120)
    assert test.returncode == 0 and "2 succeeded" in test.stderr + test.stdout, test.stderr
    trained = subprocess.run([sys.executable, "-m", "mlpipeline", "-r", "-u"], cwd=target, capture_output=True,
                             text=True, timeout=120)
    assert trained.returncode == 0, trained.stderr
    assert (target / "models" / "outputs" / "model_ckpts" / "train-small" / "weights.json").exists()
    alone = subprocess.run([sys.executable, "models/train.py", "--lr", "0.1", "--epochs", "2"], cwd=target,
                           capture_output=True, text=True, timeout=60)
    assert alone.returncode == 0 and alone.stdout.startswith("w="), alone.stderr


LEAKY = """\
import os, subprocess, time
kid = subprocess.Popen(["sleep", "300"], start_new_session=True)   # leaves the version's process group
with open(os.path.join(os.environ["MLPIPELINE_MODEL_DIR"], "kid"), "w") as handle:
    handle.write("%d %s" % (kid.pid, os.environ["MLPIPELINE_VERSION"]))
for _ in range(200):  # (read mid-exec, /proc/PID/environ can be empty for a moment)
    with open("/proc/%d/environ" % kid.pid, "rb") as source:
        seen = source.read()
    if b"MLPIPELINE_VERSION=" in seen:
        break
    time.sleep(0.01)
with open(os.path.join(os.environ["MLPIPELINE_MODEL_DIR"], "kid-env"), "wb") as handle:
    handle.write(seen)
time.sleep(60)
"""


def test_what_a_plain_script_starts_ends_with_its_version(project) -> None:
    """MLPIPELINE_VERSION is the version's name for the script, and the processes it starts still carry the
    runner's own markers: a version that times out takes its setsid'd helper with it."""
    project.script("leaky.py", LEAKY)
    project.write("models.config", "[MLP]\ntimeout = 3\n\n[WHITELISTED_MODELS]\nleaky.py\n\n[leaky.py]\nslow\n")
    result = project.run("-r", timeout=120)
    run = project.runs()[0]
    assert run["status"] == "timeout", result.stderr
    pid, name = (project.root / run["model_dir"] / "kid").read_text().split()
    assert name == "slow"
    # the helper carries the version's own mark too (a later runner or a retry ends it by that mark)
    env = dict(item.split("=", 1) for item in (project.root / run["model_dir"] / "kid-env").read_text().split("\0")
               if "=" in item)
    assert env["MLPIPELINE_VERSION"] == "slow" and env[MARK_VERSION] != "slow" and len(env[MARK_VERSION]) == 16
    wait_for(lambda: not pid_alive(int(pid)), timeout=10, what="the helper the timed-out version started")


EXITS = """\
import argparse, os, sys
import multiprocessing as mp
from mlpipeline import log_metric

def square(x):
    return x * x

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--status", type=int, default=0)
    parser.add_argument("--pool", default="")
    args = parser.parse_args()
    if args.pool:   # the workers a pool forks (or spawns) leave through the real os._exit
        pool = mp.get_context(args.pool).Pool(2)
        log_metric("total", float(sum(pool.map(square, range(10)))), step=0)
        pool.close()  # (not terminate(), which `with Pool` calls: its hand-over with idle workers can hang
        pool.join()   # CPython on a loaded machine; closing lets each worker end through os._exit all the same)
    sys.stdout.flush()
    os._exit(args.status)   # as some frameworks end a script
"""


@pytest.mark.parametrize("mode", [(), ("-r",)])
def test_os_exit_ends_the_script_not_the_runner(project, mode) -> None:
    project.script("ex.py", EXITS)
    config = ("[WHITELISTED_MODELS]\nex.py\n\n[ex.py]\nok = --status 0\nforked = --pool fork\n"
              "spawned = --pool spawn\nbad = --status 3\n")
    project.write("models.config", config)
    project.write("models_test.config", config)
    result = project.run(*mode, timeout=180)
    statuses = {r["version"]: r["status"] for r in project.runs()}
    assert statuses == {"ok": "succeeded", "forked": "succeeded", "spawned": "succeeded", "bad": "failed"}, \
        result.stderr
    assert "models/ex.py exited with status 3" in result.stderr     # (test mode: the runner lived to say it)
    with project.db() as conn:
        totals = [r[0] for r in conn.execute("SELECT value FROM metrics WHERE name = 'total'")]
    assert totals == [285.0, 285.0]


def _readme_block(first_line: str) -> str:
    """The README's code block that starts with ``first_line``."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = text.index(first_line)
    return text[start:text.index("```", start)]


def test_the_readmes_plain_script_and_its_sweep_run_as_written(project) -> None:
    project.script("train.py", _readme_block("# models/train.py"))
    project.script("sweep.py", _readme_block("# models/sweep.py"))
    config = ("[WHITELISTED_MODELS]\ntrain.py\nsweep.py\n\n[train.py]\nsmall = --lr 0.1 --layers 2\n"
              "large = --lr 0.01 --layers 8 --epochs 20\n")
    project.write("models.config", config)
    project.write("models_test.config", config)
    test = project.run(timeout=180)
    assert test.returncode == 0, test.stderr
    result = project.run("-r", "-u", "-j", "2", timeout=300)
    assert result.returncode == 0, result.stderr
    runs = [r for r in project.runs() if r["mode"] == "run"]
    by_script = {}
    for run in runs:
        by_script.setdefault(run["script"], []).append(run)
    assert {r["version"] for r in by_script["models/train.py"]} == {"small", "large"}
    sweep = by_script["models/sweep.py"]
    assert {r["version"] for r in sweep if r["version"].startswith("lr")} == {"lr0.1", "lr0.01", "lr0.001"}
    points = [r for r in sweep if r["version"].startswith("s-")]
    assert len(points) == 12 and {r["status"] for r in points} <= {"succeeded", "pruned"}
    assert any(r["status"] == "pruned" for r in points)
    again = project.run("-r", "-u", timeout=120)
    assert again.returncode == 0 and len([r for r in project.runs() if r["mode"] == "run"]) == len(runs)


WRITES = """\
import os, sys
with open(os.path.join(os.environ["MLPIPELINE_MODEL_DIR"], "who"), "w") as handle:
    handle.write(os.path.abspath(__file__) + " " + " ".join(sys.argv[1:]))
"""


def test_two_scripts_of_one_name_keep_their_own_sections_and_never_share_a_model_dir(project) -> None:
    """models/b.py and models/sub/b.py: ``[sub/b.py]`` is the sub-folder's (it was ignored, and the script
    ran [b.py]'s line), and the second script to reach model_ckpts/b-v fails alone instead of training in the
    first one's checkpoints; a section that names no script is said once."""
    project.script("b.py", WRITES)
    (project.models / "sub").mkdir()
    (project.models / "sub" / "b.py").write_text(WRITES)
    config = ("[MLP]\nuse_blacklist = False\n\n[WHITELISTED_MODELS]\nb.py\nsub/b.py\n\n[b.py]\nv = --x 2\n\n"
              "[sub/b.py]\nv = --x 3\nw = --x 4\n\n[trian.py]\nv = --x 5\n")
    project.write("models.config", config)
    project.write("models_test.config", config)
    result = project.run("-r")
    assert result.returncode == 1, result.stderr
    got = {(r["script"], r["version"]): (r["status"], r["error"]) for r in project.runs()}
    assert got[("models/b.py", "v")][0] == "succeeded" and got[("models/sub/b.py", "w")][0] == "succeeded", got
    status, error = got[("models/sub/b.py", "v")]
    assert status == "failed" and "model_ckpts/b-v is models/b.py's too" in error, got
    who = (project.outputs / "model_ckpts" / "b-v" / "who").read_text()
    assert who.endswith("models/b.py --x 2"), who  # the first script's, untouched
    sub = (project.outputs / "model_ckpts" / "b-w" / "who").read_text()
    assert sub.endswith("models/sub/b.py --x 4"), sub  # the sub-folder's own line
    assert result.stderr.count("[trian.py] names no script") == 1, result.stderr
    (project.models / "b.py").unlink()  # moved away: the dir is the other one's to go on from
    project.write("models.config", config.replace("b.py\nsub/b.py\n", "sub/b.py\n", 1))
    again = project.run("-r", "-u")
    assert again.returncode == 0, again.stderr
    assert project.runs()[-1]["script"] == "models/sub/b.py" and project.runs()[-1]["status"] == "succeeded"
    assert (project.outputs / "model_ckpts" / "b-v" / "who").read_text().endswith("models/sub/b.py --x 3")


def test_an_indented_version_line_is_an_error_not_more_arguments(tmp_path) -> None:
    from mlpipeline.core.errors import ConfigError
    from mlpipeline.plan.config import read_queue_config

    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\ne.py\n\n[e.py]\n    small = --lr 0.1\n    large = --lr 0.01 --layers 8\n"
                    "    --epochs 3\n")
    with pytest.raises(ConfigError, match=r"models.config:6: 'large = .*' is indented.*version 'small'"):
        read_queue_config(str(path))
    path.write_text("[WHITELISTED_MODELS]\ne.py\n\n[e.py]\nquoted = --msg \"run #1\" --x 2  # a comment\n")
    assert [e.value for e in read_queue_config(str(path)).arguments["e.py"]] == ['--msg "run #1" --x 2']
    path.write_text("[WHITELISTED_MODELS]\ne.py\n\n[e.py]\nsmall = --lr 0.1\n    --epochs 3\n")  # a continuation
    assert [(e.key, e.value) for e in read_queue_config(str(path)).arguments["e.py"]] == [("small",
                                                                                          "--lr 0.1\n--epochs 3")]


def test_test_mode_gives_each_version_what_a_fresh_python_would(project) -> None:
    """Test mode runs plain scripts one after another in one process: the second must not get the first's
    ``helper`` module (another folder's), nor its warnings filter that makes a warning an error."""
    (project.models / "sub").mkdir()
    project.script("helper.py", "NAME = 'top'\n")
    (project.models / "sub" / "helper.py").write_text("NAME = 'sub'\n")
    project.script("a.py", "import helper, warnings\nassert helper.NAME == 'top'\nwarnings.simplefilter('error')\n")
    (project.models / "sub" / "b.py").write_text("import helper, warnings\nassert helper.NAME == 'sub', helper.NAME\n"
                                                 "warnings.warn('harmless', DeprecationWarning)\n")
    config = "[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\na.py\nsub/b.py\n[a.py]\nv\n[sub/b.py]\nw\n"
    project.write("models.config", config)
    project.write("models_test.config", config)
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert [(r["version"], r["status"]) for r in project.runs()] == [("v", "succeeded"), ("w", "succeeded")]


def test_a_line_broken_mid_batch_and_never_fixed_ends_the_batch_with_exit_1(project) -> None:
    project.script("w.py", "import os, sys, time\nif '--wait' in sys.argv:\n"
                           "    open('started', 'w').close()\n"
                           "    while not os.path.exists('go'):\n        time.sleep(0.05)\n")
    config = "[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\nw.py\n[w.py]\nfirst = --wait\nlast = --n 3\n"
    project.write("models.config", config)
    runner = project.start("-r")
    try:
        wait_for(lambda: (project.root / "started").exists(), proc=runner, what="the first version")
        project.write("models.config", config.replace("--n 3", '--n "3'))  # an unclosed quote, saved
        time.sleep(1.5)  # the runner reads the config again between versions, once it has settled
    finally:
        (project.root / "go").touch()
        out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, err
    assert [r["version"] for r in project.runs()] == ["first"]
    assert "not run: models.config:7" in err and "(that entry was left out)" in err, err


FORKS = """\
import multiprocessing
from mlpipeline import log_metric

def work(i):
    log_metric("worker", 1.0, step=i)

if __name__ == "__main__":
    log_metric("main", 1.0, step=0)
    workers = [multiprocessing.get_context("fork").Process(target=work, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    log_metric("main", 2.0, step=1)
"""


@pytest.mark.parametrize("mode", [("-r",), ()], ids=["child", "test-mode"])
def test_points_from_a_forked_worker_are_said_not_recorded(project, mode) -> None:
    """A multiprocessing worker the version forks has no way to the runner (and in test mode must not touch
    the runner's ledger): its points are not recorded, and it says so once, instead of dropping them quietly."""
    project.script("mt.py", FORKS)
    config = "[WHITELISTED_MODELS]\nmt.py\n[mt.py]\nv\n"
    project.write("models.config", config)
    project.write("models_test.config", config)
    result = project.run(*mode)
    assert result.returncode == 0, result.stderr
    (run,) = project.runs()
    assert run["status"] == "succeeded" and curve(project, run["id"], "main") == [(0, 1.0), (1, 2.0)]
    assert curve(project, run["id"], "worker") == []
    said = project.run("logs", str(run["id"])).stdout if mode else result.stdout + result.stderr
    assert said.count("log_metric in a process the version started is not recorded") == 2, said


def test_a_plain_scripts_own_exit_status_is_the_runs_and_its_log_ends_as_pythons_would(project) -> None:
    project.script("x.py", "import os, sys\nif '--hard' in sys.argv:\n    os._exit(4)\n"
                           "if '--why' in sys.argv:\n    sys.exit('bad config value')\n"
                           "if '--raise' in sys.argv:\n    raise ValueError('boom')\nsys.exit(int(sys.argv[2]))\n")
    config = ("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\nx.py\n[x.py]\nthree = --code 3\nhard = --hard\n"
              "why = --why\nraises = --raise\n")
    project.write("models.config", config)
    result = project.run("-r")
    assert result.returncode == 1, result.stderr
    runs = {r["version"]: r for r in project.runs()}
    assert {v: (r["status"], r["exit_code"]) for v, r in runs.items()} == {
        "three": ("failed", 3), "hard": ("failed", 4), "why": ("failed", 1), "raises": ("failed", 1)}, runs
    assert runs["why"]["error"] == "models/x.py exited with status 1: bad config value"
    why = project.run("logs", str(runs["why"]["id"])).stdout
    assert why.splitlines()[-1] == "bad config value", why  # what python prints of sys.exit("...")
    raised = project.run("logs", str(runs["raises"]["id"])).stdout
    assert raised.splitlines()[-1] == "ValueError: boom" and "Traceback (most recent call last)" in raised, raised
    assert "mlpipeline/script" not in raised, raised  # the script's frames only


SIGNALS = """\
import multiprocessing, signal

def report(path):
    with open(path, "w") as handle:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            handler = signal.getsignal(signum)
            handle.write("%s %s\\n" % (signum.name, getattr(handler, "__module__", handler)))

if __name__ == "__main__":
    worker = multiprocessing.get_context("fork").Process(target=report, args=("worker-signals",))
    worker.start()
    worker.join()
"""


def test_a_worker_forked_in_test_mode_has_pythons_signal_handlers_not_the_runners(project) -> None:
    project.script("sig.py", SIGNALS)
    config = "[WHITELISTED_MODELS]\nsig.py\n[sig.py]\nv\n"
    project.write("models_test.config", config)
    result = project.run()
    assert result.returncode == 0, result.stderr
    seen = (project.root / "worker-signals").read_text()
    assert seen.count("\n") == 3 and "mlpipeline" not in seen, seen  # (the runner's were mlpipeline.commands')


def test_status_says_a_broken_argument_line_is_a_config_error(project) -> None:
    """`-r -u` stops at such a line before it starts: the preview must not say it would run nothing."""
    project.script("w.py", "print('hi')\n")
    project.write("models.config", "[WHITELISTED_MODELS]\nw.py\n[w.py]\nv = --n \"1\n")
    status = project.run("status")
    assert status.returncode == 0 and "config error: models.config:4:" in status.stdout, status.stdout
    assert project.run("-r", "-u").returncode == 2
