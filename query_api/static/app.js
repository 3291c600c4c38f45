// The epochstream page: the state lives in the URL hash; the page polls the read-only JSON API with ETags
// and draws what it gets. Nothing here filters, sorts or downsamples: the API does, so 10 runs or 100,000
// cost the page the same.

import { getJSON, setToken, tryJSON } from "./api.js";
import { renderComparison, renderParallel } from "./compare.js";
import { attachHover, drawChart, metricNames, pointsOf, renderGrid } from "./charts.js";
import { PALETTE, badge, el, fieldOf, fmtNum, runLabel } from "./format.js";
import { API_PAGE, MAX_SELECTED, formatHash, listingQuery, parseHash, sameFilters } from "./hashstate.js";
import { renderRunDetail } from "./run_detail.js";
import { markSelection, rememberProjects, renderRunsTable } from "./runs_table.js";

const POLL_MS = 2000;
const EPOCH_POINTS = 1000, STEP_POINTS = 500, SYSTEM_POINTS = 400;  // about one point per pixel of a chart
const $ = id => document.getElementById(id);

let state;
const view = { pages: 1, listing: null, loaded: new Map(), projects: new Set(), autoPicked: false, drawn: null };
let generation = 0, timer = null;
window.__epochstream = { renders: 0, firstRender: null, firstPaint: null, firstDrawn: null };

(function init() {
  const { state: parsed, token } = parseHash(location.hash);
  if (token) sessionStorage.setItem("epochstream-token", token);
  setToken(sessionStorage.getItem("epochstream-token"));
  state = parsed;
  if (token) history.replaceState(null, "", formatHash(state));  // a token never stays in a link to share
})();

const colorOf = id => PALETTE[Math.max(0, state.runs.indexOf(id)) % PALETTE.length];

// Every change of what is shown goes through the hash: a new history entry (Back undoes it) unless `replace`.
function navigate(patch, replace = false) {
  const next = { ...state, ...patch };
  if (formatHash(next) === formatHash(state)) return;
  if (replace) {
    history.replaceState(null, "", formatHash(next));
    apply(next);
  } else {
    location.hash = formatHash(next);  // -> hashchange -> apply
  }
}

function apply(next) {
  if (!sameFilters(next, state)) view.pages = 1;
  state = next;
  syncControls();
  refresh(true);
}

window.addEventListener("hashchange", () => apply(parseHash(location.hash).state));

// -- controls ---------------------------------------------------------------------------------------------
const typing = new Map();

function syncControls() {
  for (const [id, key] of [["f-q", "q"], ["f-project", "project"], ["f-tag", "tag"], ["f-status", "status"],
    ["f-sort", "sort"], ["f-per", "per"]]) {
    if (!typing.has(id) && $(id).value !== String(state[key])) $(id).value = String(state[key]);
  }
  $("smoothing").value = String(state.smooth);
  $("smoothing-value").textContent = state.smooth ? state.smooth.toFixed(2) : "off";
}

for (const [id, key] of [["f-q", "q"], ["f-project", "project"], ["f-tag", "tag"]]) {
  const input = $(id);
  const commit = () => { clearTimeout(typing.get(id)); typing.delete(id); navigate({ [key]: input.value.trim() }); };
  input.addEventListener("input", () => { clearTimeout(typing.get(id)); typing.set(id, setTimeout(commit, 350)); });
  input.addEventListener("change", commit);
}
$("filters").addEventListener("submit", ev => ev.preventDefault());
$("f-status").addEventListener("change", ev => navigate({ status: ev.target.value }));
$("f-sort").addEventListener("change", ev => navigate({ sort: ev.target.value }));
$("f-per").addEventListener("change", ev => navigate({ per: Number(ev.target.value) }));
$("smoothing").addEventListener("input", ev => {
  $("smoothing-value").textContent = Number(ev.target.value) ? Number(ev.target.value).toFixed(2) : "off";
});
$("smoothing").addEventListener("change", ev => navigate({ smooth: Number(ev.target.value) }));
$("compare-all-config").addEventListener("change", () => refresh(true));
$("more").addEventListener("click", () => { view.pages += 1; refresh(true); });
$("clear-selection").addEventListener("click", () => navigate({ runs: [] }));
$("select-shown").addEventListener("click", () => {
  const shown = (view.listing ? view.listing.runs : []).slice(0, 5).map(r => r.run_id);
  if (shown.length) navigate({ runs: shown });
});

const tableHandlers = {
  toggle: id => navigate({ runs: state.runs.includes(id) ? state.runs.filter(r => r !== id)
    : [...state.runs, id].slice(0, MAX_SELECTED) }),
  only: id => navigate({ runs: [id] }),
};

