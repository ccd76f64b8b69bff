"""What each run used, sampled from outside (``execution.sampler``): real children's CPU and RSS curves
in the ``sys`` split, GPU memory by pid through a fake NVML (the one thing these machines cannot run),
``show``'s peaks, and versions that ran out of memory recorded with reason ``oom``."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import FIXTURES
from mlpipeline.core.lifecycle import OOM, SYSTEM_SPLIT, Outcome, RunStatus
from mlpipeline.execution.sampler import Sampler, Seen, kernel_oom_killed, oom_outcome
from mlpipeline.proc.outcome import failure

FAKE_NVML = FIXTURES / "fake_nvml"


def _script(bodies: dict) -> str:
    """A model script with one version per entry of ``bodies``: its name and what ``train_model`` runs
    (``os``, ``sys``, ``time``, ``json`` at hand)."""
    branches = "\n".join(f"        {'if' if i == 0 else 'elif'} name == {name!r}:\n"
                         + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 12)
                         for i, (name, body) in enumerate(bodies.items()))
    adds = "\n".join(f"versions.add_version({name!r})" for name in bodies)
    return textwrap.dedent('''\
        import json, os, sys, time
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions

        class Loader(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1

        class M(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode="test"):
                self.version = version

            def evaluate_model(self, input_fn, steps):
                return {"acc": 0.5}

            def train_model(self, input_fn, steps):
                name = self.version["name"]
        ''') + branches + f"\n\nversions = Versions(Loader(), batch_size=1, epoc_count=1)\n{adds}\nMODEL = M(versions)\n"


def _points(project, run_id: int, name: str) -> list:
    with project.db() as conn:
        return [tuple(r) for r in conn.execute("SELECT step, value FROM metrics WHERE run_id = ? AND split = ? AND "
                                               "name = ? ORDER BY rowid", (run_id, SYSTEM_SPLIT, name))]


def test_a_real_versions_cpu_and_rss_curves_are_recorded_and_show_prints_their_peaks(project):
    project.script("alloc.py", _script({"big": """
        time.sleep(1.5)                    # the interpreter alone: the baseline samples
        block = bytearray(200 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1                   # resident, every page
        began, used = time.time(), time.process_time()
        while time.time() - began < 1.5:   # CPU-bound for a while
            sum(i * i for i in range(10000))
        with open("cpu_share", "w") as handle:  # the share of a core it got: a loaded machine gives less
            handle.write(str(100 * (time.process_time() - used) / (time.time() - began)))
        time.sleep(1.5)
        """}))
    project.configure(["alloc.py"])
    result = project.run("-r", "--sample-interval", "0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    run = project.runs()[0]
    assert run["status"] == "succeeded" and run["reason"] is None

    rss = _points(project, run["id"], "rss_mb")
    cpu = _points(project, run["id"], "cpu_percent")
    assert len(rss) >= 6 and len(cpu) == len(rss), (rss, cpu)
    steps = [step for step, _ in rss]
    assert steps == sorted(steps) and steps[0] <= 1 and steps[-1] >= 3  # whole seconds since the version started
    baseline, peak = rss[0][1], max(value for _, value in rss)  # the first sample: before the allocation
    assert baseline <= min(value for _, value in rss) + 2 and 5 < baseline < 400, rss
    assert abs((peak - baseline) - 200) <= 20, (baseline, peak, rss)  # the allocation, within 10 %
    share = float((project.root / "cpu_share").read_text())
    assert max(value for _, value in cpu) >= min(50, 0.6 * share), (share, cpu)  # the busy second and a half
    assert min(value for _, value in cpu) < 30, cpu   # the sleeps

    shown = project.run("show", str(run["id"]))
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("system: "))
    assert line.startswith("system: cpu ") and f"RSS {peak:.0f} MiB peak" in line, line
    assert "GPU" not in line  # no NVML here: no GPU curves
    record = json.loads(project.run("show", str(run["id"]), "--format", "json").stdout)
    assert record["system_peaks"]["rss_mb"] == peak and record["reason"] is None
    assert json.loads(project.run("runs", "--format", "json").stdout)[0]["reason"] is None


def test_gpu_memory_is_summed_by_pid_from_nvml_and_utilisation_is_the_given_gpus(project, tmp_path):
    state = tmp_path / "nvml.json"
    state.write_text(json.dumps({"gpus": [{"uuid": "GPU-a", "total": 16 << 30, "util": 87, "processes": []}]}))
    project.script("gpu.py", _script({"cuda": """
        path = os.environ["MLP_FAKE_NVML"]
        with open(path) as handle:
            nvml = json.load(handle)
        # this process holds 1.5 GiB on the GPU; someone else's (pid 1) 256 MiB, never counted as ours
        nvml["gpus"][0]["processes"] = [[os.getpid(), 1536 << 20], [1, 256 << 20]]
        with open(path + ".new", "w") as handle:
            json.dump(nvml, handle)
        os.replace(path + ".new", path)
        time.sleep(2.5)
        """}))
    project.configure(["gpu.py"])
    paths = os.pathsep.join(p for p in (str(FAKE_NVML), os.environ.get("PYTHONPATH")) if p)
    result = project.run("-r", "--sample-interval", "0.5", env={"PYTHONPATH": paths, "MLP_FAKE_NVML": str(state)})
    assert result.returncode == 0, result.stderr[-3000:]
    run = project.runs()[0]
    memory = _points(project, run["id"], "gpu_memory_mb")
    assert memory and max(value for _, value in memory) == 1536.0, memory
    util = _points(project, run["id"], "gpu_util")
    if run["gpu"] is not None:  # the GPU it was given (where placement hands out the fake's GPUs)
        assert util and {value for _, value in util} == {87.0}, util
    shown = project.run("show", str(run["id"])).stdout
    assert "GPU memory 1.5 GiB peak" in shown, shown


def test_nvml_that_fails_gives_no_gpu_values_and_one_warning(tmp_path, monkeypatch, caplog):
    state = tmp_path / "nvml.json"
    state.write_text(json.dumps({"fail": "Driver Not Loaded"}))
    monkeypatch.syspath_prepend(str(FAKE_NVML))
    monkeypatch.setenv("MLP_FAKE_NVML", str(state))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = Sampler()
        with caplog.at_level(logging.WARNING, logger="mlpipeline.execution.sampler"):
            first = sampler.sample({"v": (child.pid, [0])})
            time.sleep(0.2)
            second = sampler.sample({"v": (child.pid, [0])})
        assert [r.name for r in first["v"]] == [r.name for r in second["v"]] == ["cpu_percent", "rss_mb"]
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "NVML failed" in warnings[0] and "Driver Not Loaded" in warnings[0], warnings
    finally:
        child.kill()
        child.wait()
    assert sampler.sample({"v": (child.pid, [])}) == {}  # a process gone: skipped, no error


def test_a_process_tree_is_sampled_whole():
    code = ("import subprocess, sys, time\n"
            "kid = subprocess.Popen([sys.executable, '-c', 'b = bytearray(64 << 20)\\n"
            "for i in range(0, len(b), 4096): b[i] = 1\\nimport time; time.sleep(30)'])\n"
            "time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", code])
    seen = None
    try:
        sampler = Sampler()
        deadline = time.time() + 10
        while True:  # until the grandchild has its 64 MiB
            rows = {r.name: r.value for r in sampler.sample({1: (parent.pid, [])}).get(1, [])}
            seen = sampler.seen(1)
            if seen is not None and len(seen.pids) == 2 and rows["rss_mb"] > 64 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert seen is not None and len(seen.pids) == 2 and rows["rss_mb"] > 64, (rows, seen)
        assert sampler.forget(1) is seen and sampler.seen(1) is None
    finally:
        for pid in (seen.pids[::-1] if seen else (parent.pid,)):  # the grandchild first
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.wait()


def test_versions_out_of_memory_are_recorded_with_reason_oom(project):
    project.script("oom.py", _script({
        "huge": """
            bytearray(1 << 50)             # a MemoryError, whatever the limit
            """,
        "over": """
            chunks = []
            for i in range(20):            # 1 GB, 50 MiB at a time, under --memory-limit 300M
                chunk = bytearray(50 << 20)
                for j in range(0, len(chunk), 4096):
                    chunk[j] = 1
                chunks.append(chunk)
                time.sleep(0.3)
            """,
        "cuda": """
            class OutOfMemoryError(RuntimeError):  # as torch.cuda names it
                pass
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 15.78 GiB total capacity)")
            """,
        "plain": """
            raise ValueError("not a memory problem")
            """}))
    project.configure(["oom.py"])
    result = project.run("-r", "--memory-limit", "300M", "--sample-interval", "0.25")
    assert result.returncode == 1, result.stderr[-3000:]
    runs = {r["version"]: r for r in project.runs()}
    assert {v: (r["status"], r["reason"]) for v, r in runs.items()} == {
        "huge": ("failed", "oom"), "over": ("failed", "oom"), "cuda": ("failed", "oom"), "plain": ("failed", None)}
    assert "ran out of memory (host memory: MemoryError" in runs["huge"]["error"]
    over = runs["over"]["error"]
    assert "ran out of memory (host memory: MemoryError; its --memory-limit is 300 MiB)" in over, over
    assert "; peak RSS " in over and over.endswith(" MiB as sampled") and "\n" not in over, over
    cuda = runs["cuda"]["error"]
    assert cuda.startswith("the version ran out of memory (GPU memory: OutOfMemoryError: CUDA out of memory."), cuda
    listed = {r["version"]: r for r in json.loads(project.run("runs", "--format", "json").stdout)}
    assert listed["over"]["reason"] == "oom" and listed["plain"]["reason"] is None
    shown = project.run("show", str(runs["over"]["id"])).stdout
    assert "reason" in shown and "oom" in shown


def test_framework_out_of_memory_errors_are_named_and_others_are_not():
    class ResourceExhaustedError(Exception):  # TensorFlow's
        pass

    tf = failure(ResourceExhaustedError("OOM when allocating tensor with shape[8192,8192] on /job:localhost/GPU:0"))
    assert tf.reason == OOM and tf.error.startswith("the version ran out of memory (GPU memory: ResourceExhaustedError")
    plain = failure(RuntimeError("CUDA error: out of memory"))
    assert plain.reason == OOM and "GPU memory" in plain.error
    for other in (ValueError("bad shape"), RuntimeError("memory is fine"), KeyError("out")):
        assert failure(other).reason is None


def test_a_sigkill_at_the_memory_limit_is_out_of_memory_and_one_the_runner_sent_is_not():
    killed = Outcome(RunStatus.FAILED, signal=signal.SIGKILL, error="the version's process was killed by SIGKILL")
    near = Seen(started=time.time() - 5, sampled_at=time.time(), peak_rss_mb=290.0, last_rss_mb=285.0, pids=(1,))
    named = oom_outcome(killed, near, 300 << 20, 1, ended_by_runner=False)
    assert named.reason == OOM and named.status == RunStatus.FAILED, named
    assert named.error == ("the version ran out of memory (host memory: killed by SIGKILL with its RSS at 285 MiB, 95 % "
                           "of its --memory-limit of 300 MiB); peak RSS 290 MiB as sampled"), named.error
    assert oom_outcome(killed, near, 300 << 20, 1, ended_by_runner=True).reason is None  # a cancel, a timeout
    far = Seen(started=time.time() - 5, sampled_at=time.time(), peak_rss_mb=50.0, last_rss_mb=50.0, pids=(2 ** 22 + 1,))
    assert oom_outcome(killed, far, 300 << 20, 2 ** 22 + 1, ended_by_runner=False).reason is None
    assert not kernel_oom_killed([2 ** 22 + 1])  # no OOM record of a pid that cannot exist (or no log to read)


def test_sampling_off_records_no_sys_curves_and_a_bad_interval_is_refused(project):
    project.script("quick.py", _script({"v": "time.sleep(1.2)"}))
    project.configure(["quick.py"])
    refused = project.run("-r", "--sample-interval", "-1")
    assert refused.returncode == 2 and "--sample-interval -1: give 0 (off) or a positive number" in refused.stderr
    assert project.run("-r", "--sample-interval", "0").returncode == 0
    run = project.runs()[-1]
    assert run["status"] == "succeeded" and _points(project, run["id"], "rss_mb") == []
    assert "system:" not in project.run("show", str(run["id"])).stdout
    code = ("import sys\nfrom mlpipeline.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', [m for m in ('psutil', 'pynvml') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--sample-interval SECONDS" in out and "IMPORTED []" in out


def test_sampled_curves_never_make_a_search_decision(project):
    """An ASHA stopper on a metric spelled like a sampled curve: the sampler's points never reach it (were
    they to, the second point, with the larger RSS at the first rung, would be pruned)."""
    project.script("search.py", textwrap.dedent('''\
        import time
        from mlpipeline.helper import DataLoader, Model
        from mlpipeline.utils import Versions
        from mlpipeline.sweeps import asha

        class Loader(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 1
            def get_test_sample_count(self): return 1

        class M(Model):
            def pre_execution_hook(self, version, model_dir, exec_mode="test"):
                self.mib = version["mib"]
            def train_model(self, input_fn, steps):
                block = bytearray(self.mib << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(1.6)
            def evaluate_model(self, input_fn, steps):
                return {"loss": 1.0}

        def propose(history):
            return {"mib": [10, 150][len(history) + len(history.running)]}

        versions = Versions(Loader(), 1, 1)
        versions.add_search(propose, budget=2, stopper=asha("sys/rss_mb", grace=1, reduction=2))
        MODEL = M(versions)
        '''))
    project.configure(["search.py"])
    result = project.run("-r", "-n", "--sample-interval", "0.25")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = project.runs()
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"], [(r["status"], r["error"]) for r in runs]
    assert all(len(_points(project, r["id"], "rss_mb")) >= 4 for r in runs)  # they were sampled all the same


MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")  # cgroup v1's memory controller, where this user may make one


def test_a_version_the_kernels_oom_killer_ends_is_recorded_with_reason_oom(project):
    """A real OOM kill: the version moves itself into a memory cgroup of 100 MiB and touches 400 MiB."""
    group = MEMORY_CGROUPS / f"mlp-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(100 << 20))
    except OSError as exc:
        pytest.skip(f"no memory cgroup can be made here ({exc}): the kernel's OOM killer cannot be asked to act")
    try:
        project.script("killed.py", _script({"v": f"""
            with open({str(group / "cgroup.procs")!r}, "w") as handle:
                handle.write(str(os.getpid()))
            time.sleep(0.6)
            block = bytearray(400 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            """}))
        project.configure(["killed.py"])
        result = project.run("-r", "--sample-interval", "0.25")
    finally:
        group.rmdir()
    assert result.returncode == 1, result.stderr[-3000:]
    run = project.runs()[0]
    assert (run["status"], run["signal"], run["reason"]) == ("failed", signal.SIGKILL, "oom"), run["error"]
    assert run["error"].startswith("the version ran out of memory (host memory: the kernel's OOM killer ended it"), \
        run["error"]
