// mlpipeline search page: a search as a whole (parallel coordinates, a scatter per parameter,
// the best so far, the ASHA rungs) from the page's own data, and the parameter importance
// ranking fetched apart. Strings from the ledger reach the page as textContent only.
"use strict";

(function () {
  const d = pageData();
  const config = {responsive: true, displaylogo: false};
  const margin = {t: 30, r: 20, b: 45, l: 60};
  const form = document.getElementById("search-form");
  for (const id of ["search-metric", "search-goal"]) {
    document.getElementById(id).addEventListener("change", () => form.submit());
  }

  function text(value) {
    if (value === null || value === undefined) return "(unset)";
    return typeof value === "string" ? value : JSON.stringify(value);
  }
  const shown = d.points.filter((p) => p.value !== null);
  // a parameter some point left unset, or set to something other than a number, is a category
  const numeric = {};
  for (const key of d.params) {
    numeric[key] = d.kinds[key] === "number" && shown.every((p) => typeof p.params[key] === "number");
  }

  // Parallel coordinates as SVG lines on a plain chart: Plotly's parcoords compiles its WebGL
  // shaders with eval, which the dashboard's Content-Security-Policy refuses.
  const VIRIDIS = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"];
  function axis(label, values, isNumber) {
    if (!isNumber) {
      const cats = [...new Set(values.map(text))].sort();
      const at = (v) => cats.length > 1 ? cats.indexOf(text(v)) / (cats.length - 1) : 0.5;
      return {label: label, at: at, ticks: cats.map((c) => [at(c), c])};
    }
    const finite = values.filter((v) => typeof v === "number" && isFinite(v));
    let low = Math.min(...finite), high = Math.max(...finite);
    const sorted = [...finite].sort((u, v) => u - v);
    const log = low > 0 && high / low >= 100 && sorted[sorted.length >> 1] < (low + high) / 10;  // log-spread
    const f = log ? Math.log10 : (v) => v;
    const [a, b] = [f(low), f(high)];
    const at = (v) => b > a ? (f(v) - a) / (b - a) : 0.5;
    const fmt = (v) => Number(v.toPrecision(4)).toString();
    return {label: label + (log ? " (log)" : ""), at: at, ticks: [[at(low), fmt(low)], [at(high), fmt(high)]]};
  }
  function parcoords() {
    const div = document.getElementById("parcoords");
    if (!shown.length) { div.textContent = "no point has a value of " + d.metric; return; }
    const values = shown.map((p) => p.value);
    const axes = d.params.map((key) => axis(key, shown.map((p) => p.params[key]), numeric[key]));
    axes.push(axis(d.metric, values, true));
    const low = Math.min(...values), high = Math.max(...values);
    const goodness = (v) => high > low ? (d.lower_is_better ? (high - v) / (high - low) : (v - low) / (high - low)) : 1;
    const bins = VIRIDIS.map(() => ({x: [], y: [], text: []}));
    shown.forEach((p) => {
      const bin = bins[Math.min(VIRIDIS.length - 1, Math.floor(goodness(p.value) * VIRIDIS.length))];
      axes.forEach((a, i) => {
        bin.x.push(i);
        bin.y.push(a.at(i < d.params.length ? p.params[d.params[i]] : p.value));
      });
      bin.x.push(null);
      bin.y.push(null);
    });
    const traces = bins.map((bin, i) => ({x: bin.x, y: bin.y, type: "scatter", mode: "lines", hoverinfo: "skip",
                                          line: {color: VIRIDIS[i], width: 1.2}, opacity: 0.7, showlegend: false,
                                          name: `band ${i + 1}`}));
    const last = axes.length - 1;  // the metric's axis, with each point's version on hover
    traces.push({x: shown.map(() => last), y: shown.map((p) => axes[last].at(p.value)), type: "scatter",
                 mode: "markers", text: shown.map((p) => `${p.version}: ${p.value}`), hoverinfo: "text",
                 showlegend: false, name: d.metric,
                 marker: {size: 6, color: values, colorscale: "Viridis", reversescale: d.lower_is_better,
                          showscale: true, colorbar: {thickness: 12, title: {text: d.metric, side: "right"}}}});
    const annotations = [];
    axes.forEach((a, i) => {
      for (const [y, label] of a.ticks) {
        annotations.push({x: i, y: y, text: label, showarrow: false, xanchor: "right", xshift: -4,
                          font: {size: 10, color: "#65707d"}});
      }
    });
    const layout = {height: 380, margin: {t: 20, r: 20, b: 50, l: 50}, hovermode: "closest",
                    xaxis: {tickvals: axes.map((_, i) => i), ticktext: axes.map((a) => a.label), zeroline: false,
                            showgrid: true, gridcolor: "#9aa4ae", range: [-0.4, last + 0.2]},
                    yaxis: {range: [-0.05, 1.05], showticklabels: false, showgrid: false, zeroline: false},
                    annotations: annotations};
    whenPlotly((Plotly) => Plotly.newPlot(div, traces, layout, config));
  }

  function scatters() {
    const box = document.getElementById("scatters");
    if (!box) return;
    for (const key of d.params) {
      const div = document.createElement("div");
      div.className = "chart scatter";
      div.dataset.param = key;
      box.appendChild(div);
      const traces = [];
      for (const status of [...new Set(shown.map((p) => p.status))]) {
        const mine = shown.filter((p) => p.status === status);
        traces.push({x: mine.map((p) => numeric[key] ? p.params[key] : text(p.params[key])),
                     y: mine.map((p) => p.value), text: mine.map((p) => p.version), name: status,
                     type: "scatter", mode: "markers",
                     marker: {size: 7, opacity: 0.8, symbol: status === "succeeded" ? "circle" : "x"}});
      }
      const layout = {height: 260, margin: margin, showlegend: traces.length > 1,
                      xaxis: {title: {text: key}, type: numeric[key] ? "-" : "category"},
                      yaxis: {title: {text: d.metric}}};
      whenPlotly((Plotly) => Plotly.newPlot(div, traces, layout, config));
    }
  }

  function bestSoFar() {
    const div = document.getElementById("best-so-far");
    const done = d.points.filter((p) => p.value !== null && p.status === "succeeded");
    const traces = [
      {x: done.map((p) => p.index + 1), y: done.map((p) => p.value), text: done.map((p) => p.version),
       name: "each point", type: "scatter", mode: "markers", marker: {size: 6, opacity: 0.6}},
      {x: d.points.map((p) => p.index + 1), y: d.best_so_far, name: "best so far", type: "scatter",
       mode: "lines", line: {shape: "hv", width: 2}},
    ];
    const layout = {height: 320, margin: margin, xaxis: {title: {text: "point (in start order)"}},
                    yaxis: {title: {text: d.metric}}};
    whenPlotly((Plotly) => Plotly.newPlot(div, traces, layout, config));
  }

  function rungs() {
    const div = document.getElementById("rungs-chart");
    if (!div || !d.rungs) return;
    const on = [], off = [];
    for (const rung of d.rungs.rungs) {
      for (const p of rung.points) (p.stopped ? off : on).push({step: rung.step, value: p.value, version: p.version});
    }
    const trace = (points, name, symbol) => ({x: points.map((p) => p.step), y: points.map((p) => p.value),
                                              text: points.map((p) => p.version), name: name, type: "scatter",
                                              mode: "markers", marker: {symbol: symbol, size: 8, opacity: 0.75}});
    const layout = {height: 320, margin: margin, xaxis: {title: {text: "step (rung)"}, tickvals: d.rungs.steps},
                    yaxis: {title: {text: d.rungs.metric}}};
    whenPlotly((Plotly) => Plotly.newPlot(div, [trace(on, "went on", "circle"), trace(off, "stopped here", "x")],
                                          layout, config));
  }

  async function importance() {
    const box = document.getElementById("importance");
    const url = `/api/importance?script=${encodeURIComponent(d.script)}&search=${encodeURIComponent(d.search)}` +
                `&metric=${encodeURIComponent(d.metric)}`;
    let body;
    try {
      const response = await fetch(url, {credentials: "same-origin"});
      body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
    } catch (e) {
      box.textContent = "";
      const p = document.createElement("p");
      p.className = "empty";
      p.id = "importance-error";
      p.textContent = e.message;
      box.appendChild(p);
      return;
    }
    box.textContent = "";
    const note = document.createElement("p");
    note.className = "subtitle";
    note.id = "importance-method";
    note.textContent = (body.method === "fanova" ? "fANOVA (Optuna)" : "binned variance (epsilon squared)") +
      ` over ${body.runs} succeeded runs` + (body.note ? ` — ${body.note}` : "");
    box.appendChild(note);
    const table = document.createElement("table");
    table.id = "importance-table";
    table.className = "importance";
    const head = table.createTHead().insertRow();
    for (const [label, cls] of [["#", "num"], ["parameter", ""], ["importance", ""], ["", "num"]]) {
      const th = document.createElement("th");
      th.textContent = label;
      if (cls) th.className = cls;
      head.appendChild(th);
    }
    const rows = table.createTBody();
    body.ranking.forEach((r, i) => {
      const tr = rows.insertRow();
      tr.dataset.param = r.param;
      const rank = tr.insertCell();
      rank.className = "num";
      rank.textContent = String(i + 1);
      const name = tr.insertCell();
      name.className = "param";
      name.textContent = r.param;
      const bar = tr.insertCell();
      const fill = document.createElement("div");
      fill.className = "bar";
      fill.style.width = `${Math.round(r.importance * 100)}%`;
      bar.appendChild(fill);
      const share = tr.insertCell();
      share.className = "num";
      share.textContent = `${(r.importance * 100).toFixed(1)} %`;
    });
    box.appendChild(table);
  }

  parcoords();
  scatters();
  bestSoFar();
  rungs();
  importance();
})();
