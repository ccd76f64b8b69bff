"""Run the original's own example project, at every 1.x commit from 4ad4e3f to c8e2ef6,
through this project's CLI in both modes. A developer's check, not part of the suite
(it needs a clone of ahmed-shariff/ml-pipeline, which CI cannot reach):

    python tests/compat/check_original_examples.py /path/to/ml-pipeline.git

Each commit's examples/sample-project is exported with ``git archive`` into a
temporary folder (nothing of it is kept), then ``mlpipeline`` and
``mlpipeline -r -u`` must exit 0. Prints one line per commit; exits 1 if any failed.
"""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FIRST, LAST = "4ad4e3f", "c8e2ef6"


def main(git_dir: str) -> int:
    git = ["git", "--git-dir", git_dir]
    commits = subprocess.run([*git, "rev-list", "--reverse", f"{FIRST}^..{LAST}"], check=True,
                             capture_output=True, text=True).stdout.split()
    failed = 0
    for commit in commits:
        archive = subprocess.run([*git, "archive", commit, "examples/sample-project"], check=True,
                                 capture_output=True).stdout
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp)
            root = Path(tmp) / "examples" / "sample-project"
            codes = []
            for args in ([], ["-r", "-u"]):
                result = subprocess.run([sys.executable, "-m", "mlpipeline", *args], cwd=root,
                                        capture_output=True, text=True, timeout=600)
                codes.append(result.returncode)
                if result.returncode != 0:
                    print(result.stderr[-2000:], file=sys.stderr)
            runs = subprocess.run([sys.executable, "-m", "mlpipeline", "runs", "--format", "csv"], cwd=root,
                                  capture_output=True, text=True).stdout.strip().splitlines()
        ok = codes == [0, 0]
        failed += not ok
        print(f"{commit[:7]} mlpipeline={codes[0]} mlpipeline -r -u={codes[1]} runs={len(runs) - 1} "
              f"{'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
