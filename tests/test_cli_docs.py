"""The CLI and its documentation stay together; progress is shown while a batch runs."""
from __future__ import annotations

import argparse

from helpers import REPO
from mlpipeline.cli import build_parser


def _options(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"mlpipeline {name}"
                yield from _options(sub, name)
        else:
            for option in action.option_strings:
                if option.startswith("--") and option not in ("--help", "--mlpipeline-version"):
                    yield option


def test_every_option_and_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = sorted({o for o in _options(build_parser()) if o not in readme})
    assert missing == [], f"undocumented in README.md: {missing}"


def test_progress_lines_while_a_version_reports_steps(project):
    project.script("steps.py", """\
        import time
        from mlpipeline.helper import Model, DataLoader
        from mlpipeline.utils import Versions
        class L(DataLoader):
            def get_train_input(self, mode=None, **kw): return None
            def get_test_input(self, **kw): return None
            def get_train_sample_count(self): return 3
            def get_test_sample_count(self): return 1
        class M(Model):
            def train_model(self, input_fn, steps):
                for step in range(steps):
                    self.log_metric("loss", 1.0 / (step + 1), step=step)
                    time.sleep(0.6)
            def evaluate_model(self, input_fn, steps): return {"acc": 1.0}
        v = Versions(L(), 1, 1)
        v.add_version("only")
        MODEL = M(v)
        """)
    project.configure(["steps.py"])
    result = project.run("-r")
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if ": step " in line]
    assert progress and progress[0].startswith("mlpipeline: models/steps.py only: step 0  train/loss=1")
    assert "succeeded in 0:0" in result.stderr  # the one-line summary of the finished version
