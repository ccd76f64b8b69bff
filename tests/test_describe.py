"""Describing scripts: real scripts in tmp_path, real child processes, a dict as the cache."""
from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from helpers import pid_alive, wait_for
from mlpipeline.plan.describe import Described, Describer, describe_entry
from mlpipeline.script.loading import ScriptInfo, VersionInfo, fingerprint, recording

HEADER = '''\
import json, os, sys, time
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

HERE = os.path.dirname(os.path.abspath(__file__))

class Loader(DataLoader):
    def get_train_input(self, mode=None, **kw): return lambda: [1, 2]
    def get_test_input(self, **kw): return lambda: [3]
    def get_train_sample_count(self): return 2
    def get_test_sample_count(self): return 1

class Net(Model):
    def train_model(self, input_fn, steps):
        return None

    def evaluate_model(self, input_fn, steps):
        return {"score": 1.0}

'''


def model_script(*versions: str, before: str = "", body: str = "", after: str = "") -> str:
    """A minimal valid script: ``before`` runs first, ``body`` after the classes,
    ``after`` after the version declarations."""
    adds = "".join(f"versions.add_version({name!r}, learning_rate=0.1)\n" for name in versions)
    return (textwrap.dedent(before) + HEADER + textwrap.dedent(body)
            + "versions = Versions(Loader(), batch_size=1, epoc_count=1)\n" + adds + textwrap.dedent(after)
            + "MODEL = Net(versions)\n")


