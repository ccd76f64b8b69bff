// mlpipeline dashboard: live updates (server-sent events), charts (plotly.js,
// served by the dashboard itself) and the steering buttons. Every string from
// the ledger reaches the page either escaped by the server's templates or as
// textContent here — never as HTML.
"use strict";

const page = document.body.dataset.page;

function pageData(id) {
  const node = document.getElementById(id || "page-data");
  return node ? JSON.parse(node.textContent) : {};
}

function toast(text, bad) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, bad ? 9000 : 4000);
}

async function post(url, body, raw) {
  const options = {method: "POST", credentials: "same-origin", headers: {}};
  if (raw !== undefined) {
    options.body = raw;
    options.headers["Content-Type"] = "application/octet-stream";
  } else {
    options.body = JSON.stringify(body || {});
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {error: response.statusText}; }
  if (!response.ok) {
    const error = new Error(data.error || response.statusText);
    error.details = data.details;
    throw error;
  }
  return data;
}

async function refreshFragment(targetId) {
  const url = new URL(location.href);
  url.searchParams.set("fragment", "1");
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) return;
  // the fragment is rendered by the server's templates, every value escaped there
  document.getElementById(targetId).innerHTML = await response.text();
  document.dispatchEvent(new CustomEvent("fragment", {detail: targetId}));
}

// -- live updates ---------------------------------------------------------------------------------------------
const live = document.getElementById("live");
const handlers = {};
function onEvent(name, handler) { (handlers[name] = handlers[name] || []).push(handler); }
function connect() {
  const source = new EventSource("/api/events");
  for (const name of ["hello", "runs", "queue", "reload"]) {
    source.addEventListener(name, (event) => {
      live.textContent = "live";
      live.className = "live on";
      const data = JSON.parse(event.data);
      (handlers[name] || []).forEach((handler) => handler(data));
    });
  }
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  window.mlpEvents = source;
}
connect();

// -- plotting ---------------------------------------------------------------------------------------------------
function whenPlotly(fn) {
  if (window.Plotly) { fn(window.Plotly); return; }
  window.addEventListener("load", () => { if (window.Plotly) fn(window.Plotly); });
}

function plotFigure(div, figure) {
  whenPlotly((Plotly) => Plotly.newPlot(div, figure.data || [], figure.layout || {},
                                        {responsive: true, displaylogo: false}));
}

// -- runs -------------------------------------------------------------------------------------------------------
function applyColumns() {
  const hidden = new Set(JSON.parse(localStorage.getItem("mlp.hiddenColumns") || "[]"));
  document.querySelectorAll("#column-choices input").forEach((box) => { box.checked = !hidden.has(box.dataset.col); });
  document.querySelectorAll("#runs [data-col]").forEach((cell) => {
    cell.classList.toggle("hidden", hidden.has(cell.dataset.col));
  });
}

if (page === "runs") {
  applyColumns();
  document.querySelectorAll("#column-choices input").forEach((box) => box.addEventListener("change", () => {
    const hidden = new Set(JSON.parse(localStorage.getItem("mlp.hiddenColumns") || "[]"));
    if (box.checked) hidden.delete(box.dataset.col); else hidden.add(box.dataset.col);
    localStorage.setItem("mlp.hiddenColumns", JSON.stringify([...hidden]));
    applyColumns();
  }));
  document.addEventListener("fragment", applyColumns);
  onEvent("runs", () => refreshFragment("runs-table"));
  onEvent("reload", () => refreshFragment("runs-table"));  // events were dropped, or the ledger was replaced
  const showDeleted = document.getElementById("show-deleted");
  if (showDeleted) showDeleted.addEventListener("change", () => showDeleted.form.requestSubmit());
  const cleanup = document.getElementById("cleanup");
  if (cleanup) {
    cleanup.addEventListener("toggle", () => { if (cleanup.open) showGcPlan(); });
    document.getElementById("gc-run").addEventListener("click", runGc);
  }
}

