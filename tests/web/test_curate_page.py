"""A run's tags and note, edited on its page in a real browser (Debian's chromium through Playwright),
written to the real ledger of a real run (this module's own lab project: its edits touch no other test)."""
from __future__ import annotations

import re
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
