"""The search page, seeds on the compare page, and the dashboard's rough edges (issue 25), in
Debian's chromium against one real project: tests/fixtures/web/landscape.py (a 60-point search of
loss = (x - 0.3)**2 whose worse half ASHA prunes at step 3: x drives the metric, y and z do not) and
bandit.py (two configurations run with three seeds each, long metric names, a long error)."""
from __future__ import annotations

import math
import re
import shutil
import statistics
from typing import Any, Iterator

import pytest

from conftest import WEB_FIXTURES, Server
from helpers import Project

pytestmark = pytest.mark.browser

SEARCH = "/searches/models/landscape.py/s"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = Project(tmp_path_factory.mktemp("searched") / "proj")
    proj.write("mlp.config", "[MLP]\nmodels_dir = models\n")
    proj.models.mkdir(parents=True)
    for name in ("bandit.py", "landscape.py"):
        shutil.copy(WEB_FIXTURES / name, proj.models / name)
    proj.configure(["bandit.py", "landscape.py"])
    done = proj.run("-r", "-n", "-j", "4")
    assert done.returncode == 1, done.stderr[-3000:]  # bandit's 'broken' fails on purpose
    statuses = [r["status"] for r in proj.runs() if r["script"] == "models/landscape.py"]
    assert len(statuses) == 60 and statuses.count("pruned") >= 10 and statuses.count("succeeded") >= 10, statuses
    return proj