// -- clean-up (mlpipeline gc) on the runs page -------------------------------------------------------------------
function bytes(size) {  // as mlpipeline gc prints them
  if (size < 1024) return `${size} B`;
  let value = size / 1024;
  for (const unit of ["KiB", "MiB"]) {
    if (value < 1024) return `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${value.toFixed(1)} GiB`;
}

function renderGc(plan) {
  const body = document.querySelector("#gc-plan tbody");
  body.textContent = "";
  for (const kind of plan.kinds) {
    const row = body.insertRow();
    row.dataset.what = kind.what;
    row.insertCell().textContent = kind.what;
    for (const text of [String(kind.count), bytes(kind.bytes)]) {
      const cell = row.insertCell();
      cell.className = "num";
      cell.textContent = text;
    }
  }
  const keep = document.getElementById("gc-keep");
  keep.hidden = !plan.keep;
  if (plan.keep) {
    keep.textContent = `keep = ${plan.keep.count} by ${plan.keep.metric}: the model dirs of each script's best ` +
      `${plan.keep.count} runs stay` + (plan.ranked_out.length ? `; ${plan.ranked_out.length} other run(s)' model dirs may go` : "");
  }
  document.getElementById("gc-run").disabled = plan.bytes === 0 && plan.empty;
}

async function showGcPlan() {
  try {
    const response = await fetch("/api/gc", {credentials: "same-origin"});
    const plan = await response.json();
    if (!response.ok) throw new Error(plan.error || response.statusText);
    renderGc(plan);
  } catch (e) { toast(e.message, true); }
}

async function runGc() {
  const done = document.getElementById("gc-done");
  const button = document.getElementById("gc-run");
  button.disabled = true;
  try {
    const freed = await post("/api/gc");
    const count = (what) => (freed.kinds.find((k) => k.what === what) || {count: 0}).count;
    done.textContent = `removed ${count("model dirs")} model dir(s), ${count("run folders")} run folder(s), ` +
      `${count("cached outputs")} cached output(s); freed ${bytes(freed.bytes)}` +
      (freed.problems.length ? ` — not removed: ${freed.problems.join("; ")}` : "");
    done.className = freed.problems.length ? "error" : "ok";
    await showGcPlan();
    refreshFragment("runs-table");
  } catch (e) {
    done.textContent = e.message;
    done.className = "error";
    button.disabled = false;
  }
}

// -- one run ----------------------------------------------------------------------------------------------------
if (page === "run") {
  const data = pageData();
  const runId = data.run;
  const charts = {};  // metric name -> its chart div, redrawn in place while the run runs
  async function drawCharts() {
    const response = await fetch(`/api/runs/${runId}/metrics`, {credentials: "same-origin"});
    if (!response.ok) return;
    const body = await response.json();
    const box = document.getElementById("charts");
    const systemBox = document.getElementById("system-charts");
    const all = body.curves || [];
    body.curves = all.filter((c) => c.split !== "sys");  // the runner's samples go beside them, not among them
    const sampled = all.filter((c) => c.split === "sys");
    if (sampled.length && systemBox) {
      document.getElementById("system").hidden = false;
      for (const curve of sampled) {
        let div = charts["sys/" + curve.name];
        if (!div) {
          div = charts["sys/" + curve.name] = document.createElement("div");
          div.className = "chart";
          div.dataset.metric = "sys/" + curve.name;
          systemBox.appendChild(div);
        }
        const layout = {title: {text: "sys/" + curve.name}, height: 240, margin: {t: 40, r: 10, b: 40, l: 50},
                        xaxis: {title: {text: "seconds"}}};
        const trace = {x: curve.steps, y: curve.values, name: "sys", type: "scatter",
                       mode: curve.steps.length < 3 ? "lines+markers" : "lines"};
        whenPlotly((Plotly) => Plotly.react(div, [trace], layout, {responsive: true, displaylogo: false}));
      }
    }
    if (!body.curves.length) {
      box.textContent = "";
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = data.status === "running" ? "no points yet" : "no training curves recorded";
      box.appendChild(p);
      return;
    }
    if (!Object.keys(charts).some((name) => !name.startsWith("sys/"))) box.textContent = "";
    const byName = {};
    for (const curve of body.curves) (byName[curve.name] = byName[curve.name] || []).push(curve);
    for (const [name, curves] of Object.entries(byName)) {
      let div = charts[name];
      if (!div) {
        div = charts[name] = document.createElement("div");
        div.className = "chart";
        div.dataset.metric = name;
        box.appendChild(div);
      }
      // a lone point drawn as a line is invisible: markers until there are a few
      const traces = curves.map((c) => ({x: c.steps, y: c.values, name: c.split, type: "scatter",
                                         mode: c.steps.length < 3 ? "lines+markers" : "lines"}));
      const note = curves.some((c) => c.decimated) ? ` (${curves.map((c) => c.points).join(" / ")} points, decimated)` : "";
      const layout = {title: {text: name + note}, height: 300, margin: {t: 40, r: 10, b: 40, l: 50},
                      xaxis: {title: {text: "step"}}};
      whenPlotly((Plotly) => Plotly.react(div, traces, layout, {responsive: true, displaylogo: false}));
    }
  }
  async function followCharts() {
    await drawCharts();
    if (data.status === "running") setTimeout(followCharts, 3000);
  }
  followCharts();
  if (data.results) {
    for (const [split, res] of Object.entries(data.results)) {
      const div = document.querySelector(`[data-graphs="results-${CSS.escape(split)}"]`);
      if (div && res.graphs) for (const figure of res.graphs) {
        const one = document.createElement("div");
        one.className = "chart";
        div.appendChild(one);
        plotFigure(one, figure);
      }
    }
  }
  // the log, followed while the run runs
  const log = document.getElementById("log");
  const follow = document.getElementById("follow");
  // the page holds the log's last LOG_KEEP characters at most: appending a 100 MB log to one <pre> freezes the tab
  const LOG_KEEP = 2 * 1024 * 1024;
  let offset = 0;
  let held = 0;        // characters of the log in the page now
  let note = "";       // says what of the log the page leaves out
  let reading = null;  // one read at a time: two at the same offset would append the same text twice
  let timer = null;
  function readLog() {
    clearTimeout(timer);
    reading = (reading || Promise.resolve()).then(readLogOnce).catch(() => {});
  }
  function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
  function leaveOut(from, size) {
    note = `(the log's first ${mib(from)} of ${mib(size)} are not shown here; mlpipeline logs ${runId} prints it all)\n`;
  }
  async function readLogOnce() {
    const response = await fetch(`/api/runs/${runId}/log?offset=${offset}`, {credentials: "same-origin"});
    if (!response.ok) return;
    const body = await response.json();
    if (!offset && body.size > LOG_KEEP) {  // a big log: read only its tail
      offset = body.size - LOG_KEEP;
      leaveOut(offset, body.size);
      log.textContent = note;
      held = 0;
      timer = setTimeout(readLog, 0);
      return;
    }
    if (body.data) {
      if (!offset) log.textContent = "";
      log.append(body.data);
      held += body.data.length;
      if (held > LOG_KEEP * 1.5) {  // a long follow: drop the head
        const text = log.textContent.slice(note.length);
        leaveOut(body.offset - LOG_KEEP, body.size);
        log.textContent = note + text.slice(-LOG_KEEP);
        held = LOG_KEEP;
      }
      if (follow.checked) log.scrollTop = log.scrollHeight;
    } else if (!offset && body.missing) {
      log.textContent = "(" + body.missing + ")";
    }
    offset = body.offset;
    if (body.running && follow.checked) timer = setTimeout(readLog, 1000);
    else if (body.data && body.offset < body.size) timer = setTimeout(readLog, 0);
  }
  readLog();
  follow.addEventListener("change", () => { if (follow.checked) readLog(); });
  onEvent("runs", (body) => {
    for (const run of body.runs) if (run.id === runId && run.status !== data.status) {
      const badge = document.getElementById("run-status");
      badge.textContent = run.status;
      badge.className = "badge " + run.status;
      const wasRunning = data.status === "running";
      data.status = run.status;
      if (run.status !== "running") {
        setTimeout(readLog, 300);
        if (wasRunning) setTimeout(drawCharts, 300);  // the last points
        const button = document.getElementById("cancel");
        if (button) button.remove();
      }
    }
  });
  const cancel = document.getElementById("cancel");
  if (cancel) cancel.addEventListener("click", async () => {
    try { await post(`/api/runs/${runId}/cancel`); toast(`cancel requested for run ${runId}`); }
    catch (e) { toast(e.message, true); }
  });
  const rerun = document.getElementById("rerun");
  if (rerun) rerun.addEventListener("click", async () => {
    try { await post(`/api/runs/${runId}/rerun`); toast(`run ${runId}'s version is queued again`); }
    catch (e) { toast(e.message, true); }
  });
  // delete: asked on the page (no native dialog), written through the same door as the tags
  const del = document.getElementById("delete");
  const confirmBox = document.getElementById("delete-confirm");
  if (del) del.addEventListener("click", () => { confirmBox.hidden = false; });
  document.getElementById("delete-no").addEventListener("click", () => { confirmBox.hidden = true; });
  document.getElementById("delete-yes").addEventListener("click", async () => {
    confirmBox.hidden = true;
    try {
      const body = await post(`/api/runs/${runId}/delete`);
      if (del) del.remove();
      document.getElementById("deleted-notice").hidden = false;
      if (!document.getElementById("run-deleted")) {
        const badge = document.createElement("span");
        badge.className = "badge deleted";
        badge.id = "run-deleted";
        badge.textContent = "deleted";
        document.querySelector("h1").append(" ", badge);
      }
      const via = body.via.startsWith("runner") ? ` (through the ${body.via})` : "";
      toast(`run ${runId} deleted${via}; Clean up on the runs page frees its files`);
    } catch (e) { toast(e.message, true); }
  });
  // tags and the note: written through the runner's requests (or the ledger when none runs)
  function renderTags(tags) {
    const box = document.getElementById("tags");
    box.textContent = "";
    for (const tag of tags) {
      const chip = document.createElement("span");
      chip.className = "tag";
      chip.dataset.tag = tag;
      chip.append(tag);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "untag";
      remove.dataset.tag = tag;
      remove.title = `remove the tag ${tag}`;
      remove.textContent = "×";
      chip.appendChild(remove);
      box.appendChild(chip);
    }
  }
  const tagForm = document.getElementById("tag-form");
  if (tagForm) tagForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("tag-input");
    const tags = input.value.split(/[\s,]+/).filter(Boolean);
    if (!tags.length) return;
    try {
      renderTags((await post(`/api/runs/${runId}/tags`, {add: tags})).tags);
      input.value = "";
      toast(`run ${runId} tagged ${tags.join(", ")}`);
    } catch (e) { toast(e.message, true); }
  });
  const tagBox = document.getElementById("tags");
  if (tagBox) tagBox.addEventListener("click", async (event) => {
    const button = event.target.closest("button.untag");
    if (!button) return;
    try {
      renderTags((await post(`/api/runs/${runId}/tags`, {remove: [button.dataset.tag]})).tags);
      toast(`run ${runId}: tag ${button.dataset.tag} removed`);
    } catch (e) { toast(e.message, true); }
  });
  const noteForm = document.getElementById("note-form");
  if (noteForm) noteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("note-input");
    try {
      const body = await post(`/api/runs/${runId}/note`, {note: input.value});
      input.value = body.note || "";
      toast(body.note ? `run ${runId}: note saved` : `run ${runId}: note cleared`);
    } catch (e) { toast(e.message, true); }
  });
  const form = document.getElementById("predict-form");
  if (form) form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("predict-file").files[0];
    const out = document.getElementById("predict-output");
    out.textContent = "running predict in a child process…";
    try {
      const body = await post(`/api/runs/${runId}/predict?name=${encodeURIComponent(file.name)}`, null, file);
      out.textContent = "";
      renderResults(out, body.results || {});
    } catch (e) {
      out.textContent = "";
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = e.message;
      out.appendChild(p);
    }
  });
}

