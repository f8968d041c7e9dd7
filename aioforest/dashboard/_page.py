"""The page: static HTML, CSS and a script that polls ``status.json`` and fills the DOM.

Everything a peer chose (a worker's name, its address) reaches the DOM through
``textContent``, never as markup, so a hostile worker cannot script the page.
"""

from __future__ import annotations

__all__ = ["LOGIN_HTML", "PAGE_CSS", "PAGE_HTML", "PAGE_JS"]

PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>aioforest master</title><link rel="stylesheet" href="dashboard.css">
</head><body data-refresh="{refresh}">
<header><h1>aioforest master <span id="address"></span></h1>
<span id="state" class="state">connecting</span> <span id="updated"></span></header>
<section class="cards">
<div><b id="worker-count">-</b> workers</div>
<div><b id="job-count">-</b> fits running</div>
<div><b id="trees-fitted">-</b> trees fitted</div>
<div><b id="bytes-sent">-</b> sent</div>
<div><b id="bytes-received">-</b> received</div>
</section>
<h2>Fits</h2>
<table id="jobs"><thead><tr><th>fit</th><th>mode</th><th>progress</th><th>trees</th>
<th>trees/s</th><th>ETA</th><th>rounds</th><th>histograms</th></tr></thead>
<tbody></tbody></table>
<h2>Workers</h2>
<table id="workers"><thead><tr><th>worker</th><th>address</th><th>slots</th>
<th>running</th><th>trees</th><th>last heard</th><th>bytes in</th><th>bytes out</th>
</tr></thead><tbody></tbody></table>
<h2>Faults</h2>
<ul id="faults" class="faults">
<li><b id="fault-workers_lost">-</b> workers lost</li>
<li><b id="fault-retries">-</b> tasks retried</li>
<li><b id="fault-backups">-</b> backup copies (<b id="fault-backups_won">-</b> won)</li>
<li><b id="fault-discarded_results">-</b> results discarded</li>
<li><b id="fault-cancels_sent">-</b> cancels sent</li>
<li><b id="fault-auth_failures">-</b> refused connections</li>
</ul>
<script src="dashboard.js"></script>
</body></html>
"""

LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aioforest master: log in</title>
<link rel="stylesheet" href="dashboard.css"></head><body>
<h1>aioforest master</h1><p class="error">{message}</p>
<form method="post" action="login"><label>Cluster token
<input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Log in</button></form></body></html>
"""

PAGE_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0; display: inline; } h2 { font-size: 1.1em; margin-top: 1.4em; }
#address { color: #666; font-weight: normal; }
.state { margin-left: 1em; padding: 0.1em 0.5em; border-radius: 0.3em; background: #eee; }
.state.live { background: #cfe8cf; } .state.down { background: #f3c7c7; }
.cards { display: flex; gap: 1em; margin-top: 1em; flex-wrap: wrap; }
.cards div { border: 1px solid #ddd; border-radius: 0.4em; padding: 0.5em 1em; }
.cards b { font-size: 1.3em; }
table { border-collapse: collapse; min-width: 40em; }
th, td { text-align: left; padding: 0.25em 0.8em; border-bottom: 1px solid #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { width: 12em; height: 0.8em; background: #eee; border-radius: 0.4em; }
.bar div { height: 100%; background: #4a8; border-radius: 0.4em; }
.stale { color: #b00; } .faults { padding-left: 1.2em; } .error { color: #b00; }
"""

PAGE_JS = r"""
"use strict";
const refreshMs = 1000 * Number(document.body.dataset.refresh || "1");

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
function seconds(s) {
  if (s === null || s === undefined) return "-";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m + " min " + String(Math.round(s - 60 * m)).padStart(2, "0") + " s";
}
function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}
function setText(id, text) { document.getElementById(id).textContent = text; }

function renderJobs(jobs) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  if (!jobs.length) {
    const row = body.insertRow();
    cell(row, "no fit running", "idle").colSpan = 8;
    return;
  }
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.mode + "-" + job.id;
    cell(row, String(job.id));
    cell(row, job.mode, "mode");
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = (100 * job.fraction).toFixed(1) + "%";
    bar.appendChild(fill);
    cell(row, "").appendChild(bar);
    cell(row, job.trees_done + " / " + job.trees, "num done");
    cell(row, job.trees_per_s === null ? "-" : job.trees_per_s.toFixed(2), "num rate");
    cell(row, seconds(job.eta_s), "num eta");
    cell(row, job.mode === "data" ? String(job.rounds) : "-", "num rounds");
    cell(row, job.mode === "data" ? bytes(job.hist_bytes) : "-", "num hist");
  }
}

function renderWorkers(workers) {
  const body = document.querySelector("#workers tbody");
  body.replaceChildren();
  for (const w of workers) {
    const row = body.insertRow();
    row.dataset.worker = w.name;
    cell(row, w.name, "name");
    cell(row, w.address, "address");
    cell(row, String(w.slots), "num slots");
    cell(row, String(w.running), "num running");
    cell(row, String(w.trees_done), "num trees");
    const heard = cell(row, seconds(w.heartbeat_age_s) + " ago", "num heartbeat");
    if (w.heartbeat_age_s > 3 * refreshMs / 1000 + 2) heard.classList.add("stale");
    cell(row, bytes(w.bytes_received), "num bytes-in");
    cell(row, bytes(w.bytes_sent), "num bytes-out");
  }
}

function render(s) {
  setText("address", s.address || "");
  setText("worker-count", String(s.workers.length));
  setText("job-count", String(s.jobs.length));
  setText("trees-fitted", String(s.trees_fitted));
  setText("bytes-sent", bytes(s.bytes.sent_wire));
  setText("bytes-received", bytes(s.bytes.received_wire));
  for (const [key, value] of Object.entries(s.faults)) {
    const el = document.getElementById("fault-" + key);
    if (el) el.textContent = String(value);
  }
  renderJobs(s.jobs);
  renderWorkers(s.workers);
  setText("updated", "updated " + new Date(1000 * s.time).toLocaleTimeString());
  window.aioforestRenders = (window.aioforestRenders || 0) + 1;
  document.dispatchEvent(new CustomEvent("aioforest:rendered", {detail: s}));
}

function setState(text, ok) {
  const el = document.getElementById("state");
  el.textContent = text;
  el.className = "state " + (ok ? "live" : "down");
}

async function tick() {
  try {
    const response = await fetch("status.json", {cache: "no-store", credentials: "same-origin"});
    if (response.status === 401) { location.href = "login"; return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    setState("live", true);
  } catch (err) {
    setState("master unreachable: " + err.message, false);
  }
  setTimeout(tick, refreshMs);
}
tick();
"""
