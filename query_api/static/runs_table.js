// The runs table: one page (or a few, with "load more") of the API's filtered, sorted listing, a checkbox per
// run for comparison. Filtering, sorting and paging are the server's: this works the same with 10 or 100,000 runs.

import { MAX_SELECTED } from "./hashstate.js";
import { badge, el, fieldOf, fmtNum, fmtWhen } from "./format.js";

const compact = n => (n < 1e3 ? String(n) : n < 1e6 ? `${+(n / 1e3).toPrecision(3)}k` : `${+(n / 1e6).toPrecision(3)}M`);
const FIRST_ROWS = 50;  // two screenfuls: drawn at once, the rest right after the first paint
const CHUNK = 250;
let drawing = 0;

function rowOf(run, selected, colorOf, handlers) {
  const picked = selected.includes(run.run_id);
  const full = selected.length >= MAX_SELECTED;
  const tr = el("tr", { "data-run-id": run.run_id, class: picked ? "selected" : "" });
  const pickCell = el("td", { class: "pick" });
  const box = el("input", { type: "checkbox", class: "pick", "aria-label": `compare ${run.name || run.run_id}`,
    checked: picked, disabled: !picked && full,
    title: !picked && full ? `at most ${MAX_SELECTED} runs at once` : "add to the comparison" });
  box.addEventListener("click", ev => { ev.stopPropagation(); handlers.toggle(run.run_id); });
  pickCell.appendChild(box);
  if (picked) pickCell.appendChild(el("span", { class: "swatch", style: `background:${colorOf(run.run_id)}` }));
  tr.appendChild(pickCell);

  const name = el("td", { class: "name" });
  name.appendChild(el("div", { class: "run-name" }, run.name || run.run_id.slice(0, 12)));
  const tags = (run.tags || []).length ? ` · ${run.tags.join(", ")}` : "";
  name.appendChild(el("div", { class: "muted small" },
    `${run.project || "–"} · ${run.run_id.slice(0, 12)} · ${fmtWhen(run.started_at)}${tags}`));
  tr.appendChild(name);
  const st = el("td");
  st.appendChild(badge(run));
  if (run.dropped) st.appendChild(el("div", { class: "muted small" }, `${run.dropped} dropped`));
  if (run.clock_ahead_s) st.appendChild(el("div", { class: "muted small clock-ahead",
    title: "its timestamps were ahead of the pipeline's clock; ordered by arrival time" }, "clock ahead"));
  tr.appendChild(st);
  const epochs = el("td", { class: "num" }, String(run.epochs ?? "–"));
  if (run.steps) epochs.appendChild(el("div", { class: "muted small", title: `${run.steps.toLocaleString("en")} steps` },
    `${compact(run.steps)} steps`));
  tr.appendChild(epochs);
  const best = fieldOf(run, "best_value");
  const bestCell = el("td", { class: "num", title: run.best_metric || "" }, run.best_epoch == null ? "–" : fmtNum(best));
  if (run.best_epoch != null) bestCell.appendChild(el("div", { class: "muted small" }, `epoch ${run.best_epoch}`));
  tr.appendChild(bestCell);
  tr.addEventListener("click", () => handlers.only(run.run_id));
  tr.__sig = signature(run);
  return tr;
}

// What a row shows, in short: `version` moves with every change of the run; status and age are read-time.
function signature(run) {
  return `${run.version}|${run.status}|${fmtWhen(run.started_at)}|${run.dropped}`;
}

// The rows already on screen brought up to date: only the runs that changed get a new row, the rest are
// moved into place (a poll while runs train changes a few rows of 1,000, not all of them).
function reconcile(tbody, runs, selected, colorOf, handlers) {
  const old = new Map([...tbody.rows].map(tr => [tr.dataset.runId, tr]));
  let at = tbody.firstElementChild;
  for (const run of runs) {
    let tr = old.get(run.run_id);
    if (tr) old.delete(run.run_id);
    if (!tr || tr.__sig !== signature(run)) {
      const fresh = rowOf(run, selected, colorOf, handlers);
      if (tr) tr.replaceWith(fresh);
      if (tr === at) at = fresh;
      tr = fresh;
    }
    if (tr !== at) tbody.insertBefore(tr, at); else at = at.nextElementSibling;
  }
  for (const tr of old.values()) tr.remove();
}

// Draws the first rows now and the rest in chunks after the first paint (1,000 rows are ~15,000 elements);
// the promise resolves when every row is in, or when a newer call has taken over. `selected()` is asked for
// each chunk: the selection may change while the rows go in. `sameList`: the rows on screen are of the same
// filters (a poll, more pages): reconciled instead.
export function renderRunsTable(tbody, runs, selected, colorOf, handlers, sameList) {
  const mine = ++drawing;
  if (sameList) {  // the same filters as the rows on screen: update them in place
    reconcile(tbody, runs, selected(), colorOf, handlers);
    markSelection(tbody, selected(), colorOf);
    return Promise.resolve();
  }
  const append = (lo, hi) => {
    const frag = document.createDocumentFragment();
    const now = selected();
    for (const run of runs.slice(lo, hi)) frag.appendChild(rowOf(run, now, colorOf, handlers));
    return frag;
  };
  tbody.replaceChildren(append(0, FIRST_ROWS));
  return new Promise(done => {
    const next = lo => {
      if (mine !== drawing || lo >= runs.length) { done(); return; }
      tbody.appendChild(append(lo, lo + CHUNK));
      setTimeout(() => next(lo + CHUNK));
    };
    requestAnimationFrame(() => setTimeout(() => next(FIRST_ROWS)));  // after the first screenful is painted
  });
}

// A new selection on the rows already drawn: boxes, highlight and colour swatches, nothing rebuilt.
export function markSelection(tbody, selected, colorOf) {
  const full = selected.length >= MAX_SELECTED;
  for (const tr of tbody.rows) {
    const id = tr.dataset.runId;
    const picked = selected.includes(id);
    tr.className = picked ? "selected" : "";
    const cell = tr.cells[0];
    const box = cell.firstChild;
    box.checked = picked;
    box.disabled = !picked && full;
    box.title = !picked && full ? `at most ${MAX_SELECTED} runs at once` : "add to the comparison";
    let swatch = cell.querySelector(".swatch");
    if (picked && !swatch) swatch = cell.appendChild(el("span", { class: "swatch" }));
    if (picked) swatch.style.background = colorOf(id);
    else if (swatch) swatch.remove();
  }
}

// The <datalist> of projects: what the pages seen so far named (the API has no project index to ask).
export function rememberProjects(datalist, known, runs) {
  let added = false;
  for (const run of runs) {
    if (run.project && !known.has(run.project)) { known.add(run.project); added = true; }
  }
  if (added) {
    datalist.replaceChildren(...[...known].sort().map(p => el("option", { value: p })));
  }
}