function renderResults(out, results) {
  if (typeof results !== "object" || results === null) results = {text: String(results)};
  if (results.text) {
    const pre = document.createElement("pre");
    pre.className = "result-text";
    pre.textContent = results.text;
    out.appendChild(pre);
  }
  if (results.data && results.data.length) {
    const table = document.createElement("table");
    table.className = "data";
    const columns = results.columns || (typeof results.data[0] === "object" && !Array.isArray(results.data[0])
                                          ? Object.keys(results.data[0]) : null);
    if (columns) {
      const head = table.createTHead().insertRow();
      for (const c of columns) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
    }
    const body = table.createTBody();
    for (const row of results.data) {
      const tr = body.insertRow();
      const cells = Array.isArray(row) ? row : columns.map((c) => row[c]);
      for (const cell of cells) tr.insertCell().textContent = cell === null || cell === undefined ? "" : String(cell);
    }
    out.appendChild(table);
  }
  for (const figure of results.graphs || []) {
    const div = document.createElement("div");
    div.className = "chart";
    out.appendChild(div);
    plotFigure(div, figure);
  }
  const metrics = Object.entries(results).filter(([k, v]) => typeof v === "number");
  if (metrics.length) {
    const pre = document.createElement("pre");
    pre.textContent = metrics.map(([k, v]) => `${k}: ${v}`).join("\n");
    out.appendChild(pre);
  }
}

