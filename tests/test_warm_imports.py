"""Versions pay their script's imports once (issue 19): a describe records the installed packages a
script imports, and a warm parent that has imported them forks that script's versions; a parent
whose imports started a thread is not used; numpy's global state is fresh in each version; a
changed package starts a fresh parent; describe children are forked too. Real processes, a real
package in a folder named site-packages on PYTHONPATH."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from helpers import tag_of, wait_for
from mlpipeline.core.lifecycle import Job, RunStatus, VersionSpec
from mlpipeline.execution.local import LocalExecutor
from mlpipeline.script.describing import describe_entry
from mlpipeline.utils import ExecutionModeKeys
from test_forkserver import SCRIPT, Sink, finish, seen

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux's")

PACKAGE = '''\
import os
PID = os.getpid()  # the process that imported it
VALUE = __VALUE__
__THREAD__
'''
THREAD = "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()"




def make_package(root: Path, value: int = 1, thread: bool = False, extra: str = "") -> Path:
    """``warmpkg``, in a folder named site-packages (an installed package, as the describe sees it)."""
    package = root / "lib" / "site-packages" / "warmpkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(PACKAGE.replace("__VALUE__", str(value))
                                         .replace("__THREAD__", THREAD if thread else "") + extra)
    return package.parent


def write_script(root: Path, names: Tuple[str, ...], top: str = "import warmpkg") -> Path:
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    (root / "mlp.config").write_text("[MLP]\nmodels_dir = models\n")
    for config in ("models.config", "models_test.config"):
        (root / config).write_text("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\nm.py\n")
    (models / "local_helper.py").write_text("VALUE = 1\n")
    text = SCRIPT.replace("import json, os, random, subprocess, sys, time\nFIRST_MODULES = sorted(sys.modules)\n",
                          "import json, os, random, subprocess, sys, time\nFIRST_MODULES = sorted(sys.modules)\n"
                          f"{top}\n")
    text = text.replace('"argv": sys.argv[1:2]}', '"argv": sys.argv[1:2], "extra": EXTRA()}')
    text = text.replace("class L(DataLoader):", textwrap.dedent('''\
        def EXTRA():
            found = {}
            if "warmpkg" in sys.modules:
                found.update(warmpkg_pid=sys.modules["warmpkg"].PID, warmpkg_value=sys.modules["warmpkg"].VALUE)
            if "numpy" in sys.modules:
                found["numpy"] = list(sys.modules["numpy"].random.rand(3))
            return found


        class L(DataLoader):'''))
    adds = "\n".join(f"versions.add_version({name!r})" for name in names)
    script = models / "m.py"
    script.write_text(text.replace("__ADDS__", adds))
    return script


@pytest.fixture
def warm_env(tmp_path, monkeypatch):
    monkeypatch.delenv("MLPIPELINE_FORKSERVER", raising=False)
    site = make_package(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return site


def run_version(executor: LocalExecutor, script: Path, name: str, imports: Tuple[str, ...],
                sink: Any = None) -> Dict[str, Any]:
    spec = VersionSpec(script=str(script), rel="m.py", version=name, params={"name": name}, imports=imports)
    job = Job(spec, str(script.parent / "outputs" / name), ExecutionModeKeys.TRAIN, tag=tag_of(name))
    ticket = executor.submit(job, sink or Sink())
    outcome = finish(executor, [ticket])[ticket]
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    return seen(script.parent.parent, name)


def wait_warm(executor: LocalExecutor, imports: Tuple[str, ...], sink: Sink) -> Any:
    """The warm parent for ``imports``, once it is ready."""
    found: Dict[str, Any] = {}

    def ready() -> bool:
        server = executor.pool.server(imports, sink.log)
        found["server"] = server
        return server is not None and server is not executor.pool.plain

    wait_for(ready, timeout=60, what="the warm parent to be ready")
    return found["server"]


def test_a_warm_parent_that_imported_the_package_forks_the_later_versions(tmp_path, warm_env):
    script = write_script(tmp_path, ("a", "b", "c"))
    executor = LocalExecutor(cwd=str(tmp_path), echo=False)
    sink = Sink()
    try:
        first = run_version(executor, script, "a", ("warmpkg",), sink)
        plain = executor.pool.plain
        assert plain is not None and first["ppid"] == plain.pid  # the warm parent was still importing
        assert first["extra"]["warmpkg_pid"] == first["pid"]  # so it imported the package itself
        warm = wait_warm(executor, ("warmpkg",), sink)
        later = [run_version(executor, script, name, ("warmpkg",), sink) for name in ("b", "c")]
    finally:
        executor.close()
    for got in later:
        assert got["ppid"] == warm.pid != plain.pid
        assert got["extra"]["warmpkg_pid"] == warm.pid  # imported once, by the parent
        assert "warmpkg" in got["first_modules"]  # there before the script ran
        assert "local_helper" not in got["first_modules"]  # the project's own modules are never preloaded
        assert "warmpkg" in got["parent_cmdline"]
    assert later[0]["pid"] != later[1]["pid"] and later[0]["random"] != later[1]["random"]


def test_a_warm_parent_whose_imports_start_a_thread_is_not_used(tmp_path, warm_env):
    make_package(tmp_path, thread=True)
    script = write_script(tmp_path, ("a", "b"))
    executor = LocalExecutor(cwd=str(tmp_path), echo=False)
    sink = Sink()
    try:
        run_version(executor, script, "a", ("warmpkg",), sink)
        said = lambda: [m for m, _ in sink.logs if "not used" in m]  # noqa: E731
        deadline = time.monotonic() + 60
        while not said() and time.monotonic() < deadline:
            assert executor.pool.server(("warmpkg",), sink.log) is executor.pool.plain
            time.sleep(0.05)
        got = run_version(executor, script, "b", ("warmpkg",), sink)
        assert got["ppid"] == executor.pool.plain.pid  # type: ignore[union-attr]
        assert got["extra"]["warmpkg_pid"] == got["pid"]
    finally:
        executor.close()
    assert "started a thread" in said()[0], sink.logs


def test_numpy_state_is_fresh_in_each_version_a_warm_parent_forks(tmp_path, warm_env):
    pytest.importorskip("numpy")
    make_package(tmp_path, extra="import numpy.random\n")  # numpy's global generator is made in the parent
    script = write_script(tmp_path, ("a", "b", "c"))
    executor = LocalExecutor(cwd=str(tmp_path), echo=False)
    sink = Sink()
    try:
        run_version(executor, script, "a", ("warmpkg", "numpy"), sink)
        warm = wait_warm(executor, ("warmpkg", "numpy"), sink)
        got = [run_version(executor, script, name, ("warmpkg", "numpy"), sink) for name in ("b", "c")]
    finally:
        executor.close()
    assert all(g["ppid"] == warm.pid and "numpy.random" in g["first_modules"] for g in got)
    assert got[0]["extra"]["numpy"] != got[1]["extra"]["numpy"]  # not the parent's state, copied twice


def test_a_changed_package_gets_a_fresh_warm_parent(tmp_path, warm_env):
    script = write_script(tmp_path, ("a", "b", "c", "d"))
    executor = LocalExecutor(cwd=str(tmp_path), echo=False)
    sink = Sink()
    try:
        run_version(executor, script, "a", ("warmpkg",), sink)
        old = wait_warm(executor, ("warmpkg",), sink)
        assert run_version(executor, script, "b", ("warmpkg",), sink)["extra"]["warmpkg_value"] == 1
        time.sleep(0.01)
        make_package(tmp_path, value=2)  # upgraded in place
        changed = run_version(executor, script, "c", ("warmpkg",), sink)
        assert changed["extra"]["warmpkg_value"] == 2 and changed["ppid"] != old.pid
        new = wait_warm(executor, ("warmpkg",), sink)
        got = run_version(executor, script, "d", ("warmpkg",), sink)
    finally:
        executor.close()
    assert new.pid != old.pid and got["ppid"] == new.pid and got["extra"]["warmpkg_value"] == 2
    assert any("warmpkg" in m and "changed" in m for m, _ in sink.logs), sink.logs


def test_a_describe_records_the_installed_packages_a_script_imports(tmp_path, warm_env, monkeypatch):
    monkeypatch.syspath_prepend(str(warm_env))
    script = write_script(tmp_path, ("a",), top="import warmpkg, local_helper, xml.dom.minidom")
    monkeypatch.syspath_prepend(str(script.parent))
    entry = describe_entry(str(script))
    assert entry["info"]["imports"] == ["warmpkg"], entry  # not the project's module, the stdlib, nor mlpipeline


def test_a_batch_describes_in_forked_children_and_runs_versions_from_the_warm_parent(tmp_path, warm_env):
    script = write_script(tmp_path, tuple(f"v{i}" for i in range(6)))
    script.write_text(script.read_text().replace(
        "FIRST_MODULES = sorted(sys.modules)\n",
        "FIRST_MODULES = sorted(sys.modules)\n"
        "open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'loaded-%d.json' % "
        "os.getpid()), 'w').write(json.dumps({'argv': sys.argv[1:2], 'parent': open('/proc/%d/cmdline' % "
        "os.getppid()).read()}))\n")
        .replace("def EXTRA():\n", "def EXTRA():\n    time.sleep(0.2)  # the warm parent starts meanwhile\n"))
    proc = subprocess.run([sys.executable, "-m", "mlpipeline", "-r", "-n"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loads = [json.loads(p.read_text()) for p in tmp_path.glob("loaded-*.json")]
    describes = [load for load in loads if load["argv"] == ["describe"]]
    assert len(describes) == 1 and "forkserver_main" in describes[0]["parent"], loads
    versions = [seen(tmp_path, f"v{i}") for i in range(6)]
    warm = [v for v in versions if "warmpkg" in v["parent_cmdline"]]
    assert warm and all(v["extra"]["warmpkg_pid"] == v["ppid"] for v in warm), versions
    assert "versions import them themselves" not in proc.stderr


SEARCH_SCRIPT = '''\
import json, os, sys
import warmpkg
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class L(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1


class M(Model):
    def train_model(self, input_fn, steps): pass
    def evaluate_model(self, input_fn, steps): return {"x": 1.0}


def propose(history):
    with open(os.path.join(ROOT, "proposer-%d.json" % os.getpid()), "w") as handle:
        json.dump({"parent": open("/proc/%d/cmdline" % os.getppid()).read(), "warmpkg_pid": warmpkg.PID,
                   "pid": os.getpid()}, handle)
    return {"x": len(history)} if len(history) < 3 else None


versions = Versions(L(), 1, 1)
versions.add_version("base")
versions.add_search(propose, budget=3)
MODEL = M(versions)
'''


def test_a_search_process_is_forked_from_the_warm_parent_of_its_script(tmp_path, warm_env):
    write_script(tmp_path, ("a",))
    (tmp_path / "models" / "m.py").write_text(SEARCH_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "mlpipeline", "-r", "-n"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proposers = [json.loads(p.read_text()) for p in tmp_path.glob("proposer-*.json")]
    assert len(proposers) == 1, proposers  # one search process for the script, asked every time
    got = proposers[0]
    assert "forkserver_main" in got["parent"], got  # forked, not a fresh interpreter
    assert "warmpkg" in got["parent"] and got["warmpkg_pid"] != got["pid"], got  # by the parent that imported it
