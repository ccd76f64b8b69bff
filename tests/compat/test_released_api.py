"""Differential suite, released API: each script in released/ runs under the real
mlpipeline==1.1a3.post7 (from the package index, in its own venv) and under this
project; what it observes must be the same."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from original import clean_env

HERE = Path(__file__).parent
CASES = sorted(p.stem for p in (HERE / "released").glob("*.py"))


def observe(python: Path, script: Path, tmp: Path, label: str) -> dict:
    out = tmp / f"{label}.json"
    work = tmp / label
    work.mkdir()
    result = subprocess.run([str(python), str(script), str(out)], cwd=work, capture_output=True, text=True,
                            timeout=120, env=clean_env(python.parent))
    assert result.returncode == 0, f"{script.name} under {label}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", CASES)
def test_released_api_matches_the_original(case, original, tmp_path):
    script = HERE / "released" / f"{case}.py"
    expected = observe(original / "bin" / "python", script, tmp_path, "original")
    assert expected, f"{case}: observed nothing under the original"
    ours = observe(Path(sys.executable), script, tmp_path, "ours")
    assert ours == expected
    # and the same types (0 is not 0.0 here: avg() of an empty Metric is the int 0, as the original)
    assert json.dumps(ours, sort_keys=True) == json.dumps(expected, sort_keys=True)
