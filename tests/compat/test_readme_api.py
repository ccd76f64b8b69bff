"""Differential suite, README-era API (ml-pipeline commit c8e2ef6, never released).

Each script in readme/ runs under this project; its observations must equal the
expectation below, read from the original's code at c8e2ef6 (the file and line
each one comes from is given; ``utils`` is mlpipeline/utils/_utils.py and
``helper`` mlpipeline/helper/_helper.py at that commit). They were checked by
running the same scripts against a checkout of c8e2ef6 with easydict 1.14.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from original import clean_env

HERE = Path(__file__).parent
LINES = ["INFO - Created directories(s): <root>/out/deep", "INFO - Copying imported custom scripts to <root>/out/deep",
         "INFO - \tCopied <root>/models/script.py", "INFO - \tCopied <root>/models/helper_mod.py"]

EXPECTED = {
    # utils:112-124 add_version: kwargs, then custom_paramters (a later key wins), then dataloader,
    # batch_size, epoc_count (defaults from utils:96-99), order (utils:118-122: 0 for the first
    # automatic one), model_dir_suffix; no 'name' key; EasyDict gives attribute access (set too).
    "add_version_keys": {
        "attrs": [0.2, 1, 4, 2, 0, None, True], "is_dict": True,
        "keys": ["lr", "x", "dataloader", "batch_size", "epoc_count", "order", "model_dir_suffix"],
        "name_is_key": False, "set_attr_is_item": 5,
        "version": {"batch_size": 4, "dataloader": "<Loader>", "epoc_count": 2, "lr": 0.2,
                    "model_dir_suffix": None, "order": 0, "x": 1}},
    # utils:115-117 and 123: given values win over defaults ('is None' tests, so 0 is kept); the
    # suffix is stored as given; utils:121-122: an explicit order does not use up an automatic one.
    "add_version_overrides": {
        "b": {"batch_size": 8, "dataloader": "other", "epoc_count": 3, "model_dir_suffix": "-s", "order": 9},
        "c": {"batch_size": 0, "dataloader": "dl", "epoc_count": 0, "model_dir_suffix": None, "order": 0}},
    # utils:112-114: the version is an EasyDict, which turns nested dicts (and dicts inside lists
    # and tuples) into EasyDicts when set, copying them; missing attributes raise AttributeError.
    "add_version_nested": {
        "copied": False, "later": 3, "missing": {"is_AttributeError": True, "raised": True},
        "nested_attr": [1, 2, 8, 3, "v"], "types": ["list", "tuple", True]},
    # utils:118-124: automatic orders count the versions added without one; a second version with
    # the same name replaces the first in _versions (keeping its place) and takes a new order.
    "add_version_order": {"a_batch": 7, "names": ["a", "b", "c", "d"], "orders": {"a": 2, "b": 10, "c": 1, "d": 0}},
    # utils:126-130 get_version: the stored object; ValueError("Version name '...' not found").
    "get_version": {"message_start": True, "same_object": True, "unknown": {"is_ValueError": True, "raised": True}},
    # utils:455-491 log_metrics(name_prefix=...) with complete_epoc=True (avg_epoc); utils:401-409
    # __setattr__ refuses non-Metrics and utils:409 makes __setitem__ the same check.
    "container_prefix_setitem": {
        "attr_is_item": True, "keys": ["a", "b", "y"], "lines": ["INFO - TRAIN_a: 10.0000    TRAIN_b: 2.0000    "],
        "returned": "TRAIN_a: 10.0000    TRAIN_b: 2.0000    ",
        "setitem_number": {"is_TypeError": True, "raised": True}},
    # utils:78-84 log_special_tokens (an EasyDict); utils:15-19 use_mlflow is False without mlflow.
    "special_tokens": {
        "attr": "Model trained", "use_mlflow": False,
        "tokens": {"MODEL_EVALED": "Model evaluation complete", "MODEL_TRAINED": "Model trained",
                   "MODE_RUNNING": "RUNNING MODEL TRAINING", "MODE_TESTING": "TESTING",
                   "SESSION_ENDED": "=====================ML-Pipeline Session ended",
                   "SESSION_STARTED": "=====================ML-Pipeline session started"}},
    # utils:289-302 _collect_related_files: the given files, then every imported module under root;
    # utils:304-316 copy_related_files: makedirs (logging "Created directories(s)"), one log line
    # per copied file; helper:86 makes it a Model method.
    "copy_related": {
        "copied": ["helper_mod.py", "script.py"], "copied_again": ["helper_mod.py", "script.py"],
        "lines": LINES + [line.replace("/out/deep", "/again") for line in LINES]},
}

CASES = sorted(p.stem for p in (HERE / "readme").glob("*.py"))


def test_every_fixture_has_an_expectation():
    assert sorted(EXPECTED) == CASES


@pytest.mark.parametrize("case", CASES)
def test_readme_api_matches_c8e2ef6(case, tmp_path):
    out = tmp_path / "obs.json"
    result = subprocess.run([sys.executable, str(HERE / "readme" / f"{case}.py"), str(out)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=clean_env(Path(sys.executable).parent))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.read_text()) == EXPECTED[case]
