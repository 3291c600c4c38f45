// One run in full: honest status, best epoch, flags and recommendation, the whole error (its last line in
// view, the traceback one click away), attempts, drops and the config.

import { badge, el, fieldOf, flagList, flattenConfig, fmtDuration, fmtNum, fmtValue, health, trendsOf } from "./format.js";

export function lastLine(text) {
  const lines = (text || "").split("\n").map(l => l.trimEnd()).filter(l => l.trim());
  return lines.length ? lines[lines.length - 1].trim() : "";
}

function errorBlock(run) {
  const box = el("div", { id: "error-box", class: "error" });
  box.appendChild(el("h3", {}, run.status === "failed" ? "Error" : "Error reported"));
  const raised = lastLine(run.traceback);
  box.appendChild(el("pre", { id: "error-text" }, run.error || raised));
  if (raised && raised !== (run.error || "").trim()) {
    const last = el("p", { id: "error-last", class: "last-line" });
    last.appendChild(el("span", { class: "muted" }, "raised: "));
    last.appendChild(el("code", {}, raised));
    box.appendChild(last);
  }
  if (run.traceback) {
    const details = el("details", { id: "traceback" });
    const n = run.traceback.split("\n").length;
    details.appendChild(el("summary", {}, `Traceback (${n} lines, innermost frame last)`));
    details.appendChild(el("pre", { id: "traceback-text" }, run.traceback));
    box.appendChild(details);
  }
  return box;
}

function configTable(config) {
  const table = el("table", { id: "config", class: "kv" });
  const body = el("tbody");
  const flat = flattenConfig(config);
  for (const [k, v] of Object.entries(flat)) {
    const tr = el("tr");
    tr.appendChild(el("th", {}, k));
    tr.appendChild(el("td", {}, fmtValue(v)));
    body.appendChild(tr);
  }
  if (!Object.keys(flat).length) body.appendChild(el("tr", {}, "")).appendChild(el("td", { class: "muted" }, "no config logged"));
  table.appendChild(body);
  return table;
}

export function renderRunDetail(root, run) {
  // Redrawn as the run moves on: what the reader opened or closed stays so.
  const same = root.dataset.run === run.run_id;
  const open = id => (same && root.querySelector(`#${id}`) ? root.querySelector(`#${id}`).open : null);
  const tracebackOpen = open("traceback"), configOpen = open("config-box");
  root.dataset.run = run.run_id;
  root.replaceChildren();
  const h = health(run);
  const title = el("h2", { id: "run-title" });
  title.appendChild(document.createTextNode(`${run.name || run.run_id} `));
  title.appendChild(badge(run));
  root.appendChild(title);
  const meta = [run.project && `project ${run.project}`, `run ${run.run_id}`, run.host && `host ${run.host}`,
    run.started_at && `started ${new Date(run.started_at).toLocaleString()}`,
    run.duration_s != null && `took ${fmtDuration(run.duration_s)}`, `${run.epochs} epochs`,
    run.steps ? `${run.steps} steps` : null, (run.tags || []).length ? `tags ${run.tags.join(", ")}` : null]
    .filter(Boolean);
  root.appendChild(el("p", { id: "run-meta", class: "muted" }, meta.join(" · ")));

  const best = el("div", { id: "best", class: "best" });
  best.appendChild(document.createTextNode("best epoch "));
  best.appendChild(el("strong", { id: "best-epoch" }, run.best_epoch == null ? "–" : String(run.best_epoch)));
  if (run.best_epoch != null) {
    best.appendChild(el("span", { id: "best-value", class: "muted" },
      ` ${run.best_metric} = ${fmtNum(fieldOf(run, "best_value"))} (${run.best_mode})`));
  }
  root.appendChild(best);

  const t = trendsOf(run);
  const flags = el("div", { id: "flags", class: "flags" });
  const list = flagList(t);
  if (!list.length && (h.key === "ok" || h.key === "running")) flags.appendChild(el("span", { class: "ok" }, "no flags"));
  for (const [text, cls] of list) flags.appendChild(el("span", { class: cls }, text));
  root.appendChild(flags);
  if (t.recommendation) {
    const rec = `Recommendation: ${t.recommendation.replace(/_/g, " ")}` +
      (t.recommendation === "use_checkpoint" && t.recommendation_epoch != null ? ` (epoch ${t.recommendation_epoch})` : "") +
      (t.reason ? ` — ${t.reason}` : "");
    root.appendChild(el("p", { id: "recommendation" }, rec));
  }
  if (run.error || run.traceback) root.appendChild(errorBlock(run));
  if (tracebackOpen && root.querySelector("#traceback")) root.querySelector("#traceback").open = true;
  if ((run.attempts || []).length > 1) {
    root.appendChild(el("p", { class: "muted", id: "attempts" }, `${run.attempts.length} attempts: ` +
      run.attempts.map(a => `#${a.attempt} ${a.status || "no end"}${a.resume ? " (resumed)" : ""}`).join(", ")));
  }
  if (run.drops && run.dropped) {
    const drops = el("p", { class: "warn-text", id: "drops" }, `${run.dropped} values or events lost: ` +
      Object.entries(run.drops.counts).map(([k, n]) => `${n} ${k}`).join(", "));
    if (run.drops.examples && run.drops.examples.length) drops.title = run.drops.examples.join("\n");
    root.appendChild(drops);
  }
  if (run.clock_ahead_s) {  // its clock ran ahead: the pipeline ordered its events by arrival instead
    root.appendChild(el("p", { class: "warn-text", id: "clock-ahead" }, `Clock ahead: this run's events were ` +
      `stamped up to ${fmtDuration(run.clock_ahead_s)} later than they arrived; ordered by arrival time instead.`));
  }
  const cfg = el("details", { id: "config-box", open: configOpen === null ? true : configOpen });
  cfg.appendChild(el("summary", {}, "Config"));
  cfg.appendChild(configTable(run.config));
  root.appendChild(cfg);
}