// -- loading ----------------------------------------------------------------------------------------------
const FIRST_PAGE = 50;  // the first listing request: two screenfuls, so a first paint never waits for 1,000 rows

const filtersOf = st => formatHash({ ...st, runs: [], smooth: 0 });
const listingKey = st => `${filtersOf(st)}|${view.pages}`;

// The listing as a chain of API pages (cursor after cursor). `firstOnly`: just the first one, to draw early.
async function loadListing(firstOnly) {
  const want = view.pages * state.per;  // "load more" adds a page size of rows
  const runs = [], bodies = [];
  let cursor = null, total = 0;
  while (runs.length < want) {
    // One API page per page of the table (so "load more" continues from the cursor), the first one short.
    const limit = Math.min(API_PAGE, state.per, want - runs.length, runs.length ? API_PAGE : FIRST_PAGE);
    const { body } = await getJSON(listingQuery(state, cursor, limit));
    bodies.push(body);
    runs.push(...body.runs);
    total = body.total;
    cursor = body.next_cursor;
    if (!cursor || firstOnly) break;
  }
  return { key: listingKey(state), filters: filtersOf(state), runs, total, nextCursor: cursor, bodies,
    complete: !cursor || runs.length >= want };
}

// A run's summary and every series at once (one round trip, not two): a series the run does not have answers
// with an empty list, and after the first time with a 304.
async function loadRun(id, smooth) {
  const enc = encodeURIComponent(id);
  const ema = smooth ? `&ema=${smooth}` : "";
  const none = Promise.resolve(null);
  const [summary, epochs, epochsSmooth, steps, stepsSmooth, system] = await Promise.all([
    tryJSON(`/runs/${enc}`),
    tryJSON(`/runs/${enc}/epochs?max_points=${EPOCH_POINTS}`),
    smooth ? tryJSON(`/runs/${enc}/epochs?max_points=${EPOCH_POINTS}${ema}`) : none,
    tryJSON(`/runs/${enc}/steps?max_points=${STEP_POINTS}`),
    smooth ? tryJSON(`/runs/${enc}/steps?max_points=${STEP_POINTS}${ema}`) : none,
    tryJSON(`/runs/${enc}/system?max_points=${SYSTEM_POINTS}`),
  ]);
  if (summary.error) return { id, smooth, error: summary.error };
  const run = summary.body;
  const body = r => (r && !r.error ? r.body : null);
  const notes = [];
  if (stepsSmooth && stepsSmooth.error && run.steps) {
    notes.push(`${runLabel(run, id)}: not smoothed — ${stepsSmooth.error.detail}`);
  }
  return { id, smooth, summary: run, epochs: body(epochs), epochsSmooth: body(epochsSmooth), steps: body(steps),
    stepsSmooth: body(stepsSmooth), system: body(system), notes };
}

// `reuse` (a change made on the page): runs already loaded and the listing already shown are drawn as they are,
// only what is new is fetched; the next poll, 2 s later, asks the API about everything again.
async function refresh(reuse = false) {
  const gen = ++generation;
  clearTimeout(timer);
  const status = $("poll-status");
  try {
    const shown = view.listing;
    const same = shown && shown.key === listingKey(state) && shown.complete;  // exactly what is on screen
    const filtersShown = shown && shown.filters === filtersOf(state);
    const runsLoaded = Promise.all(state.runs.map(id => {
      const had = reuse ? view.loaded.get(id) : null;
      return had && had.smooth === state.smooth ? had : loadRun(id, state.smooth);
    }));
    // A new filter draws its first page as soon as it is in; a listing already on screen is replaced whole.
    const [listing, loaded] = await Promise.all([reuse && same ? shown : loadListing(!filtersShown), runsLoaded]);
    if (gen !== generation) return;  // a newer refresh (the user changed something) has taken over
    view.loaded = new Map(loaded.map(r => [r.id, r]));
    if (!state.runs.length && !view.autoPicked && listing.runs.length && !location.hash.replace("#", "")) {
      view.autoPicked = true;  // an empty link shows the newest run; an emptied selection stays empty
      view.listing = listing;
      navigate({ runs: [listing.runs[0].run_id] }, true);
      return;
    }
    view.autoPicked = true;
    view.listing = listing;
    await render(listing, loaded, gen, !listing.complete);
    if (!listing.complete) {
      const whole = await loadListing(false);
      if (gen !== generation) return;
      view.listing = whole;
      await render(whole, loaded, gen, false);
    }
    status.textContent = `updated ${new Date().toLocaleTimeString()} · polling every ${POLL_MS / 1000} s`;
  } catch (err) {
    if (gen === generation) status.textContent = `cannot read the API: ${err.message}`;
  } finally {
    if (gen === generation) timer = setTimeout(() => refresh(false), POLL_MS);
  }
}

