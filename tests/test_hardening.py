"""Regressions from a first-day user review: each of these once misled or lost work."""
from __future__ import annotations

import hashlib

from helpers import tracer, wait_for
from test_daemon import started


def test_a_live_test_session_is_left_alone_by_status_and_runners(project):
    project.script("a.py", tracer({"waits": {"action": "wait"}}))
    project.script("b.py", tracer({"other": {}}))
    project.write("models_test.config", "[WHITELISTED_MODELS]\na.py\n")
    project.write("models.config", "[WHITELISTED_MODELS]\nb.py\n")
    session = project.start("--isolate")
    wait_for(lambda: started(project, "waits"), proc=session)
    assert project.run("status").returncode == 0
    assert project.runs(version="waits")[0]["status"] == "running"
    batch = project.run("-r")
    assert batch.returncode == 0, batch.stderr
    assert "interrupted" not in batch.stderr
    (project.root / "go").touch()
    out, err = session.communicate(timeout=60)
    assert session.returncode == 0, err
    assert project.runs(version="waits")[0]["status"] == "succeeded"


def test_sys_exit_in_a_hook_fails_the_version_in_test_mode(project):
    project.script("a.py", """\
        import sys
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions
        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1
        class M(Model):
            def train_model(self, input_fn, steps): sys.exit(0)
            def evaluate_model(self, input_fn, steps): return 1.0
        v = Versions(L(), 1, 1)
        v.add_version("quits")
        v.add_version("never")
        MODEL = M(v)
        """)
    project.configure(["a.py"])
    result = project.run()
    assert result.returncode == 1
    assert "the version called sys.exit(0) before finishing" in result.stderr
    assert [(r["version"], r["status"]) for r in project.runs()] == [("quits", "failed")]


def test_more_jobs_than_gpus_run_a_gpu_each_and_the_rest_wait(project):
    """-j 3 --gpus 0,1 where NVML cannot be asked: one warning, then a whole GPU a version; the third waits and
    status says for what."""
    project.script("a.py", tracer({"v1": {"action": "wait"}, "v2": {"action": "wait"}, "v3": {}}))
    project.configure(["a.py"])
    runner = project.start("-r", "-j", "3", "--gpus", "0,1")
    try:
        wait_for(lambda: (project.root / "started-v1").exists() and (project.root / "started-v2").exists(),
                 timeout=60, proc=runner, what="two versions on the two GPUs")
        status = wait_for(lambda: (lambda out: out if "waits for 1 GPU" in out else None)(project.run("status").stdout),
                          timeout=20, proc=runner, what="status to say v3 waits for a GPU")
        assert "GPU 0 is in use by this runner's versions" in status, status
        assert not (project.root / "env-v3").exists()
        (project.root / "go").touch()
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    seen = {v: (project.root / f"env-{v}").read_text() for v in ("v1", "v2", "v3")}
    assert sorted([seen["v1"], seen["v2"]]) == ["0", "1"] and seen["v3"] in ("0", "1"), seen
    assert err.count("GPUs: ") == 1, err  # NVML cannot be asked here: said once


def test_the_model_dir_keeps_the_script_that_ran(project):
    path = project.script("a.py", tracer({"waits": {"action": "wait"}}))
    original = path.read_bytes()
    project.configure(["a.py"])
    runner = project.start("-r")
    wait_for(lambda: started(project, "waits"), proc=runner)
    path.write_text(path.read_text() + "\n# edited while the version ran\n")
    (project.root / "go").touch()
    runner.communicate(timeout=60)
    run = project.runs()[0]
    kept = (project.outputs / "model_ckpts" / "a-waits" / "a.py").read_bytes()
    assert kept == original and hashlib.sha256(kept).hexdigest() == run["script_sha256"]


def test_names_that_would_leave_model_ckpts_are_refused(project):
    project.script("escape.py", tracer({"../../../up": {}}))
    project.script("suffix.py", tracer({"ok": {"model_dir_suffix": "-x/../../../.."}}))
    project.configure(["escape.py", "suffix.py"])
    result = project.run("-r")
    assert result.returncode == 1
    errors = {r["script"]: r["error"] for r in project.runs()}
    assert "cannot contain '/'" in errors["models/escape.py"]
    assert "model_dir_suffix '-x/../../../..' must be text without '/'" in errors["models/suffix.py"]
    assert sorted(p.name for p in project.root.iterdir()) == ["mlp.config", "models", "models.config",
                                                              "models_test.config"]


def test_queries_do_not_create_a_ledger_and_outputs_must_be_a_folder(project):
    assert project.run("runs").returncode == 0
    assert project.run("status").returncode == 0
    shown = project.run("show", "1")
    assert shown.returncode == 2 and "no runs recorded yet" in shown.stderr
    assert not project.outputs.exists()
    project.outputs.write_text("not a folder")
    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    result = project.run("-r")
    assert result.returncode == 2
    assert "models/outputs: exists but is not a folder" in result.stderr and "internal error" not in result.stderr