// -- compare ----------------------------------------------------------------------------------------------------
if (page === "compare") {
  const diff = document.getElementById("diff-only");
  if (diff) {
    diff.checked = localStorage.getItem("mlp.diffOnly") === "1";
    const apply = () => document.getElementById("compare-table").classList.toggle("diff-only", diff.checked);
    diff.addEventListener("change", () => { localStorage.setItem("mlp.diffOnly", diff.checked ? "1" : "0"); apply(); });
    apply();
  }
  const select = document.getElementById("compare-metric");
  if (select) select.addEventListener("change", () => document.getElementById("metric-form").submit());
  const data = pageData();
  const traces = [];
  const grouped = new Set();  // versions drawn as their seed group's mean and band
  const palette = ["31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189", "140,86,75"];
  (data.seed_groups || []).forEach((g, i) => {
    if (!data.metric || !(g.curves || []).length) return;
    g.versions.forEach((v) => grouped.add(v));
    const rgb = palette[i % palette.length];
    const label = g.versions.length > 2 ? `${g.versions[0]} … (${g.versions.length} seeds)` : g.versions.join(", ");
    for (const c of g.curves) {
      const low = c.mean.map((m, k) => m - (c.std[k] || 0));
      const high = c.mean.map((m, k) => m + (c.std[k] || 0));
      traces.push({x: c.steps, y: low, type: "scatter", mode: "lines", line: {width: 0}, hoverinfo: "skip",
                   showlegend: false, name: `${label} ${c.split} − std`});
      traces.push({x: c.steps, y: high, type: "scatter", mode: "lines", line: {width: 0}, fill: "tonexty",
                   fillcolor: `rgba(${rgb},0.2)`, hoverinfo: "skip", showlegend: false, name: `${label} ${c.split} + std`});
      traces.push({x: c.steps, y: c.mean, type: "scatter", mode: "lines", line: {color: `rgb(${rgb})`},
                   name: `${label} ${c.split} (mean ± std)`});
    }
  });
  for (const v of data.versions || []) {
    if (!data.metric) break;
    for (const c of v.curves || []) {
      if (grouped.has(v.version)) continue;
      traces.push({x: c.steps, y: c.values, name: `${v.version} ${c.split}`, type: "scatter", mode: "lines"});
    }
    const label = data.metric.includes("/") ? data.metric : `test/${data.metric}`;
    if (!(v.curves || []).length && v.metrics[label] !== undefined) {
      traces.push({x: [v.version], y: [v.metrics[label]], name: v.version, type: "bar"});
    }
  }
  if (traces.length) {
    plotFigure(document.getElementById("compare-chart"),
               {data: traces, layout: {title: {text: data.metric}, height: 360, margin: {t: 40, r: 10, b: 40, l: 50}}});
  }
}

