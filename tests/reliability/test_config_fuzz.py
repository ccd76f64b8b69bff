"""Config fuzzing: well over 1 000 generated models_test.config, models.config
and mlp.config texts (binary junk, > 1 MiB files, duplicate keys and sections,
UTF-16/latin-1 bytes, NULs, random names, valid-looking ones), each fed to
``mlpipeline.cli.main`` in this process. Whatever the text, main returns 0
(the runs went fine) or 2 with one ``mlpipeline: error: <file>[:<line>]: ...``
line; no exception escapes and no traceback is printed."""
from __future__ import annotations

import os
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mlpipeline.plan.config import find_project
from mlpipeline.core.errors import MLPipelineError
from reliability_support import in_process_cli

GOOD_MLP = "[MLP]\nmodels_dir = models\n"
GOOD_QUEUE = "[MLP]\nuse_blacklist = False\n\n[WHITELISTED_MODELS]\nok.py\n\n[BLACKLISTED_MODELS]\n"
TRIVIAL = """\
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions

class L(DataLoader):
    def get_train_input(self, mode=None, **kw): return None
    def get_test_input(self, **kw): return None
    def get_train_sample_count(self): return 1
    def get_test_sample_count(self): return 1

class M(Model):
    def train_model(self, input_fn, steps): pass
    def evaluate_model(self, input_fn, steps): return 1.0

v = Versions(L(), 1, 1)
v.add_version("a")
v.add_version("b")
MODEL = M(v)
"""
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# -- what a config may look like ------------------------------------------------

names = st.text(alphabet=string.ascii_letters + string.digits + "_-. /\\[]=:;#\t\u00e9\u4e2d\U0001f600",
                max_size=24)
known_sections = st.sampled_from(["MLP", "WHITELISTED_MODELS", "BLACKLISTED_MODELS", "mlp", "whitelisted_models",
                                  " MLP ", "Blacklisted_Models"])
sections = st.one_of(known_sections, known_sections, known_sections,
                     st.sampled_from([" ", "EXTRA", "[MLP]", "MLP]"]), names.filter(bool))
keys = st.one_of(st.sampled_from(["use_blacklist", "USE_BLACKLIST", "timeout", "models_dir", "ok.py", "ok",
                                  "OK.py", "missing.py", "../models/ok.py", "outputs", "colour", "", "="]), names.filter(bool))
values = st.one_of(st.sampled_from(["True", "False", "yes", "0", "maybe", "", "3", "-1", "0.001", "nan", "inf",
                                    "1e309", "a", "a, b", "b,,a", "zz", "a, zz", "models", "nowhere",
                                    "models/outputs", "ok.py", "a ; comment", "a # comment"]), names)
entries = st.one_of(
    st.builds(lambda k, sep, v: f"{k}{sep}{v}", keys, st.sampled_from([" = ", "=", ": ", " "]), values),
    keys,
    st.builds(lambda v: f"    {v}", values),            # a continuation line
    st.sampled_from(["", "; a comment", "# another", "ok.py", "ok.py = a", "ok = b, a", "use_blacklist = True",
                     "\x0c", "\u2028", "\u0085"]),
)
junk_lines = st.sampled_from(["[", "]", "[]", "[MLP", "=", "\ufeff[MLP]", "ok.py", "key = value"])
newlines = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def structured(draw) -> str:
    """Mostly well-formed: sections (known names weighed up) holding entries;
    sometimes a stray line first, a section or an entry twice."""
    body = [draw(st.one_of(junk_lines, entries))] if draw(st.integers(0, 7)) == 7 else []
    for _ in range(draw(st.integers(0, 4))):
        header = draw(sections)
        layout = "[{}] ; note" if draw(st.integers(0, 15)) == 15 else draw(st.sampled_from(["[{}]", " [{}]", "[{}] "]))
        body.append(layout.format(header))
        body += draw(st.lists(entries, max_size=5))
    if body and draw(st.integers(0, 4)) == 4:  # a line twice: duplicate keys or sections
        body.insert(draw(st.integers(0, len(body))), body[draw(st.integers(0, len(body) - 1))])
    if draw(st.integers(0, 5)) == 5:
        body.append(draw(junk_lines))
    return draw(newlines).join(body) + draw(st.sampled_from(["", "\n"]))


def encode(text: str, how: str) -> bytes:
    return {"utf-8": lambda: text.encode("utf-8"), "utf-8-sig": lambda: text.encode("utf-8-sig"),
            "utf-16": lambda: text.encode("utf-16"), "utf-16-le": lambda: text.encode("utf-16-le"),
            "utf-32": lambda: text.encode("utf-32"), "latin-1": lambda: text.encode("latin-1", "replace"),
            "cp1252": lambda: text.encode("cp1252", "replace")}[how]()


