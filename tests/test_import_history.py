"""Importing the history of a project run with the original mlpipeline 1.x (real files it wrote)."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from mlpipeline.plan.config import find_project
from mlpipeline.core.errors import MLPipelineError
from mlpipeline.store.ledger import Ledger
from mlpipeline.compat.legacy_import import import_history


def written_in_utc(*fields: int):
    """A time stamped by the originals, which ran on a host whose zone was UTC."""
    return pytest.approx(datetime.datetime(*fields, tzinfo=datetime.timezone.utc).timestamp(), abs=1e-6)


def originals() -> Path:
    """The real files of the original tool: a copy of shared/fixtures/original-outputs
    kept in tests/fixtures (MLP_SHARED_DIR points at another shared/ folder)."""
    shared = os.environ.get("MLP_SHARED_DIR")
    folder = (Path(shared) / "fixtures" if shared else Path(__file__).resolve().parent / "fixtures") / "original-outputs"
    assert folder.is_dir(), f"{folder}: the original mlpipeline's outputs are missing"
    return folder


def load(project, fixture_set: str):
    """Copy one fixture set into the project's outputs folder and open its ledger."""
    shutil.copytree(originals() / fixture_set / "outputs", project.outputs)
    for path in project.outputs.iterdir():
        path.chmod(0o644)  # the shared copies are read-only; tests append to theirs
    return find_project(str(project.root)), Ledger(str(project.outputs / "mlpipeline.db"))


def imported(project) -> dict:
    return {r["version"]: r for r in project.runs()}


def metrics(project, run_id: int) -> dict:
    with project.db() as conn:
        return {(r["split"], r["name"]): r["value"]
                for r in conn.execute("SELECT * FROM metrics WHERE run_id = ?", (run_id,))}


def test_set_a_failed_version_and_object_repr_evals(project):
    proj, ledger = load(project, "a")
    report = import_history(proj, ledger)
    assert (report.imported, report.already_present, report.skipped, report.hosts) == (2, 0, 0, ["vm"])
    runs = imported(project)
    assert set(runs) == {"lr_mid", "lr_big"}  # lr_small never ran
    mid, big = runs["lr_mid"], runs["lr_big"]
    assert (mid["status"], big["status"]) == ("succeeded", "failed")
    for run in (mid, big):
        assert (run["mode"], run["host"], run["source"], run["script"]) == ("run", "vm", "imported",
                                                                           "models/classifier.py")
    assert big["error"] == "Exception: diverged at lr=0.9"
    assert mid["error"] is None
    assert mid["started_at"] == 1795392249.070124 and big["started_at"] == 1795392249.135483
    assert mid["ended_at"] == written_in_utc(2026, 11, 23, 0, 4, 9, 70604)
    assert big["ended_at"] == written_in_utc(2026, 11, 23, 0, 4, 9, 135689)  # its ERROR line in log-vm
    assert mid["source_key"] == "legacy:vm:models/classifier.py:lr_mid:1795392249.070124"
    params = json.loads(mid["params"])
    assert params["lr"] == 0.1 and params["model_dir_suffix"] == "-mid" and params["epoc_count"] == 2
    assert "DL object at 0x" in params["dataloader"]
    assert params["_legacy_summaries"] == {"model": "trained 20.0 steps"}
    assert json.loads(big["params"])["lr"] == 0.9  # from the log's Version_spec
    assert "Metric object at 0x7f889d60b410" in mid["eval_train_text"]
    assert metrics(project, mid["id"]) == {} and metrics(project, big["id"]) == {}
    assert [n for n in report.problems if "object reprs" in n] == [
        "output-vm:2: lr_mid: eval on train set holds object reprs, not numbers; kept as text, no metrics for those",
        "output-vm:2: lr_mid: eval on test set holds object reprs, not numbers; kept as text, no metrics for those",
    ]


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_times_are_aligned_when_importing_in_another_zone(project, monkeypatch, zone):
    proj, ledger = load(project, "a")
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert import_history(proj, ledger).imported == 2
    finally:
        monkeypatch.undo()
        time.tzset()
    runs = imported(project)
    assert (runs["lr_mid"]["status"], runs["lr_big"]["status"]) == ("succeeded", "failed")
    assert runs["lr_mid"]["ended_at"] == written_in_utc(2026, 11, 23, 0, 4, 9, 70604)
    assert runs["lr_big"]["ended_at"] == written_in_utc(2026, 11, 23, 0, 4, 9, 135689)