// -- queue ------------------------------------------------------------------------------------------------------
if (page === "queue") {
  onEvent("queue", () => refreshFragment("queue-body"));
  onEvent("reload", () => refreshFragment("queue-body"));
  document.getElementById("queue-body").addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    try {
      if (button.id === "pause" || button.id === "resume") {
        await post(`/api/runner/${button.id}`);
        toast(`${button.id} requested`);
      } else if (button.classList.contains("cancel")) {
        await post(`/api/runs/${button.dataset.run}/cancel`);
        toast(`cancel requested for run ${button.dataset.run}`);
      } else if (button.classList.contains("mode")) {
        const body = await post("/api/queue", {action: "use_blacklist", value: button.dataset.value === "1"});
        toast(body.changed);
      } else if (button.classList.contains("queue-action")) {
        const script = button.dataset.script;
        let body;
        if (button.dataset.action === "up") {
          const order = pageData("queue-data").whitelist;
          const i = order.indexOf(script);
          order.splice(i, 1);
          order.splice(Math.max(0, i - 1), 0, script);
          body = await post("/api/queue", {action: "reorder", order: order});
        } else {
          body = await post("/api/queue", {action: button.dataset.action, script: script});
        }
        toast(body.changed);
      }
      refreshFragment("queue-body");
    } catch (e) { toast(e.message, true); }
  });
  document.getElementById("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    const replace = document.getElementById("upload-replace").checked ? "&replace=1" : "";
    const out = document.getElementById("upload-output");
    out.textContent = "checking it in a separate process…";
    try {
      const body = await post(`/api/scripts?name=${encodeURIComponent(file.name)}${replace}`, null, file);
      out.textContent = "";
      const p = document.createElement("p");
      p.className = "ok";
      p.textContent = `${body.saved}: valid, versions ${body.versions.join(", ")}. Whitelist it in the table above to run it.`;
      out.appendChild(p);
      refreshFragment("queue-body");
    } catch (e) {
      out.textContent = "";
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = e.message;
      out.appendChild(p);
      if (e.details) {
        const pre = document.createElement("pre");
        pre.className = "traceback";
        pre.textContent = e.details;
        out.appendChild(pre);
      }
    }
  });
}