@pytest.fixture(scope="module")
def server(searched: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(searched, tmp_path_factory.mktemp("searched-server"))
    yield srv
    srv.stop()


def test_a_60_point_search_page_draws_every_view_and_ranks_x_first(page: Any, server: Server) -> None:
    page.goto(server.entry(SEARCH))
    expect(page.locator("#search-counts")).to_contain_text("60 points")
    # parallel coordinates: one line per point with a value, across x, y, z and the metric
    expect(page.locator("#parcoords.js-plotly-plot")).to_have_count(1)
    axes = page.eval_on_selector("#parcoords.js-plotly-plot", "c => c.layout.xaxis.ticktext")
    assert [a.split(" (")[0] for a in axes] == ["x", "y", "z", "test/loss"]  # (log) where values spread so
    expect(page.locator("#parcoords .scatterlayer .trace")).not_to_have_count(0)
    # a scatter per parameter, the best so far, the rungs
    assert page.eval_on_selector_all("#scatters .chart", "cs => cs.map(c => c.dataset.param)") == ["x", "y", "z"]
    expect(page.locator("#scatters .js-plotly-plot")).to_have_count(3)
    best = page.eval_on_selector("#best-so-far.js-plotly-plot", "c => c.data[1].y")
    finite = [v for v in best if v is not None]
    assert len(best) == 60 and finite == sorted(finite, reverse=True)  # never gets worse
    expect(page.locator("#rungs-chart.js-plotly-plot .scatterlayer .trace")).to_have_count(2)
    rung = page.locator("#rungs tbody tr").first.locator("td")
    expect(rung.first).to_have_text("3")
    assert int(rung.nth(1).inner_text()) == 60 and int(rung.nth(2).inner_text()) >= 10
    # the importance ranking: x, the parameter that drives the metric, above y and z
    expect(page.locator("#importance-table tbody tr")).to_have_count(3)
    params = page.locator("#importance-table tbody td.param").all_inner_texts()
    assert params[0] == "x" and sorted(params[1:]) == ["y", "z"]
    expect(page.locator("#importance-method")).to_contain_text("fANOVA")

    # choosing another metric redraws the page for it; the same answers come as JSON
    page.locator("#search-metric").select_option("val/loss")
    expect(page.locator("#search-best")).to_contain_text("val/loss")
    detail = server.api("/api/searches/models/landscape.py/s?metric=val/loss")
    assert detail["metric"] == "val/loss" and len(detail["points"]) == 60 and detail["rungs"]["steps"] == [3]
    ranked = server.api("/api/importance?script=landscape.py&search=s&metric=test/loss&method=binned")
    assert ranked["method"] == "binned" and ranked["ranking"][0]["param"] == "x"


def test_compare_opens_on_the_first_script_with_seeds_grouped_floats_rounded_and_the_best_marked(
        page: Any, server: Server) -> None:
    page.goto(server.entry("/compare"))
    expect(page.locator("#compare-script")).to_have_value("models/bandit.py")
    expect(page.locator("#compare-metric")).to_have_value("train/reward")  # the first training curve
    table = page.locator("#compare-table")
    # every number to 4 significant digits
    for text in table.locator("tr.metric td").all_inner_texts():
        assert not text.strip() or len(re.sub(r"[^0-9]", "", text.lstrip("-").lstrip("0.").split("e")[0])) <= 4, text
    # the best of each metric marked: the highest reward, the lowest error; a tie marks nothing
    runs = {r["version"]: r for r in server.api("/api/compare?script=bandit.py")["versions"]}
    rewards = {v: r["metrics"]["test/reward"] for v, r in runs.items() if "test/reward" in r["metrics"]}
    for label, pick in (("test/reward", max), ("test/mean_absolute_error_of_predictions", min)):
        row = table.locator("tr.metric", has=page.locator("th", has_text=re.compile(f"^{re.escape(label)}$")))
        expect(row.locator("td.best")).to_have_count(1)
        column = page.eval_on_selector_all("#compare-table tr.metric", f"""rows => {{
            const row = rows.find(r => r.cells[0].textContent === {label!r});
            return [...row.cells].findIndex(c => c.classList.contains('best')); }}""")
        heads = [(t.split() or [""])[0] for t in table.locator("thead th").all_inner_texts()]
        values = {v: runs[v]["metrics"][label] for v in rewards}
        assert heads[column] == pick(values, key=values.get)
    tie = table.locator("tr.metric", has=page.locator("th", has_text=re.compile(r"^test/calibration_error$")))
    expect(tie.locator("td.best")).to_have_count(0)
    # seeds: the two configurations as mean ± std, and a band around each mean curve
    groups = page.locator("#seed-groups tbody tr")
    expect(groups).to_have_count(2)
    high = [rewards[f"high-s{seed}"] for seed in range(3)]
    cell = groups.nth(1).locator("td").nth(3 + 3)  # versions, seed, runs, then the metrics (test/reward 4th)
    mean, std = (float(t) for t in re.findall(r"[-0-9.e]+", cell.inner_text()))
    assert math.isclose(mean, statistics.mean(high), rel_tol=1e-3) and math.isclose(std, statistics.stdev(high),
                                                                                     rel_tol=0.05)
    expect(page.locator("#compare-chart.js-plotly-plot")).to_have_count(1)
    filled = page.eval_on_selector("#compare-chart.js-plotly-plot", "c => c.data.filter(t => t.fill).length")
    assert filled == 2  # one band per configuration
    names = page.eval_on_selector("#compare-chart.js-plotly-plot", "c => c.data.map(t => t.name)")
    assert any("mean ± std" in n for n in names) and "broken train" in names
    expect(page.locator("#search-links a", has_text="all versions")).to_have_attribute(
        "href", "/searches/models/bandit.py/all")


def test_runs_headers_wrap_only_between_words_and_the_error_shows_in_full(page: Any, server: Server) -> None:
    page.goto(server.entry("/?script=models/bandit.py"))
    heads = page.eval_on_selector_all("#runs thead th a", """links => links.map(a => {
        const lines = {};  // the header's rendered lines: their widths by their top
        for (const r of a.getClientRects()) lines[Math.round(r.top)] = (lines[Math.round(r.top)] || 0) + r.width;
        const widths = Object.values(lines).filter(w => w > 0);
        return {text: a.textContent, lines: widths.length, narrowest: Math.min(...widths)}; })""")
    long = [h for h in heads if "balanced_accuracy" in h["text"]]
    assert long, heads
    for head in heads:  # never a character a line: at most a line per '/' or '_' part, each wider than 3 letters
        parts = len(re.split(r"(?<=[/_])", head["text"].strip(" ▲▼")))
        assert head["lines"] <= parts and (head["lines"] == 1 or head["narrowest"] > 20), head
    error = page.locator("#runs tbody td[data-col=error].error-cell").first
    expect(error).to_contain_text("rather than cut off at its edge")
    box = error.bounding_box()
    assert box and box["x"] + box["width"] <= 1300, box  # inside the viewport, without scrolling sideways
    assert page.eval_on_selector("#runs tbody td[data-col=error].error-cell",
                                 "c => c.scrollWidth <= c.clientWidth && getComputedStyle(c).textOverflow !== 'ellipsis'")


def test_a_pruned_run_reads_pruned_in_a_neutral_colour_and_a_script_without_predict_offers_none(
        page: Any, server: Server, searched: Project) -> None:
    pruned = next(r for r in searched.runs() if r["status"] == "pruned")
    page.goto(server.entry(f"/runs/{pruned['id']}"))
    heading = page.locator("#stopped h2")
    expect(heading).to_have_text("Pruned")
    expect(page.locator("#run-error")).to_contain_text("pruned by ASHA at step 3")
    assert page.eval_on_selector("#stopped h2", "h => getComputedStyle(h).color") != "rgb(179, 38, 30)"
    expect(page.locator("h2", has_text="Error")).to_have_count(0)
    expect(page.locator("#predict")).to_have_count(0)  # landscape.py defines no predict
    done = next(r for r in searched.runs() if r["status"] == "succeeded" and r["script"] == "models/landscape.py")
    html = page.request.get(server.base + f"/runs/{done['id']}").text()  # the page as served, not drawn
    assert 'id="run-status">succeeded' in html and 'id="predict"' not in html
