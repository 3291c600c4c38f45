// The runs table: one page (or a few, with "load more") of the API's filtered, sorted listing, a checkbox per
// run for comparison. Filtering, sorting and paging are the server's: this works the same with 10 or 100,000 runs.

import { MAX_SELECTED } from "./hashstate.js";
import { badge, el, fieldOf, fmtNum, fmtWhen } from "./format.js";

export function renderRunsTable(tbody, runs, selected, colorOf, handlers) {
  const frag = document.createDocumentFragment();
  const full = selected.length >= MAX_SELECTED;
  for (const run of runs) {
    const picked = selected.includes(run.run_id);
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
    tr.appendChild(st);
    const epochs = el("td", { class: "num" }, String(run.epochs ?? "–"));
    if (run.steps) epochs.appendChild(el("div", { class: "muted small" }, `${run.steps.toLocaleString("en")} steps`));
    tr.appendChild(epochs);
    const best = fieldOf(run, "best_value");
    const bestCell = el("td", { class: "num", title: run.best_metric || "" }, run.best_epoch == null ? "–" : fmtNum(best));
    if (run.best_epoch != null) bestCell.appendChild(el("div", { class: "muted small" }, `epoch ${run.best_epoch}`));
    tr.appendChild(bestCell);
    tr.addEventListener("click", () => handlers.only(run.run_id));
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
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