@st.composite
def with_nuls(draw, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        data.insert(draw(st.integers(0, len(data))), 0)
    return bytes(data)


HUGE_SIZES = st.sampled_from([(1 << 20) + 1, (1 << 20) + 4096, 3 << 20])


@st.composite
def huge(draw) -> bytes:
    size = draw(HUGE_SIZES)
    head = GOOD_QUEUE.encode()
    filler = draw(st.sampled_from([b"; padding\n", b"ok.py\n", b"x", b"\xff"]))
    return head + filler * ((size - len(head)) // len(filler) + 1)


@st.composite
def config_bytes(draw) -> bytes:
    """Half well-formed-looking UTF-8; the rest odd encodings, NULs, junk and huge files."""
    kind = draw(st.integers(0, 19))
    if kind < 10:
        return draw(structured()).encode("utf-8")
    if kind < 12:
        how = draw(st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        return encode(draw(structured()), how)
    if kind < 14:
        return draw(with_nuls(draw(structured()).encode("utf-8")))
    if kind < 16:
        return draw(st.binary(max_size=600))
    if kind < 18:
        return GOOD_QUEUE.encode() + draw(st.binary(max_size=40))
    return draw(huge())


# -- checking what main did -----------------------------------------------------

NOT_RUN_LINE = re.compile(r"^mlpipeline: error: not run: (?:\S*/)?models(?:_test)?\.config:\d+: .* is not in ")
ERROR_LINE = re.compile(r"^mlpipeline: error: (?:\S*/)?(?:mlp|models|models_test)\.config(?::\d+)?: \S")


def check(code: int, out: str, err: str, data: bytes) -> None:
    shown = f"exit {code}\nconfig: {data[:300]!r}\nstderr: {err[-1500:]}\nstdout: {out[-500:]}"
    assert "Traceback" not in out + err, shown
    assert "internal error" not in err, shown
    errors = [line for line in err.splitlines() if line.startswith("mlpipeline: error:")]
    if code == 2:
        assert len(errors) == 1 and ERROR_LINE.match(errors[0]), shown
    elif code == 1:  # only for listed scripts that do not exist: each named, last, after what did run
        assert errors and all(NOT_RUN_LINE.match(line) for line in errors), shown
    else:
        assert code == 0, shown  # the one script always succeeds; 1 for anything else would be a failure of ours
        assert not errors, shown


@pytest.fixture
def fuzz_project(tmp_path, monkeypatch):
    # Each example saves a config and runs at once: no wait for a save that just happened to settle
    # (a batch otherwise reads a config saved under half a second ago once more, in real time).
    monkeypatch.setenv("MLPIPELINE_TIMINGS", "config_settle=0,settle_read=0")
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "models" / "ok.py").write_text(TRIVIAL)
    (root / "mlp.config").write_text(GOOD_MLP)
    (root / "models_test.config").write_text(GOOD_QUEUE)
    (root / "models.config").write_text(GOOD_QUEUE)
    return root


def models_dir_inside(root) -> bool:
    """Never let a generated mlp.config point models_dir (and so the ledger) outside the project."""
    try:
        project = find_project(str(root))
    except MLPipelineError:
        return True
    return os.path.realpath(project.models_dir).startswith(os.path.realpath(root) + os.sep) \
        or os.path.realpath(project.models_dir) == os.path.realpath(root)


def fuzz(root, name: str, strategy, examples: int, *argv: str) -> dict:
    """Write each generated text to ``root/name``, run main in this process,
    check what it did; returns how many examples ended with each exit code."""
    codes = {0: 0, 1: 0, 2: 0}
    with in_process_cli() as mlpipeline:
        @settings(FUZZ, max_examples=examples)
        @given(strategy)
        def run(data):
            (root / name).write_bytes(data)
            if name == "mlp.config" and not models_dir_inside(root):
                return
            code, out, err = mlpipeline("-C", str(root), *argv)
            check(code, out, err, data)
            codes[code] += 1
        run()
    return codes


def test_fuzz_models_test_config(fuzz_project):
    codes = fuzz(fuzz_project, "models_test.config", config_bytes(), 1000)
    assert sum(codes.values()) == 1000
    assert codes[0] >= 150, codes  # a good share got past the parser and ran the queue it describes


def test_fuzz_models_config_in_execution_mode(fuzz_project):
    codes = fuzz(fuzz_project, "models.config", config_bytes(), 200, "-r", "--in-process", "-n")
    assert sum(codes.values()) == 200
    assert codes[0] >= 30, codes


models_dirs = st.one_of(st.just("models"), st.just("models"), st.sampled_from(["./models", "models/", " models ",
                        "models ; the scripts", "models/outputs", "nowhere", "", "models\n    more", "MODELS"]), values)


@st.composite
def mlp_text(draw) -> str:
    """An [MLP] section with models_dir somewhere in it, other keys and sections around."""
    entries_before = draw(st.lists(entries, max_size=2))
    entries_after = draw(st.lists(entries, max_size=2))
    body = ["[MLP]"] + entries_before
    if draw(st.integers(0, 9)) < 9:
        body.append(f"{draw(st.sampled_from(['models_dir', 'MODELS_DIR', 'models_dir ']))}"
                    f"{draw(st.sampled_from([' = ', '=', ': ']))}{draw(models_dirs)}")
    body += entries_after
    for _ in range(draw(st.integers(0, 2))):
        body.append(f"[{draw(sections)}]")
        body += draw(st.lists(entries, max_size=2))
    if body and draw(st.integers(0, 4)) == 4:
        body.insert(draw(st.integers(0, len(body))), body[draw(st.integers(0, len(body) - 1))])
    return draw(newlines).join(body) + "\n"


@st.composite
def mlp_config(draw) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind < 6:
        return draw(mlp_text()).encode("utf-8")
    if kind == 6:
        return encode(draw(mlp_text()), draw(st.sampled_from(["utf-16", "latin-1", "utf-8-sig", "utf-32"])))
    if kind == 7:
        return draw(with_nuls(draw(mlp_text()).encode("utf-8")))
    return draw(config_bytes())


def test_fuzz_mlp_config(fuzz_project):
    codes = fuzz(fuzz_project, "mlp.config", mlp_config(), 400)
    assert sum(codes.values()) >= 350, codes  # the rest pointed models_dir outside the project: not run
    assert codes[0] >= 40, codes
