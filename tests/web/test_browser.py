"""The dashboard in a real browser (Debian's chromium through Playwright),
against ledgers written by real runs of tests/fixtures/web/curves.py and
evil.py, and a real runner with ``--watch`` steered from the queue page.

Waits are on conditions (selectors, ``expect``, the ledger), never fixed sleeps.
Each test keeps screenshots in $MLP_SCREENSHOTS (or a pytest temp folder):
runs.png, run.png, compare.png and queue.png there are the pictures in
docs/screenshots/; copy them over when a page's look changes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from helpers import pid_alive, wait_for

pytestmark = pytest.mark.browser

EVIL_VERSION = "<img src=x onerror=window.__xss=1>"
EVIL_METRIC = "<img src=x onerror=window.__xss='metric'>"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def snap(page: Any, path: Path) -> None:
    """A viewport screenshot (bytes written here: Playwright's own file I/O runs
    in executor threads that outlive the test and read as leaked)."""
    path.write_bytes(page.screenshot())


def upload(page: Any, selector: str, path: Path) -> None:
    """Put ``path`` into the file input ``selector``, as bytes (see ``snap``)."""
    page.locator(selector).set_input_files({"name": path.name, "mimeType": "application/octet-stream",
                                            "buffer": path.read_bytes()})


def column(page: Any, col: str) -> List[str]:
    """The texts of one column of the runs table, top to bottom."""
    return [t.strip() for t in page.locator(f"#runs tbody td[data-col='{col}']").all_inner_texts()]


def trace_counts(page: Any, selector: str) -> List[int]:
    """For each plotly chart under ``selector``: how many line traces it drew."""
    return page.eval_on_selector_all(
        f"{selector} .js-plotly-plot",
        "charts => charts.map(c => c.querySelectorAll('.scatterlayer .trace').length)")


def mark_page(page: Any) -> None:
    """A flag that a reload (or a navigation) would wipe: live updates must keep it."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__noReload === true"), "the page was reloaded; it should update in place"


def assert_no_xss(page: Any) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined", \
        f"markup from the ledger ran as script: window.__xss = {page.evaluate('window.__xss')!r}"


# -- runs -----------------------------------------------------------------------------------------------------------

