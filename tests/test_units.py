"""Library pieces on their own: configs, Versions, metrics, eval results, the ledger."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from mlpipeline.plan.config import read_queue_config
from mlpipeline.core.errors import ConfigError, LedgerError, VersionError
from mlpipeline.script.execute import eval_metrics
from mlpipeline.helper import DataLoader
from mlpipeline.store.ledger import MIGRATIONS, Ledger, Mode, RunStatus
from mlpipeline.utils import Metric, MetricContainer, Versions, version_parameters


def test_queue_config_entries_with_lines_and_versions(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("; comment\n[MLP]\nuse_blacklist = no ; inline\n\n[WHITELISTED_MODELS]\n"
                    "a.py\nb = v1, v3   ; only these\nc.py = v2,\n  v4\n\n[BLACKLISTED_MODELS]\nd.py\n")
    config = read_queue_config(str(path))
    assert config.use_blacklist is False
    assert [(e.name, e.versions, e.line) for e in config.whitelist] == [
        ("a.py", None, 6), ("b.py", ["v1", "v3"], 7), ("c.py", ["v2", "v4"], 8)]
    assert [e.name for e in config.blacklist] == ["d.py"]
    assert config.warnings == []


def test_queue_config_duplicate_entry_is_a_warning(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[WHITELISTED_MODELS]\na.py\na\n")
    config = read_queue_config(str(path))
    assert [e.name for e in config.whitelist] == ["a.py"]
    assert len(config.warnings) == 1 and ":3: a.py is listed again (first at line 2)" in config.warnings[0]


def test_queue_config_too_large(tmp_path):
    path = tmp_path / "models.config"
    path.write_bytes(b"[MLP]\n" + b"#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        read_queue_config(str(path))


def test_versions_defaults_order_and_attribute_access():
    loader = DataLoader()
    versions = Versions(loader, 32, 10, learning_rate=0.1, dropout=0.0)
    versions.add_version("b", order=2, custom_paramters={"dropout": 0.5})
    versions.add_version("c")  # order 0: the first version without an explicit order
    versions.add_version("a", order=1, batch_size=8, layers=3)
    assert [v.name for v in versions.get_versions()] == ["c", "a", "b"]
    a = versions.get_version("a")
    assert a.batch_size == 8 and a[version_parameters.EPOC_COUNT] == 10 and a.layers == 3
    assert a[version_parameters.NAME] == "a" and a.dataloader is loader
    assert versions.get_version("b")["dropout"] == 0.5
    assert versions.get_version("c").learning_rate == 0.1
    assert version_parameters.EPOCH_COUNT == version_parameters.EPOC_COUNT
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        a.nope
    versions.add_version("a", batch_size=4)  # as the original: the later one replaces it
    assert versions.get_version("a").batch_size == 4 and len(versions) == 3
    with pytest.raises(ValueError, match="Version name 'z' not found \\(versions: b, c, a\\)"):
        versions.get_version("z")
    with pytest.raises(VersionError):
        versions.get_version("z")


def test_versions_oldest_signature_keeps_learning_rate():
    loader = DataLoader()
    versions = Versions(0.01, loader, 4, 2)
    version = versions.add_version("x")
    assert (version.learning_rate, version.dataloader, version.batch_size, version.epoc_count) == (0.01, loader, 4, 2)


def test_metric_running_average_and_epochs():
    metric = Metric(track_average_epoc_count=2)
    metric.update(1.0)
    metric.update(3.0, count=3)  # a sum over 3 items: avg = (1 + 3) / (1 + 3)
    assert metric.avg() == pytest.approx(1.0) and metric.value == 4.0 and metric.count == 4
    metric.reset_epoc()
    metric.update(5.0)
    assert metric.avg_epoc() == 5.0 and metric.avg() == pytest.approx(9.0 / 5)
    metric.reset_epoc()
    assert metric.track_value_list == [1.0, 5.0] and metric.get_tracking_delta() == 4.0
    metric.reset()
    assert metric.avg() == 0
    with pytest.raises(TypeError, match="int or float"):
        metric.update("1")


def test_metric_container_attribute_access_and_eval_text():
    metrics = MetricContainer(["a", "b"])
    metrics.a.update(10)
    metrics.b.update(2)
    metrics.update({"c": Metric()})
    metrics.c.update(4.0)
    assert {k: m.avg() for k, m in metrics.items()} == {"a": 10.0, "b": 2.0, "c": 4.0}
    with pytest.raises(AttributeError):
        metrics.zzz
    with pytest.raises(TypeError, match="must be set to a Metric"):
        metrics.d = 1.0
    assert eval_metrics(metrics, "TEST_") == ({"a": 10.0, "b": 2.0, "c": 4.0},
                                              "TEST_a: 10.0000    TEST_b: 2.0000    TEST_c: 4.0000")


@pytest.mark.parametrize("value, expected", [
    ({"acc": 0.5, "note": "x"}, ({"acc": 0.5}, "acc: 0.5000    note: x")),
    (3, ({"value": 3.0}, "value: 3.0000")),
    ("fine", ({}, "fine")),
    (None, ({}, "")),
    ({"m": Metric()}, ({"m": 0.0}, "m: 0.0000")),
])
def test_eval_metrics_normalises_results(value, expected):
    assert eval_metrics(value) == expected


def test_ledger_wal_migrations_and_status(tmp_path):
    ledger = Ledger(str(tmp_path / "mlpipeline.db"))
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in ledger.conn.execute("SELECT name FROM migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]
    run = ledger.start_run(script="models/a.py", version="v", mode=Mode.RUN, host="h", params={"x": 1})
    assert run["status"] == "running" and run["ended_at"] is None
    ledger.set_status(run["id"], RunStatus.FAILED, exit_code=3)
    row = ledger.get_run(run["id"])
    assert (row["status"], row["exit_code"]) == ("failed", 3) and row["ended_at"] is not None
    with pytest.raises(ValueError):
        ledger.update_run(run["id"], status="succeeded")
    ledger.close()
    Ledger(str(tmp_path / "mlpipeline.db")).close()  # reopening applies nothing twice


def test_ledger_refuses_newer_schema(tmp_path):
    path = tmp_path / "mlpipeline.db"
    Ledger(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO migrations VALUES ('9999_future', 0)")
    with pytest.raises(LedgerError, match="newer mlpipeline"):
        Ledger(str(path))


def test_corrupt_ledger_is_refused_and_kept(project):
    from helpers import tracer

    project.script("a.py", tracer({"v": {}}))
    project.configure(["a.py"])
    project.outputs.mkdir()
    junk = b"this is not a database" * 100
    (project.outputs / "mlpipeline.db").write_bytes(junk)
    result = project.run("-r")
    assert result.returncode == 2
    assert "mlpipeline.db: not a usable SQLite ledger" in result.stderr and "move it aside" in result.stderr
    assert (project.outputs / "mlpipeline.db").read_bytes() == junk
    assert project.trace() == []


def test_help_imports_no_heavy_modules():
    code = ("import sys\nfrom mlpipeline.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'tensorflow', 'tabulate', 'watchdog', 'ray', 'starlette', 'uvicorn',\n"
            "                     'jinja2', 'plotly', 'torch', 'pandas', 'mlflow') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: mlpipeline" in out
    assert "HEAVY []" in out


def test_init_creates_a_project_that_passes_test_mode(tmp_path):
    target = tmp_path / "newproj"
    result = subprocess.run([sys.executable, "-m", "mlpipeline", "init", str(target)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    test = subprocess.run([sys.executable, "-m", "mlpipeline", "-C", str(target)], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    assert "3 succeeded, 0 failed" in test.stderr
    again = subprocess.run([sys.executable, "-m", "mlpipeline", "init", str(target)], capture_output=True, text=True)
    assert again.returncode == 2 and "already has mlp.config" in again.stderr


def test_cli_status_choices_match_the_ledger():
    from mlpipeline.cli import RUN_STATUSES
    from mlpipeline.store.ledger import RunStatus

    assert RUN_STATUSES == tuple(s.value for s in RunStatus)


def test_section_header_may_carry_a_comment_and_timeout_must_be_finite(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("[MLP] ; settings\nuse_blacklist = False\n[WHITELISTED_MODELS]  # queue\na.py\n")
    config = read_queue_config(str(path))
    assert [e.name for e in config.whitelist] == ["a.py"]
    path.write_text("[MLP]\ntimeout = nan\n")
    with pytest.raises(ConfigError, match=":2: timeout = 'nan' is not a positive number"):
        read_queue_config(str(path))
