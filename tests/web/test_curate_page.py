"""A run's tags and note, edited on its page in a real browser (Debian's chromium through Playwright),
written to the real ledger of a real run (this module's own lab project: its edits touch no other test);
deleting a run from its page, and the runs page's clean-up panel (mlpipeline gc) removing its files."""
from __future__ import annotations

import os
import re
import urllib.error
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_run_page_adds_and_removes_tags_and_edits_the_note(page: Any, lab: Any, lab_server: Any) -> None:
    from playwright.sync_api import expect

    page.goto(lab_server.entry("/runs/2"))
    chips = page.locator("#tags .tag")
    expect(chips).to_have_count(0)
    for tag in ("baseline", "odd"):
        page.fill("#tag-input", tag)
        page.click("#tag-form button[type=submit]")
        expect(page.locator(f"#tags .tag[data-tag='{tag}']")).to_be_visible()
    page.click("#tags button.untag[data-tag='odd']")
    expect(chips).to_have_count(1)
    expect(chips.first).to_have_attribute("data-tag", "baseline")
    page.fill("#note-input", "the <b>reference</b> run")
    page.click("#note-form button[type=submit]")
    expect(page.locator("#toast")).to_have_text(re.compile("note saved"))
    page.reload()
    expect(chips).to_have_count(1)
    expect(page.locator("#note-input")).to_have_value("the <b>reference</b> run")
    with lab.db() as conn:
        assert [tuple(r) for r in conn.execute("SELECT run_id, tag FROM run_tags")] == [(2, "baseline")]
        assert conn.execute("SELECT note FROM runs WHERE id = 2").fetchone()[0] == "the <b>reference</b> run"


def test_run_page_deletes_the_run_and_show_deleted_lists_it(page: Any, lab: Any, lab_server: Any) -> None:
    from playwright.sync_api import expect

    page.goto(lab_server.entry("/runs/3"))
    expect(page.locator("#deleted-notice")).to_be_hidden()
    page.click("#delete")
    expect(page.locator("#delete-confirm")).to_be_visible()
    page.click("#delete-no")  # asked, and kept
    expect(page.locator("#delete-confirm")).to_be_hidden()
    with lab.db() as conn:
        assert conn.execute("SELECT deleted_at FROM runs WHERE id = 3").fetchone()[0] is None
    page.click("#delete")
    page.click("#delete-yes")
    expect(page.locator("#deleted-notice")).to_be_visible()
    expect(page.locator("#toast")).to_have_text(re.compile("run 3 deleted"))
    expect(page.locator("#run-deleted")).to_have_text("deleted")
    expect(page.locator("#delete")).to_have_count(0)
    with lab.db() as conn:
        assert conn.execute("SELECT deleted_at FROM runs WHERE id = 3").fetchone()[0] is not None

    page.goto(lab_server.base + "/")
    expect(page.locator("#runs tr[data-run='2']")).to_be_visible()
    expect(page.locator("#runs tr[data-run='3']")).to_have_count(0)
    page.check("#show-deleted")  # submits the filters with all=1
    expect(page).to_have_url(re.compile(r"all=1"))
    expect(page.locator("#runs tr[data-run='3'] td[data-col='status']")).to_contain_text("(deleted)")
    expect(page.locator("#runs tr[data-run='2'] .deleted-mark")).to_have_count(0)


def test_clean_up_panel_shows_the_dry_run_then_frees_the_deleted_runs_files(page: Any, lab: Any,
                                                                           lab_server: Any) -> None:
    from playwright.sync_api import expect

    from mlpipeline.commands_curate import _bytes
    from mlpipeline.plan.config import find_project
    from mlpipeline.read.gc import plan_gc

    lab_server.api("/api/runs/1/delete", {})  # idempotent: the test needs a deleted run, in any order
    with lab.db() as conn:
        gone = dict(conn.execute("SELECT run_dir, model_dir FROM runs WHERE id = 1").fetchone())
        kept = [tuple(r) for r in conn.execute("SELECT id, model_dir FROM runs WHERE deleted_at IS NULL "
                                               "AND model_dir IS NOT NULL")]
    assert gone["run_dir"] and os.path.isdir(gone["run_dir"]) and kept
    assert all(os.path.isdir(path) for _, path in kept)
    plan = plan_gc(find_project(str(lab.root)), allow_runner=True)  # what mlpipeline gc --dry-run prints
    expected = {row["what"]: row for row in plan.summary()}
    planned = [item.path for item in plan.model_dirs + plan.run_dirs]
    assert os.path.normpath(gone["run_dir"]) in planned and expected["run folders"]["count"] >= 1

    page.goto(lab_server.entry("/"))
    page.click("#cleanup summary")
    for what in ("model dirs", "run folders", "cached outputs"):
        row = page.locator(f"#gc-plan tr[data-what='{what}'] td")
        expect(row.nth(1)).to_have_text(str(expected[what]["count"]))
        expect(row.nth(2)).to_have_text(_bytes(expected[what]["bytes"]))
    page.click("#gc-run")
    expect(page.locator("#gc-done")).to_contain_text(f"{expected['run folders']['count']} run folder(s)")
    expect(page.locator("#gc-plan tr[data-what='run folders'] td").nth(1)).to_have_text("0")
    assert [path for path in planned if os.path.exists(path)] == []
    assert all(os.path.isdir(path) for _, path in kept), "gc took a kept run's model dir"
    with lab.db() as conn:
        assert "run_dir" in conn.execute("SELECT collected FROM runs WHERE id = 1").fetchone()[0]


def test_clean_up_is_refused_while_a_runner_works(live: Any, live_server: Any) -> None:
    pid = live.proc.pid
    with pytest.raises(urllib.error.HTTPError) as refused:
        live_server.api("/api/gc", {})
    assert refused.value.code == 409
    assert f"a runner (pid {pid} " in refused.value.read().decode()
    assert live_server.api("/api/gc")["empty"] is True  # the dry run is not refused