def test_token_address_sets_an_httponly_cookie_and_lists_every_run(page: Any, lab_server: Any, shots: Path) -> None:
    page.goto(lab_server.url)
    assert page.url == lab_server.base + "/", "the token should leave the address bar once the cookie is set"
    cookie = {c["name"]: c for c in page.context.cookies()}[f"mlpipeline_token_{lab_server.base.rsplit(':', 1)[1]}"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    expect(page.locator("#run-count")).to_have_text(re.compile(r"^7 runs"))
    assert column(page, "id") == ["7", "6", "5", "4", "3", "2", "1"]
    expect(page.locator("#live")).to_have_text("live")
    snap(page, shots / "runs-all.png")
    page.goto(lab_server.base + "/?script=models/curves.py")
    expect(page.locator("#run-count")).to_have_text(re.compile(r"^6 runs"))
    snap(page, shots / "runs.png")

    page.goto(lab_server.base + "/runs/999")
    expect(page.locator("#error-message")).to_contain_text("run '999' not found")


def test_runs_filter_sort_page_and_column_picker(page: Any, lab_server: Any) -> None:
    page.goto(lab_server.entry("/"))
    form = page.locator("#filters")

    form.locator("select[name=script]").select_option("models/evil.py")
    form.locator("button[type=submit]").click()
    expect(page.locator("#run-count")).to_have_text(re.compile(r"^1 run\b"))
    assert column(page, "version") == [EVIL_VERSION]

    page.goto(lab_server.base + "/")
    form.locator("select[name=mode]").select_option("test")
    form.locator("button[type=submit]").click()
    expect(page.locator("#run-count")).to_have_text(re.compile(r"^3 runs"))
    assert set(column(page, "mode")) == {"test"}

    page.goto(lab_server.base + "/")
    form.locator("input[name=q]").fill("fast")
    form.locator("input[name=q]").press("Enter")
    expect(page.locator("#run-count")).to_have_text(re.compile(r"^2 runs"))
    assert column(page, "version") == ["fast", "fast"]

    # sorting: by version (the first click sorts descending, the second ascending), then by a metric
    page.goto(lab_server.base + "/?mode=run")
    expect(page.locator("#run-count")).to_have_text(re.compile(r"^4 runs"))
    assert column(page, "id") == ["4", "3", "2", "1"]
    page.locator("#runs thead th[data-col=version] a").click()
    expect(page.locator("#runs thead th[data-col=version] a")).to_have_text("version ▼")
    assert column(page, "version") == ["slow", "long", "fast", EVIL_VERSION]
    page.locator("#runs thead th[data-col=version] a").click()
    expect(page.locator("#runs thead th[data-col=version] a")).to_have_text("version ▲")
    assert column(page, "version") == [EVIL_VERSION, "fast", "long", "slow"]
    assert "mode=run" in page.url, "sorting must keep the filters"
    page.goto(lab_server.base + "/?script=models/curves.py&mode=run&sort=test/acc&desc=1")
    assert column(page, "version") == ["slow", "long", "fast"]   # acc 0.9, 0.8, 0.7
    assert column(page, "test/acc") == ["0.9", "0.8", "0.7"]

    # paging
    page.goto(lab_server.base + "/?limit=3")
    expect(page.locator("#run-count")).to_have_text("7 runs, page 1 of 3")
    assert column(page, "id") == ["7", "6", "5"]
    page.locator(".pager a[rel=next]").click()
    expect(page.locator("#run-count")).to_have_text("7 runs, page 2 of 3")
    assert column(page, "id") == ["4", "3", "2"]
    page.locator(".pager a[rel=prev]").click()
    expect(page.locator("#run-count")).to_have_text("7 runs, page 1 of 3")

    # the column picker hides a column and remembers it across a reload
    header = page.locator("#runs thead th[data-col=started]")
    expect(header).to_be_visible()
    page.locator("#column-picker summary").click()
    page.locator("#column-choices input[data-col=started]").uncheck()
    expect(header).to_be_hidden()
    expect(page.locator("#runs tbody td[data-col=started]").first).to_be_hidden()
    page.reload()
    expect(page.locator("#runs thead th[data-col=started]")).to_be_hidden()
    expect(page.locator("#runs thead th[data-col=duration]")).to_be_visible()


# -- one run ----------------------------------------------------------------------------------------------------------

def test_run_page_draws_each_curve_and_shows_results_log_and_files(page: Any, lab_server: Any, shots: Path) -> None:
    page.goto(lab_server.entry("/runs/1"))
    expect(page.locator("#run-status")).to_have_text("succeeded")
    charts = page.locator("#charts .js-plotly-plot")
    expect(charts).to_have_count(2)                     # loss and acc
    expect(page.locator("#charts .scatterlayer .trace")).to_have_count(2)
    assert page.eval_on_selector_all("#charts .js-plotly-plot",
                                     "cs => cs.every(c => c.querySelector('svg.main-svg'))")
    assert sorted(page.eval_on_selector_all("#charts .chart", "cs => cs.map(c => c.dataset.metric)")) == \
        ["acc", "loss"]
    assert trace_counts(page, "#charts") == [1, 1]      # one split (train) each
    assert page.eval_on_selector_all("#charts .scatterlayer .trace path.js-line",
                                     "ps => ps.every(p => (p.getAttribute('d') || '').length > 20)")

    expect(page.locator("#params")).to_contain_text("rate")
    expect(page.locator("#params tr", has_text="rate")).to_contain_text("1.0")
    expect(page.locator("#metrics")).to_contain_text("acc")
    results = page.locator("#results .result")
    expect(results).to_have_count(2)                    # train and test
    expect(results.first.locator("table.data tbody tr")).to_have_count(2)
    expect(results.first.locator("table.data")).to_contain_text("cat")
    expect(results.first.locator(".result-text")).to_have_text("rate 1.0")
    expect(page.locator("#results .graphs .js-plotly-plot")).to_have_count(2)
    expect(page.locator("#results .graphs .js-plotly-plot .barlayer .trace")).to_have_count(2)

    expect(page.locator("#log")).to_contain_text("trained with rate 1.0")
    expect(page.locator("#files")).to_contain_text("ckpt/weights.txt")
    expect(page.locator("#zip")).to_have_attribute("href", "/api/runs/1/files.zip")
    expect(page.locator("#cancel")).to_have_count(0)    # it has finished
    expect(page.locator("#rerun")).to_be_visible()
    snap(page, shots / "run.png")


def test_predict_on_an_uploaded_input_file(page: Any, lab_server: Any, tmp_path: Path, shots: Path) -> None:
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1\n2.5\n-4\n")
    page.goto(lab_server.entry("/runs/1"))
    upload(page, "#predict-file", numbers)
    page.locator("#predict-form button[type=submit]").click()
    rows = page.locator("#predict-output table tbody tr")
    expect(rows).to_have_count(3)
    cells = page.eval_on_selector_all("#predict-output table tbody tr",
                                      "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert cells == [["1", "2"], ["2.5", "5"], ["-4", "-8"]]
    expect(page.locator("#predict-output table thead")).to_have_text(re.compile(r"x\s*doubled"))
    expect(page.locator("#predict-output .result-text")).to_have_text("3 numbers from input.txt")
    expect(page.locator("#predict-output .js-plotly-plot .scatterlayer .trace")).to_have_count(1)
    page.locator("#predict").scroll_into_view_if_needed()
    snap(page, shots / "predict.png")


# -- compare ----------------------------------------------------------------------------------------------------------

def test_compare_versions_diff_only_and_a_metric_chart(page: Any, lab_server: Any, shots: Path) -> None:
    page.goto(lab_server.entry("/compare"))
    page.locator("#compare-script").select_option("models/curves.py")
    page.locator("form.filters button[type=submit]").first.click()
    table = page.locator("#compare-table")
    expect(table.locator("thead")).to_contain_text("slow")
    heads = [t.split()[0] for t in table.locator("thead th").all_inner_texts()[1:]]
    assert heads == ["slow", "fast", "long"]

    rate = table.locator("tr", has=page.locator("th", has_text=re.compile(r"^rate$")))
    same = table.locator("tr", has=page.locator("th", has_text=re.compile(r"^batch_size$")))
    expect(rate.locator("td")).to_have_text(["1.0", "3.0", "2.0"])
    expect(same).to_be_visible()
    page.locator("#diff-only").check()
    expect(same).to_be_hidden()
    expect(rate).to_be_visible()
    expect(table.locator("tr.same")).not_to_have_count(0)
    for row in table.locator("tr.same").all():
        expect(row).to_be_hidden()
    page.locator("#diff-only").uncheck()
    expect(same).to_be_visible()

    expect(page.locator("#groups tbody tr")).to_have_count(3)
    page.locator("#compare-metric").select_option("train/acc")   # a change submits the form
    expect(page.locator("#compare-chart .scatterlayer .trace")).to_have_count(3)
    assert "metric=train%2Facc" in page.url
    names = page.eval_on_selector_all("#compare-chart .legend .traces text.legendtext",
                                      "ts => ts.map(t => t.textContent)")
    assert names == ["slow train", "fast train", "long train"]

    page.locator("#compare-metric").select_option("test/acc")   # no curve: one bar per version
    expect(page.locator("#compare-chart .barlayer .trace")).to_have_count(3)

    # a curve with no final value (loss) is named in the address; the select shows it chosen
    page.goto(lab_server.base + "/compare?script=models/curves.py&metric=loss")
    expect(page.locator("#compare-chart .scatterlayer .trace")).to_have_count(3)
    expect(page.locator("#compare-metric")).to_have_value("loss")
    expect(page.locator("#compare-table")).to_contain_text("train/loss (last)")
    snap(page, shots / "compare.png")


# -- markup from the ledger stays text ----------------------------------------------------------------------------

def test_markup_in_names_params_metrics_and_output_stays_text(page: Any, lab_server: Any, shots: Path) -> None:
    page.goto(lab_server.entry("/runs/4"))
    expect(page.locator("h1 + .subtitle")).to_contain_text(EVIL_VERSION)
    expect(page.get_by_text("<img src=x onerror=\"window.__xss='param'\">", exact=True)).to_be_visible()
    expect(page.locator("#params")).to_contain_text("<img src=x onerror=\"window.__xss='param'\">")
    expect(page.locator("#metrics")).to_contain_text("<b onmouseover=alert(1)>acc</b>")
    expect(page.locator("#log")).to_contain_text("<script>window.__xss = 'log'</script>")
    expect(page.locator("#results")).to_contain_text("<script>window.__xss='text'</script>")
    expect(page.locator("#results table.data thead").first).to_contain_text("<img src=x onerror=window.__xss='col'>")
    expect(page.locator("#results table.data tbody").first).to_contain_text("<script>window.__xss='cell'</script>")
    expect(page.locator("#charts .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#charts .gtitle")).to_have_text(EVIL_METRIC)
    assert page.locator("#params img, #metrics img, #metrics b, #log *, #results img, #results script, "
                        ".subtitle img").count() == 0
    page.locator("#metrics td", has_text="acc").first.hover()
    assert_no_xss(page)
    snap(page, shots / "xss-run.png")

    page.goto(lab_server.base + "/?script=models/evil.py")
    expect(page.locator("#runs tbody td[data-col=version]")).to_have_text(EVIL_VERSION)
    expect(page.get_by_text(EVIL_VERSION, exact=True)).to_be_visible()
    expect(page.locator("#runs thead")).to_contain_text("test/<b onmouseover=alert(1)>acc</b>")
    assert page.locator("#runs img, #runs b").count() == 0
    page.locator("#runs thead a", has_text="onmouseover").first.hover()
    assert_no_xss(page)

    page.goto(lab_server.base + "/compare?script=models/evil.py&metric=" + EVIL_METRIC.replace("'", "%27"))
    expect(page.locator("#compare-table thead")).to_contain_text(EVIL_VERSION)
    expect(page.locator("#compare-table")).to_contain_text("<img src=x onerror=\"window.__xss='param'\">")
    expect(page.locator("#compare-chart .scatterlayer .trace")).to_have_count(1)
    assert page.locator("#compare-table img, #groups img").count() == 0
    assert_no_xss(page)

    page.goto(lab_server.base + "/queue")
    expect(page.locator("#script-list")).to_contain_text("evil.py")
    assert_no_xss(page)


# -- uploads ----------------------------------------------------------------------------------------------------------

def test_upload_a_script_good_and_broken(page: Any, lab_server: Any, tmp_path: Path, shots: Path) -> None:
    good = tmp_path / "uploaded.py"
    good.write_text((Path(__file__).parent.parent / "fixtures" / "web" / "curves.py").read_text())
    broken = tmp_path / "broken.py"
    broken.write_text("from mlpipeline.utils import Versions\n\ndef oops(:\n    pass\n")

    page.goto(lab_server.entry("/queue"))
    mark_page(page)
    expect(page.locator("#script-list tr[data-script='uploaded.py']")).to_have_count(0)
    upload(page, "#upload-file", good)
    page.locator("#upload-form button[type=submit]").click()
    expect(page.locator("#upload-output .ok")).to_have_text(
        "models/uploaded.py: valid, versions slow, fast, long. Whitelist it in the table above to run it.")
    expect(page.locator("#script-list tr[data-script='uploaded.py']")).to_have_count(1)
    assert (lab_server.proj.models / "uploaded.py").read_text() == good.read_text()

    upload(page, "#upload-file", broken)
    page.locator("#upload-form button[type=submit]").click()
    expect(page.locator("#upload-output .error")).to_contain_text("broken.py")
    expect(page.locator("#upload-output")).to_contain_text("SyntaxError")
    snap(page, shots / "upload-broken.png")
    assert not (lab_server.proj.models / "broken.py").exists()

    upload(page, "#upload-file", good)     # the same name again: refused, not replaced
    page.locator("#upload-form button[type=submit]").click()
    expect(page.locator("#upload-output .error")).to_contain_text("uploaded.py already exists")
    assert_not_reloaded(page)


# -- steering a live runner -------------------------------------------------------------------------------------------

def test_whitelisting_on_the_queue_page_starts_the_script_live(page: Any, live_server: Any, live: Any,
                                                               shots: Path) -> None:
    page.goto(live_server.entry("/queue"))
    runs = page.context.new_page()          # the runs page, open beside it, follows as well
    runs.goto(live_server.base + "/")
    expect(runs.locator("#run-count")).to_have_text("0 runs")
    expect(runs.locator("#live")).to_have_text("live")
    mark_page(runs)
    expect(page.locator("#runner")).to_contain_text("runner alive")
    expect(page.locator("#nothing-running")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    row = page.locator("#script-list tr[data-script='curves.py']")
    expect(row).to_contain_text("—")
    mark_page(page)

    row.locator("button[data-action=whitelist]").click()
    expect(row.locator(".badge")).to_have_text("whitelisted")
    assert live.whitelisted("curves.py")
    # the runner notices the edit, runs slow and fast, then 'long', which stays running
    running = page.locator("#running tr[data-run]")
    expect(running).to_contain_text("long", timeout=30_000)
    expect(running.locator("td").nth(1)).to_have_text("models/curves.py")
    assert_not_reloaded(page)
    expect(runs.locator("#runs tbody tr")).to_have_count(3)
    assert column(runs, "version") == ["long", "fast", "slow"]
    expect(runs.locator("#runs tbody tr").first.locator(".badge")).to_have_text("running")
    assert_not_reloaded(runs)
    runs.close()
    ledger = {r["version"]: r["status"] for r in live.proj.runs()}
    assert ledger == {"slow": "succeeded", "fast": "succeeded", "long": "running"}, live.log()
    page.reload()   # the picture without the toast
    expect(page.locator("#running")).to_contain_text("long")
    snap(page, shots / "queue.png")


def test_pause_and_resume_show_live(page: Any, live_server: Any, live: Any, shots: Path) -> None:
    page.goto(live_server.entry("/queue"))
    expect(page.locator("#runner")).to_contain_text("runner alive")
    expect(page.locator("#paused")).to_have_count(0)
    mark_page(page)
    page.locator("#pause").click()
    expect(page.locator("#paused")).to_have_text("PAUSED", timeout=20_000)
    expect(page.locator("#resume")).to_be_visible()
    snap(page, shots / "paused.png")
    page.locator("#resume").click()
    expect(page.locator("#paused")).to_have_count(0, timeout=20_000)
    expect(page.locator("#pause")).to_be_visible()
    assert_not_reloaded(page)


@pytest.fixture
def long_run(live_server: Any, live: Any) -> Dict[str, Any]:
    """curves.py's 'long' version running on the live project (whitelisting it
    through the API if no earlier test did from the page)."""
    if not live.whitelisted("curves.py"):
        live_server.api("/api/queue", {"action": "whitelist", "script": "curves.py"})
    return live.wait(lambda: next((r for r in live.proj.runs(version="long", status="running")
                                   if r["child_pid"]), None), "curves.py long to run")


def test_cancelling_a_running_version_ends_its_process(page: Any, live_server: Any, live: Any,
                                                       long_run: Dict[str, Any], shots: Path) -> None:
    run_id, child = long_run["id"], long_run["child_pid"]
    assert pid_alive(child)
    page.goto(live_server.entry(f"/runs/{run_id}"))
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("#follow")).to_be_checked()
    expect(page.locator("#predict-unavailable")).to_contain_text("this one is running")
    expect(page.locator("#charts .js-plotly-plot")).to_have_count(2)
    # what the runner samples (CPU %, RSS) is drawn beside the training curves, not among them
    expect(page.locator("#system-charts .js-plotly-plot")).to_have_count(2, timeout=15_000)
    # the first step's points, drawn as markers (a lone point on a line would not show)
    for chart in page.locator("#charts .js-plotly-plot").all():
        expect(chart.locator(".scatterlayer .trace .points path")).not_to_have_count(0)
    mark_page(page)
    page.locator("#cancel").click()
    expect(page.locator("#toast")).to_contain_text(f"cancel requested for run {run_id}")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=20_000)
    expect(page.locator("#cancel")).to_have_count(0)
    assert_not_reloaded(page)
    snap(page, shots / "cancelled.png")
    assert live.proj.runs(id=run_id)[0]["status"] == "cancelled"
    wait_for(lambda: not pid_alive(child), timeout=10, what=f"the cancelled version's process {child} to end")

    page.goto(live_server.base + "/?status=cancelled")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs tbody td[data-col=version]")).to_have_text("long")
    page.goto(live_server.base + "/queue")
    expect(page.locator("#nothing-running")).to_be_visible()