// -- drawing ----------------------------------------------------------------------------------------------
// Bodies are the very objects the ETag cache returns: unchanged data (304) gives the same references, so a
// part is redrawn only when what it shows changed (an open traceback stays open while other runs move on).
function changed(part, refs) {
  const last = view.drawn && view.drawn[part];
  if (last && last.length === refs.length && last.every((r, i) => r === refs[i])) return false;
  view.drawn = { ...(view.drawn || {}), [part]: refs };
  return true;
}

// `partial`: the listing's first page only (the rest is on its way): drawn, but not yet "rendered".
async function render(listing, loaded, gen, partial) {
  const hash = formatHash(state);
  const live = loaded.filter(r => !r.error).map(r => ({ ...r, color: colorOf(r.id), label: runLabel(r.summary, r.id) }));
  const series = live.flatMap(r => [r.id, r.color, r.epochs, r.epochsSmooth, r.steps, r.stepsSmooth, r.system]);
  const parts = {
    table: changed("table", [listing.key, ...listing.bodies]),  // the selection is marked in place, not redrawn
    selection: changed("selection", [hash, $("compare-all-config").checked,
      ...loaded.flatMap(r => [r.id, r.error ? r.error.message : r.summary, r.epochs])]),
    charts: changed("charts", [hash, ...series]),
  };
  if (!parts.table && !parts.selection && !parts.charts) return;
  const rows = parts.table ? renderTable(listing) : null;
  if (parts.selection) renderSelection(loaded, live);
  if (parts.charts) {
    renderEpochCharts(live);
    renderStepCharts(live);
    renderSystemCharts(live);
  }
  if (window.__epochstream.firstRender === null) {
    window.__epochstream.firstRender = performance.now();
    // The frame after the first render (charts, and the table's first screenful) is the first meaningful paint.
    requestAnimationFrame(() => setTimeout(() => { window.__epochstream.firstPaint = performance.now(); }));
  }
  if (partial) return;
  if (rows) await rows;  // every row of the table in: only then is the page "drawn" for tests and the bench
  if (gen !== generation) return;  // a newer refresh is drawing: its render counts, not this one
  window.__epochstream.renders += 1;
  if (window.__epochstream.firstDrawn === null) window.__epochstream.firstDrawn = performance.now();
  document.body.dataset.ready = "true";
  document.dispatchEvent(new CustomEvent("epochstream:rendered", { detail: { runs: [...state.runs] } }));
}

function renderTable(listing) {
  rememberProjects($("projects"), view.projects, listing.runs);
  const sameList = view.tableFilters === listing.filters && view.tableComplete;
  const rows = renderRunsTable(document.querySelector("#runs tbody"), listing.runs, () => state.runs, colorOf,
    tableHandlers, sameList);
  view.tableFilters = listing.filters;
  view.tableComplete = listing.complete;
  const filtered = ["project", "status", "tag", "q"].some(k => state[k]);
  $("runs-count").textContent = `${listing.total.toLocaleString("en")} ${filtered ? "matching " : ""}run` +
    `${listing.total === 1 ? "" : "s"}${listing.total > listing.runs.length ? ` · showing ${listing.runs.length}` : ""}`;
  $("no-runs").hidden = listing.runs.length > 0;
  $("no-runs").textContent = filtered ? "No run matches these filters."
    : "No runs yet. Train with producer.start_run, or try `epochstream demo`.";
  $("more").hidden = !listing.nextCursor;
  return rows;
}

function renderSelection(loaded, live) {
  markSelection(document.querySelector("#runs tbody"), state.runs, colorOf);
  renderNotice(loaded.filter(r => r.error));
  renderLegend(live);
  $("pick").hidden = state.runs.length > 0;
  $("toolbar").hidden = !live.length;
  $("run-detail").hidden = live.length !== 1;
  $("comparison").hidden = live.length < 2;
  if (live.length === 1) renderRunDetail($("run-detail"), live[0].summary);
  if (live.length >= 2) {
    const differ = renderComparison($("compare"), live, $("compare-all-config").checked);
    renderParallel($("parallel"), live, differ);
  }
}

function renderNotice(missing) {
  const box = $("notice");
  box.replaceChildren();
  box.hidden = !missing.length;
  for (const r of missing) {
    const p = el("p", { class: "missing", "data-run": r.id });
    p.textContent = r.error.status === 404
      ? `No run “${r.id}” in this data directory: the link may name a run from elsewhere, or one not ingested yet. `
      : `Run “${r.id}” could not be read: ${r.error.detail} `;
    const drop = el("button", { type: "button" }, "remove from selection");
    drop.addEventListener("click", () => navigate({ runs: state.runs.filter(x => x !== r.id) }));
    p.appendChild(drop);
    box.appendChild(p);
  }
}