def test_set_b_formatted_metrics(project):
    proj, ledger = load(project, "b")
    report = import_history(proj, ledger)
    assert (report.imported, report.skipped, report.problems) == (1, 0, [])
    run = imported(project)["version2"]
    assert (run["status"], run["script"], run["host"]) == ("succeeded", "models/sample_model.py", "vm")
    assert run["eval_train_text"] == "TRAIN_a: 10.0000    TRAIN_b: 2.0000"
    assert run["eval_test_text"] == "TEST_a: 10.0000    TEST_b: 2.0000"
    assert metrics(project, run["id"]) == {("train", "a"): 10.0, ("train", "b"): 2.0,
                                           ("test", "a"): 10.0, ("test", "b"): 2.0}
    assert json.loads(run["params"])["epoc_count"] == 10


@pytest.mark.parametrize("fixture_set", ["a", "b"])
def test_importing_twice_adds_nothing(project, fixture_set):
    proj, ledger = load(project, fixture_set)
    first = import_history(proj, ledger)
    with project.db() as conn:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "metrics")]
    second = import_history(proj, Ledger(str(project.outputs / "mlpipeline.db")))
    with project.db() as conn:
        assert [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "metrics")] == counts
    assert (second.imported, second.already_present) == (0, first.imported)
    assert counts[0] == first.imported > 0


def test_malformed_lines_and_blocks_are_reported_and_the_rest_imported(project):
    proj, ledger = load(project, "a")
    with open(project.outputs / "history-vm", "a") as f:
        f.write("models/classifier.py::not-a-time\n")
    with open(project.outputs / "t_history-vm", "a") as f:
        f.write("models/classifier.py::lr_small::yesterday\n")
    output = project.outputs / "output-vm"
    header_line = len(output.read_text().splitlines()) + 2
    with open(output, "a") as f:
        f.write("\n[2026-11-23T00:05:00.000001]:ml-pipline: output: \n\t\tModel: models/classifier.py\n"
                "\t\tEval on train set: TRAIN_a: 1.0000\n\t\t-------------------------------------------\n"
                "\n[yesterday]:ml-pipline: output: \n\t\tModel: models/classifier.py\n\t\tVersion: lr_small\n")
    report = import_history(proj, ledger)
    assert report.problems[:4] == [
        "t_history-vm:3: expected script::version::start_timestamp; line skipped",
        "history-vm:2: expected script::mtime::version; line skipped",
        f"output-vm:{header_line}: output block has no Model: or Version: line; block skipped",
        f"output-vm:{header_line + 5}: block header has an unreadable time 'yesterday'; block skipped",
    ]
    assert report.skipped == 4 and report.imported == 2
    assert {v: r["status"] for v, r in imported(project).items()} == {"lr_mid": "succeeded", "lr_big": "failed"}


def test_a_start_with_no_end_and_no_error_is_interrupted(project):
    proj, ledger = load(project, "b")
    with open(project.outputs / "t_history-vm", "a") as f:
        f.write("models/sample_model.py::version1::1795391700.5\n")
    assert import_history(proj, ledger).imported == 2
    run = imported(project)["version1"]
    assert (run["status"], run["started_at"], run["ended_at"]) == ("interrupted", 1795391700.5, None)
    assert "t_history-vm:2" in run["error"] and "never finished" in run["error"]


def test_nothing_to_import_names_the_folder(project, tmp_path):
    proj = find_project(str(project.root))
    ledger = Ledger(str(tmp_path / "ledger.db"))
    project.outputs.mkdir()
    (project.outputs / "notes.txt").write_text("not the original's\n")
    with pytest.raises(MLPipelineError, match="nothing to import.*history-<host>") as info:
        import_history(proj, ledger)
    assert str(project.outputs) in str(info.value)
    with pytest.raises(MLPipelineError, match="no such folder"):
        import_history(proj, ledger, str(tmp_path / "missing"))


def test_import_history_through_the_cli(project):
    shutil.copytree(originals() / "a" / "outputs", project.outputs)
    for path in project.outputs.iterdir():
        path.chmod(0o644)
    first = project.run("import-history", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == [{"imported": 2, "already_present": 0, "skipped": 0}]
    assert "object reprs" in first.stderr  # the original's unreadable evals are reported, not hidden
    again = project.run("import-history")
    assert again.returncode == 0
    assert "imported 0 run(s); 2 already present" in again.stderr
    runs = json.loads(project.run("runs", "--format", "json").stdout)
    assert sorted((r["version"], r["status"]) for r in runs) == [("lr_big", "failed"), ("lr_mid", "succeeded")]
