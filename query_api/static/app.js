// The epochstream page: polls the read-only JSON API with ETags and draws what it gets.
"use strict";

const POLL_MS = 2000;
const state = { selected: null, cache: new Map(), token: null };

// A token can be given once as #token=... (kept for this tab only) when the API requires one.
(function readToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("epochstream-token", decodeURIComponent(m[1])); }
  state.token = sessionStorage.getItem("epochstream-token");
  const r = location.hash.match(/run=([^&]+)/);
  if (r) state.selected = decodeURIComponent(r[1]);
})();

// GET with If-None-Match: a 304 answer reuses the body we already have for that URL.
async function getJSON(url) {
  const cached = state.cache.get(url);
  const headers = { Accept: "application/json" };
  if (cached) headers["If-None-Match"] = cached.etag;
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const res = await fetch(url, { headers, cache: "no-store" });
  if (res.status === 304 && cached) return { body: cached.body, fresh: false };
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    const err = new Error(`${res.status}: ${detail}`); err.status = res.status; throw err;
  }
  const body = await res.json();
  const etag = res.headers.get("ETag");
  if (etag) state.cache.set(url, { etag, body });
  return { body, fresh: true };
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;  // always text: names and errors are user data
  return e;
}

// A metric of an API row, with the `non_finite` marker turned back into NaN/±Infinity.
function metric(row, name) {
  const nf = (row.non_finite || {})[name];
  if (nf) return nf === "nan" ? NaN : (nf.startsWith("-") ? -Infinity : Infinity);
  const v = (row.metrics || {})[name];
  return typeof v === "number" ? v : null;
}

function topValue(obj, name) {
  const nf = (obj.non_finite || {})[name];
  if (nf) return nf === "nan" ? NaN : (nf.startsWith("-") ? -Infinity : Infinity);
  return obj[name];
}

function trendsOf(run) {
  if (run.trends) return run.trends;
  const t = {};
  for (const k of ["is_overfitting", "is_plateaued", "is_diverging", "recommendation", "epochs_since_improvement"]) {
    if (k in run) t[k] = run[k];
  }
  return t;
}

function flagList(t) {
  const out = [];
  if (t.is_diverging) out.push(["diverging", "bad"]);
  if (t.is_overfitting) out.push(["overfitting", ""]);
  if (t.is_plateaued) out.push(["plateau", ""]);
  if (t.epochs_since_improvement > 0) out.push([`${t.epochs_since_improvement} epochs since improvement`, ""]);
  for (const [m, why] of Object.entries(t.suspect_metrics || {})) out.push([`${m}: ${why}`, "bad"]);
  return out;
}

function renderRuns(runs) {
  const body = document.querySelector("#runs tbody");
  body.replaceChildren();
  document.getElementById("no-runs").hidden = runs.length > 0;
  for (const run of runs) {
    const tr = el("tr", { "data-run-id": run.run_id });
    if (run.run_id === state.selected) tr.className = "selected";
    const name = el("td");
    name.appendChild(el("div", {}, run.name || run.run_id.slice(0, 12)));
    name.appendChild(el("div", { class: "muted" }, `${run.project || ""} · ${run.run_id.slice(0, 12)}`));
    tr.appendChild(name);
    tr.appendChild(el("td", { class: `status ${run.status}` }, run.status));
    tr.appendChild(el("td", {}, String(run.epochs ?? "–")));
    tr.appendChild(el("td", {}, run.best_epoch == null ? "–" : `${run.best_epoch} (${fmtNum(topValue(run, "best_value"))})`));
    tr.appendChild(el("td", {}, flagList(trendsOf(run)).map(f => f[0]).join(", ") || "–"));
    tr.addEventListener("click", () => select(run.run_id));
    body.appendChild(tr);
  }
}

function select(runId) {
  state.selected = runId;
  history.replaceState(null, "", `#run=${encodeURIComponent(runId)}`);
  for (const tr of document.querySelectorAll("#runs tbody tr")) {
    tr.className = tr.dataset.runId === runId ? "selected" : "";
  }
  refresh();
}