function renderLegend(live) {
  const legend = $("legend");
  legend.replaceChildren();
  for (const r of live) {
    const entry = el("span", { class: "legend-entry", "data-run": r.id });
    entry.appendChild(el("span", { class: "swatch", style: `background:${r.color}` }));
    entry.appendChild(el("span", { class: "legend-name", title: r.id }, r.label));
    entry.appendChild(badge(r.summary));
    const drop = el("button", { type: "button", class: "drop", title: "remove from the selection",
      "aria-label": `remove ${r.label}` }, "×");
    drop.addEventListener("click", () => navigate({ runs: state.runs.filter(x => x !== r.id) }));
    entry.appendChild(drop);
    legend.appendChild(entry);
  }
}

function curves(live, name, rowsOf, smoothOf, xOf, bestOf) {
  const out = [];
  for (const r of live) {
    const raw = pointsOf(rowsOf(r), name, xOf);
    if (!raw.length) continue;
    const smoothRows = smoothOf(r);
    const s = { id: r.id, name: r.label, color: r.color, points: raw };
    if (smoothRows) { s.points = pointsOf(smoothRows, name, xOf); s.raw = raw; }
    if (bestOf) s.best = bestOf(r, name);
    out.push(s);
  }
  return out;
}

function renderEpochCharts(live) {
  const rowsOf = r => (r.epochs ? r.epochs.epochs : []);
  const names = metricNames(live.map(rowsOf));
  $("epochs-section").hidden = !live.length;
  const single = live.length === 1 ? live[0].summary : null;
  const bestOf = (r, name) => (name === r.summary.best_metric && r.summary.best_epoch != null
    ? { x: r.summary.best_epoch, y: fieldOf(r.summary, "best_value"),
        label: `${r.label}: best epoch ${r.summary.best_epoch}, ${name} = ${fmtNum(fieldOf(r.summary, "best_value"))}` }
    : undefined);
  renderGrid($("epoch-charts"), "epoch", names, (name, svg) => {
    const best = single && name === single.best_metric && single.best_epoch != null
      ? { x: single.best_epoch, label: `best epoch ${single.best_epoch}` } : null;
    drawChart(svg, curves(live, name, rowsOf, r => (r.epochsSmooth ? r.epochsSmooth.epochs : null),
      row => row.epoch, bestOf), { xLabel: "epoch", integerX: true, bestLine: best });
  });
  if (live.length && !names.length) {
    $("epoch-charts").appendChild(el("p", { class: "muted", id: "no-epochs" }, "No epochs logged yet."));
  }
}

function renderStepCharts(live) {
  const rowsOf = r => (r.steps ? r.steps.steps : []);
  const names = metricNames(live.map(rowsOf));
  $("steps-section").hidden = !names.length;
  const notes = live.flatMap(r => r.notes);
  $("steps-note").hidden = !notes.length;
  $("steps-note").textContent = notes.join(" ");
  renderGrid($("step-charts"), "step", names, (name, svg) => {
    drawChart(svg, curves(live, name, rowsOf, r => (r.stepsSmooth ? r.stepsSmooth.steps : null), row => row.step),
      { xLabel: "step", integerX: true });
  });
}

const SYSTEM_TITLES = { cpu_percent: "CPU (%)", rss_mb: "RSS (MB)" };
function systemTitle(name) {
  if (SYSTEM_TITLES[name]) return SYSTEM_TITLES[name];
  const m = name.match(/^gpu(\d+)\/(.+)$/);
  if (!m) return name;
  const what = { mem_allocated_mb: "memory allocated (MB)", mem_reserved_mb: "memory reserved (MB)",
    utilization_pct: "utilisation (%)" }[m[2]] || m[2];
  return `GPU ${m[1]} ${what}`;
}

function renderSystemCharts(live) {
  const rowsOf = r => (r.system ? r.system.points : []);
  // The total memory of a GPU is a constant, not a curve.
  const names = metricNames(live.map(rowsOf)).filter(n => !n.endsWith("/mem_total_mb"));
  $("system-section").hidden = !live.length || (!names.length && live.length > 1);
  $("system-empty").hidden = names.length > 0;
  const t0 = new Map(live.map(r => [r.id, rowsOf(r).length ? Date.parse(rowsOf(r)[0].ts) : 0]));
  renderGrid($("system-charts"), "system", names, (name, svg) => {
    const series = [];
    for (const r of live) {
      const x = row => (Date.parse(row.ts) - t0.get(r.id)) / 1000;
      const points = pointsOf(rowsOf(r), name, x);
      if (points.length) series.push({ id: r.id, name: r.label, color: r.color, points });
    }
    drawChart(svg, series, { xLabel: "seconds since the first sample" });
  }, systemTitle);
}

attachHover(document.getElementById("view"), $("tooltip"));
syncControls();
refresh();