def write(path: Path, text: str) -> Path:
    """Write ``path`` and move its mtime forward, so no edit hides inside one timestamp tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stamp = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))
    return path


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def cache() -> Dict[str, dict]:
    return {}


@pytest.fixture
def clean_imports() -> Iterator[None]:
    """In-process loads leave modules and sys.path entries behind; take them away again."""
    modules, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    sys.path[:] = path


def describer_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlpipeline-describe"]


@pytest.fixture
def make(tmp_path: Path, cache: Dict[str, dict]) -> Iterator:
    """Describers on ``cache``, all closed after the test; fails if a thread outlives ``close()``."""
    made: List[Describer] = []

    def factory(**kw) -> Describer:
        describer = Describer(str(tmp_path), cache.get, cache.__setitem__, **kw)
        made.append(describer)
        return describer

    yield factory
    for describer in made:
        describer.close()
    assert describer_threads() == []


def described(describer: Describer, path: Path, timeout: float = 30.0) -> Described:
    """Ask until the description is there, polling as a runner loop would."""
    def ready():
        describer.poll()
        return describer.lookup(str(path))

    return wait_for(ready, timeout=timeout, what=f"description of {path.name}", every=0.02)


def test_touching_a_sibling_script_does_not_redescribe_others(models: Path, make) -> None:
    a = write(models / "a.py", model_script("a1"))
    b = write(models / "b.py", model_script("b1"))
    describer = make()
    assert described(describer, a).info.names == ["a1"]
    assert described(describer, b).info.names == ["b1"]
    assert describer.spawns == 2

    os.utime(b, ns=(time.time_ns() + 5 * 10**9,) * 2)  # touched, same text
    write(models / "c.py", model_script("c1"))           # a new sibling
    assert describer.lookup(str(a)).info.names == ["a1"]
    assert describer.lookup(str(b)).info.names == ["b1"]
    write(b, model_script("b1", "b2"))                    # edited
    assert describer.lookup(str(a)) is not None
    assert described(describer, b).info.names == ["b1", "b2"]
    assert describer.spawns == 3


def test_a_new_runner_serves_descriptions_from_the_cache(models: Path, make, cache: Dict[str, dict]) -> None:
    a = write(models / "a.py", model_script("a1"))
    described(make(), a)
    assert len(cache) == 1
    again = make()
    result = again.lookup(str(a))
    assert result is not None and result.info.names == ["a1"] and result.info.path == str(a)
    assert again.spawns == 0


def compiled(path: Path) -> Path:
    """Give a module a valid .pyc, so importing it reads only __pycache__ (not recorded): the
    module is then known as a dependency through sys.modules alone."""
    py_compile.compile(str(path), doraise=True)
    return path


def test_script_is_redescribed_when_its_helper_module_changes(models: Path, make) -> None:
    compiled(write(models / "helper.py", "NAMES = ['h1']\n"))
    uses = write(models / "uses.py", model_script(before="import helper\n",
                                                  after="for n in helper.NAMES:\n    versions.add_version(n)\n"))
    other = write(models / "other.py", model_script("o1"))
    describer = make()
    first = described(describer, uses)
    assert first.info.names == ["h1"]
    assert [str(models / "helper.py")] == [path for path, _ in first.info.deps]
    described(describer, other)
    assert describer.spawns == 2

    compiled(write(models / "helper.py", "NAMES = ['h1', 'h2']\n"))
    assert describer.lookup(str(other)) is not None      # it does not read helper.py
    assert describer.lookup(str(uses)) is None           # it does
    second = described(describer, uses)
    assert second.info.names == ["h1", "h2"]
    assert second.info.fingerprint != first.info.fingerprint
    assert describer.spawns == 3


def test_data_file_read_at_import_is_a_dep(models: Path, make) -> None:
    data = write(models / "grid.json", json.dumps({"lr": 0.1}))
    script = write(models / "data.py", model_script(
        "v1", body="CFG = json.load(open(os.path.join(HERE, 'grid.json')))\n"
                   "open(os.path.join(HERE, 'written.txt'), 'w').write('not a dependency')\n"))
    describer = make()
    first = described(describer, script)
    deps = dict(first.info.deps)
    assert list(deps) == [str(data)]
    assert first.deps == first.info.deps

    write(data, json.dumps({"lr": 0.2}))
    assert describer.lookup(str(script)) is None
    second = described(describer, script)
    assert second.info.fingerprint != first.info.fingerprint
    assert dict(second.info.deps)[str(data)] != deps[str(data)]


@pytest.mark.parametrize("text, expected", [
    ("import os\ndef broken(:\n", "broken.py:2: SyntaxError"),
    (model_script("v1", before="raise RuntimeError('no data here')\n"), "RuntimeError while importing the script"),
    ("x = 1\n", "defines no MODEL"),
])
def test_broken_script_is_described_once_then_served_from_the_cache(models: Path, make, cache, text: str,
                                                                     expected: str) -> None:
    script = write(models / "broken.py", text)
    describer = make()
    failed = described(describer, script)
    assert failed.info is None and expected in str(failed.error)
    assert "\n" not in str(failed.error)
    assert describer.spawns == 1 and len(cache) == 1

    assert describer.lookup(str(script)).error is not None    # from memory
    again = make()
    result = again.lookup(str(script))                        # from the cache, in a new runner
    assert result is not None and expected in str(result.error)
    assert again.spawns == 0


def test_broken_script_records_what_it_read_before_failing(models: Path, make) -> None:
    compiled(write(models / "helper.py", "VALUE = 1\n"))
    script = write(models / "late.py", "import helper\nraise ValueError('helper is not ready')\n")
    describer = make()
    failed = described(describer, script)
    assert "ValueError" in str(failed.error) and "helper is not ready" in failed.error.details
    assert [path for path, _ in failed.deps] == [str(models / "helper.py")]

    write(models / "helper.py", "VALUE = 2\n")               # maybe the fix: try again
    assert describer.lookup(str(script)) is None


def test_hanging_import_is_cut_off_at_the_time_limit(models: Path, make, cache) -> None:
    script = write(models / "hang.py", model_script("v1", before='''\
        import os, subprocess, time
        here = os.path.dirname(os.path.abspath(__file__))
        helper = subprocess.Popen(["sleep", "60"])
        open(os.path.join(here, "pids"), "w").write("%d %d" % (os.getpid(), helper.pid))
        time.sleep(60)
        '''))
    describer = make(timeout=1.5)
    started = time.monotonic()
    assert describer.lookup(str(script)) is None
    result = described(describer, script, timeout=20)
    assert time.monotonic() - started < 10
    assert str(result.error).endswith("/models/hang.py: loading it took longer than 1.5 s (a blocking import?); "
                                      "it is skipped")
    pids = [int(p) for p in (models / "pids").read_text().split()]
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=5, what="the hung child and its helper to die")
    assert cache == {}                                   # a hang is tried again by the next runner
    assert describer.lookup(str(script)) is result       # but not by this one
    assert describer.spawns == 1


def test_close_kills_a_running_describe(models: Path, make) -> None:
    script = write(models / "slow.py", model_script("v1", before='''\
        import os, time
        open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pid"), "w").write(str(os.getpid()))
        time.sleep(60)
        '''))
    describer = make(timeout=120)
    assert describer.lookup(str(script)) is None
    pid = int(wait_for(lambda: (models / "pid").exists() and (models / "pid").read_text(), what="the child's pid"))
    assert pid_alive(pid)
    started = time.monotonic()
    describer.close()
    assert time.monotonic() - started < 3
    assert not pid_alive(pid)
    assert describer_threads() == []
    describer.close()                                    # idempotent
    assert describer.poll() == []
    assert describer.lookup(str(script)) is None and describer.spawns == 1  # nothing new starts


def test_lookup_never_blocks_while_pending(models: Path, make) -> None:
    scripts = [write(models / f"s{i}.py", model_script("v1", before="import time\ntime.sleep(1.0)\n"))
               for i in range(3)]
    describer = make(max_parallel=2)
    slowest = 0.0
    done: Dict[str, Described] = {}
    deadline = time.monotonic() + 30
    while len(done) < len(scripts) and time.monotonic() < deadline:
        describer.poll()
        for script in scripts:
            started = time.monotonic()
            result = describer.lookup(str(script))
            slowest = max(slowest, time.monotonic() - started)
            if result is not None:
                done[script.name] = result
        time.sleep(0.01)
    assert sorted(done) == ["s0.py", "s1.py", "s2.py"]
    assert slowest < 0.05, f"lookup blocked for {slowest:.3f} s"
    assert describer.spawns == 3


def test_a_crash_names_the_signal_and_the_last_output(models: Path, make, cache) -> None:
    script = write(models / "crash.py", "import os, signal\nprint('loading the data', flush=True)\n"
                                         "os.kill(os.getpid(), signal.SIGKILL)\n")
    describer = make()
    result = described(describer, script)
    message = str(result.error)
    assert "crash.py: loading it was killed by SIGKILL" in message and "loading the data" in message
    assert cache == {}


def test_in_process_loads_here_and_never_returns_none(models: Path, make, cache, clean_imports) -> None:
    script = write(models / "inproc.py", model_script("v1", "v2"))
    describer = make(in_process=True)
    result = describer.lookup(str(script))
    assert result is not None and result.info.names == ["v1", "v2"]
    assert describer.spawns == 0 and len(cache) == 1
    assert make().lookup(str(script)).info.names == ["v1", "v2"]   # a child-process describer reuses it


def test_in_process_finds_a_helper_an_earlier_script_imported(models: Path, make, clean_imports) -> None:
    compiled(write(models / "describe_shared_layers.py", "DEPTH = 3\n"))
    text = model_script("v1", before="import describe_shared_layers\n")
    first, second = write(models / "first.py", text), write(models / "second.py", text.replace("v1", "w1"))
    describer = make(in_process=True)
    helper = str(models / "describe_shared_layers.py")
    assert [p for p, _ in describer.lookup(str(first)).info.deps] == [helper]
    assert "describe_shared_layers" in sys.modules
    assert [p for p, _ in describer.lookup(str(second)).info.deps] == [helper]  # not newly imported this time


def test_describe_entry_reports_deps_and_error_as_json(models: Path) -> None:
    script = write(models / "bad.py", "raise KeyError('x')\n")
    entry = describe_entry(str(script))
    json.dumps(entry)
    assert entry["info"] is None and "KeyError" in entry["error"][0] and entry["sha256"]


# --- the fingerprint ------------------------------------------------------------------------------------


def test_fingerprint_ignores_version_declarations_and_formatting(tmp_path: Path) -> None:
    path = str(tmp_path / "m.py")
    base = fingerprint(path, model_script("v1").encode(), [])
    assert fingerprint(path, model_script("v1", "v2").encode(), []) == base
    looped = model_script("v1", after="for lr in (0.1, 0.2):\n    versions.add_version('lr%s' % lr, learning_rate=lr)\n")
    assert fingerprint(path, looped.encode(), []) == base
    legacy = model_script("v1", after="versions.addV('old')\n")
    assert fingerprint(path, legacy.encode(), []) == base
    assert fingerprint(path, ("# a comment\n\n" + model_script("v1")).encode(), []) == base


def test_fingerprint_changes_with_what_trains(tmp_path: Path) -> None:
    path = str(tmp_path / "m.py")
    base = fingerprint(path, model_script("v1").encode(), [])
    model_edit = model_script("v1").replace('return {"score": 1.0}', 'return {"score": 2.0}')
    assert fingerprint(path, model_edit.encode(), []) != base
    defaults_edit = model_script("v1").replace("batch_size=1", "batch_size=2")
    assert fingerprint(path, defaults_edit.encode(), []) != base
    helper = str(tmp_path / "helper.py")
    with_dep = fingerprint(path, model_script("v1").encode(), [[helper, "a" * 64]])
    assert with_dep != base
    assert fingerprint(path, model_script("v1").encode(), [[helper, "b" * 64]]) != with_dep


def test_fingerprint_of_a_described_script(models: Path, make) -> None:
    write(models / "helper.py", "def layers():\n    return 3\n")
    text = model_script("v1", before="import helper\n")
    script = write(models / "fp.py", text)
    describer = make()
    first = described(describer, script).info.fingerprint
    write(script, model_script("v1", "v2", before="import helper\n"))
    assert described(describer, script).info.fingerprint == first          # a version added
    write(models / "helper.py", "def layers():\n    return 4\n")
    third = described(describer, script).info.fingerprint
    assert third != first                                                   # the helper edited
    write(script, model_script("v1", "v2", before="import helper\n").replace("return None", "return steps"))
    assert described(describer, script).info.fingerprint not in (first, third)  # the model edited


def test_recording_sees_reads_on_its_own_thread_only(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    other = tmp_path / "other.txt"
    other.write_text("y")
    open(data).read()                                    # before: not recorded
    with recording() as opened:
        open(data).read()
        open(tmp_path / "out.txt", "w").write("z")       # a write: not recorded
        thread = threading.Thread(target=lambda: open(other).read())
        thread.start()
        thread.join()
    open(other).read()                                   # after: not recorded
    assert opened == {str(data)}


# --- ScriptInfo as JSON ---------------------------------------------------------------------------------


def test_script_info_round_trips_with_the_new_fields() -> None:
    info = ScriptInfo("/p/m.py", "s" * 64, [VersionInfo("v1", {"batch_size": 1}, "d" * 64)],
                      fingerprint="f" * 64, deps=[["/p/helper.py", "h" * 64]])
    again = ScriptInfo.from_json(json.loads(json.dumps(info.to_json())))
    assert again == info


def test_script_info_reads_json_written_before_the_new_fields() -> None:
    old = {"path": "/p/m.py", "sha256": "s" * 64,
           "versions": [{"name": "v1", "params": {"batch_size": 1}, "params_sha256": "d" * 64}]}
    info = ScriptInfo.from_json(old)
    assert info.names == ["v1"] and info.fingerprint == "" and info.deps == []
    assert isinstance(info.versions[0], VersionInfo)


def test_a_describe_child_dies_with_its_runner(models: Path, tmp_path: Path) -> None:
    script = write(models / "stuck.py", model_script("v1", before='''\
        import os, time
        open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pid"), "w").write(str(os.getpid()))
        time.sleep(60)
        '''))
    runner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f'''\
        import time
        from mlpipeline.plan.describe import Describer
        describer = Describer({str(tmp_path)!r}, lambda key: None, lambda key, entry: None)
        describer.lookup({str(script)!r})
        time.sleep(60)
        ''')], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = int(wait_for(lambda: (models / "pid").exists() and (models / "pid").read_text(), proc=runner,
                           what="the describe child's pid"))
        runner.kill()                                    # SIGKILL: no close(), no cleanup in the runner
        runner.wait()
        wait_for(lambda: not pid_alive(pid), timeout=5, what="the describe child to die with its runner")
    finally:
        runner.kill()
        runner.wait()