function renderRun(run, epochs, system) {
  document.getElementById("pick").hidden = true;
  document.getElementById("run-panel").hidden = false;
  document.getElementById("run-title").textContent = `${run.name || run.run_id} — ${run.status}`;
  const meta = [run.project && `project ${run.project}`, `run ${run.run_id}`, run.host && `host ${run.host}`,
    run.started_at && `started ${new Date(run.started_at).toLocaleString()}`,
    run.duration_s != null && `${run.duration_s.toFixed(1)} s`].filter(Boolean);
  document.getElementById("run-meta").textContent = meta.join(" · ");

  const metricName = run.best_metric || "val/loss";
  document.getElementById("best-epoch").textContent = run.best_epoch == null ? "–" : String(run.best_epoch);
  document.getElementById("best-value").textContent =
    run.best_epoch == null ? "" : `${metricName} = ${fmtNum(topValue(run, "best_value"))}`;

  const t = trendsOf(run);
  const flags = document.getElementById("flags");
  flags.replaceChildren();
  const list = flagList(t);
  if (!list.length) flags.appendChild(el("span", { class: "ok" }, "no flags"));
  for (const [text, cls] of list) flags.appendChild(el("span", { class: cls }, text));
  const rec = t.recommendation ? `Recommendation: ${t.recommendation.replace("_", " ")}` +
    (t.recommendation === "use_checkpoint" && t.recommendation_epoch != null ? ` (epoch ${t.recommendation_epoch})` : "") +
    (t.reason ? ` — ${t.reason}` : "") : "";
  document.getElementById("recommendation").textContent = rec;

  const errorBox = document.getElementById("error-box");
  errorBox.hidden = !(run.error || run.traceback);
  document.getElementById("error-text").textContent = [run.error, run.traceback].filter(Boolean).join("\n\n");

  const rows = epochs.epochs || [];
  const series = [["train/loss", "train"], ["val/loss", "val"]]
    .map(([name, cls]) => ({ name, cls, points: rows.map(r => ({ x: r.epoch, y: metric(r, name) })).filter(p => p.y !== null) }))
    .filter(s => s.points.length);
  drawLineChart(document.getElementById("loss-chart"), series, {
    bestX: run.best_epoch, bestLabel: run.best_epoch == null ? "" : `best epoch ${run.best_epoch}`,
    xLabel: "epoch", yLabel: "loss", integerX: true, empty: "no epochs yet" });

  // System points carry flat values: "gpu<i>/mem_allocated_mb", "gpu<i>/utilization_pct", cpu_percent, ...
  const points = (system && system.points) || [];
  const gpuIds = [...new Set(points.flatMap(p => Object.keys(p.values || {})
    .map(k => k.match(/^gpu(\d+)\//)).filter(Boolean).map(m => m[1])))].sort();
  document.getElementById("gpu-empty").hidden = gpuIds.length > 0;
  for (const id of ["gpu-mem-chart", "gpu-util-chart"]) document.getElementById(id).style.display = gpuIds.length ? "" : "none";
  if (gpuIds.length) {
    const t0 = Date.parse(points[0].ts);
    const x = p => (Date.parse(p.ts) - t0) / 1000;
    const per = (field, cls) => gpuIds.map(i => ({ name: `GPU ${i}`, cls,
      points: points.map(p => ({ x: x(p), y: (p.values || {})[`gpu${i}/${field}`] ?? null })) }));
    drawLineChart(document.getElementById("gpu-mem-chart"), per("mem_allocated_mb", "mem"), { xLabel: "seconds", yLabel: "memory allocated (MB)" });
    drawLineChart(document.getElementById("gpu-util-chart"), per("utilization_pct", "util"), { xLabel: "seconds", yLabel: "utilisation (%)" });
  }

  const config = document.querySelector("#config tbody");
  config.replaceChildren();
  for (const [k, v] of Object.entries(run.config || {})) {
    const tr = el("tr");
    tr.appendChild(el("th", {}, k));
    tr.appendChild(el("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v)));
    config.appendChild(tr);
  }
}

async function refresh() {
  const status = document.getElementById("poll-status");
  try {
    const runs = await getJSON("/runs?limit=200");
    const list = runs.body.runs || [];
    if (runs.fresh) renderRuns(list);
    if (!state.selected && list.length) state.selected = list[0].run_id;
    if (state.selected) {
      const id = encodeURIComponent(state.selected);
      const [run, epochs, system] = await Promise.all([
        getJSON(`/runs/${id}`), getJSON(`/runs/${id}/epochs`),
        getJSON(`/runs/${id}/system?max_points=300`).catch(() => ({ body: null, fresh: false })),
      ]);
      if (run.fresh || epochs.fresh || system.fresh || state.rendered !== state.selected) {
        renderRun(run.body, epochs.body, system.body);
        state.rendered = state.selected;
      }
    }
    status.textContent = `updated ${new Date().toLocaleTimeString()} · polling every ${POLL_MS / 1000}s`;
  } catch (err) {
    status.textContent = `cannot reach the API: ${err.message}`;
    if (err.status === 404 && state.selected) state.selected = null;
  }
}

async function loop() {
  await refresh();
  setTimeout(loop, POLL_MS);
}
loop();
