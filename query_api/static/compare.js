// Runs side by side: a table of what differs (config keys, best value and epoch, final values, status,
// duration) and parallel coordinates of the differing config values against the best value.

import { svgEl, fmtTick } from "./chart.js";
import { badge, el, fieldOf, flattenConfig, fmtDuration, fmtNum, fmtValue, metricOf } from "./format.js";

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Config keys whose values are not the same in every run (a key missing from some runs differs too).
export function differingKeys(configs) {
  const keys = [...new Set(configs.flatMap(c => Object.keys(c)))].sort();
  return keys.filter(k => configs.some(c => !same(c[k], configs[0][k]) || !(k in c)));
}

function finals(epochRows) {
  const out = {};
  for (const row of epochRows || []) {
    for (const k of Object.keys(row.metrics || {})) out[k] = metricOf(row, k);
  }
  return out;
}

function headerRow(runs) {
  const tr = el("tr");
  tr.appendChild(el("th", {}, ""));
  for (const r of runs) {
    const th = el("th", { "data-run": r.id });
    th.appendChild(el("span", { class: "swatch", style: `background:${r.color}` }));
    th.appendChild(document.createTextNode(r.label));
    tr.appendChild(th);
  }
  return tr;
}

function row(label, cells, cls) {
  const tr = el("tr", { class: cls || "" });
  tr.appendChild(el("th", {}, label));
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

// runs: [{id, color, label, summary, epochs}] with a summary each (runs that failed to load are left out).
export function renderComparison(root, runs, showAllConfig) {
  root.replaceChildren();
  const configs = runs.map(r => flattenConfig(r.summary.config));
  const differ = differingKeys(configs);
  const keys = showAllConfig ? [...new Set(configs.flatMap(c => Object.keys(c)))].sort() : differ;
  const table = el("table", { id: "compare-table", class: "compare" });
  const head = el("thead");
  head.appendChild(headerRow(runs));
  table.appendChild(head);
  const body = el("tbody");
  body.appendChild(row("status", runs.map(r => badge(r.summary))));
  body.appendChild(row("duration", runs.map(r => fmtDuration(r.summary.duration_s))));
  body.appendChild(row("epochs / steps", runs.map(r => `${r.summary.epochs} / ${r.summary.steps}`)));
  body.appendChild(row("best", runs.map(r => r.summary.best_epoch == null ? "–"
    : `${r.summary.best_metric} ${fmtNum(fieldOf(r.summary, "best_value"))} @ epoch ${r.summary.best_epoch}`), "best-row"));
  const fin = runs.map(r => finals(r.epochs && r.epochs.epochs));
  for (const name of [...new Set(fin.flatMap(f => Object.keys(f)))].sort()) {
    body.appendChild(row(`final ${name}`, fin.map(f => (name in f ? fmtNum(f[name]) : "–")), "final-row"));
  }
  for (const k of keys) {
    body.appendChild(row(k, configs.map(c => fmtValue(c[k])), differ.includes(k) ? "config-row differs" : "config-row"));
  }
  table.appendChild(body);
  root.appendChild(table);
  const note = differ.length ? `${differ.length} config key${differ.length > 1 ? "s" : ""} differ`
    : "the configs are identical";
  root.appendChild(el("p", { class: "muted small", id: "compare-note" }, note));
  return differ;
}

function axisOf(key, values) {
  const present = values.filter(v => v !== undefined && v !== null);
  if (present.length && present.every(v => typeof v === "number" && Number.isFinite(v))) {
    let lo = Math.min(...present), hi = Math.max(...present);
    const log = lo > 0 && hi / lo >= 100;
    const T = log ? Math.log10 : (v => v);
    if (hi === lo) { lo -= 1; hi += 1; }
    const a = T(lo), b = T(hi);
    return { key, kind: "number", pos: v => (typeof v === "number" && Number.isFinite(v) ? (T(v) - a) / (b - a) : null),
      ticks: [[0, fmtTick(lo)], [1, fmtTick(hi)]], log };
  }
  const cats = [...new Set(present.map(v => fmtValue(v)))].sort();
  return { key, kind: "category", pos: v => (v === undefined || v === null ? null
    : (cats.length === 1 ? 0.5 : cats.indexOf(fmtValue(v)) / (cats.length - 1))),
    ticks: cats.slice(0, 12).map((c, i) => [cats.length === 1 ? 0.5 : i / (cats.length - 1), c]) };
}

// Parallel coordinates: one axis per differing config key (numbers on a linear or log axis, anything else
// as categories) and the best value last; one line per run in its colour.
export function renderParallel(svg, runs, keys) {
  svg.replaceChildren();
  const W = 760, H = 260, m = { l: 40, r: 70, t: 46, b: 22 };
  const bestMetrics = [...new Set(runs.map(r => r.summary.best_metric).filter(Boolean))];
  const axes = keys.slice(0, 12).map(k => axisOf(k, runs.map(r => flattenConfig(r.summary.config)[k])));
  const best = runs.map(r => fieldOf(r.summary, "best_value"));
  const bestAxis = axisOf(bestMetrics.length === 1 ? `best ${bestMetrics[0]}` : "best value", best);
  bestAxis.best = true;
  axes.push(bestAxis);
  if (axes.length < 2) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
      "no config key differs between these runs"));
    svg.dataset.drawn = "empty";
    return;
  }
  const X = i => m.l + i * (W - m.l - m.r) / (axes.length - 1);
  const Y = p => H - m.b - p * (H - m.t - m.b);
  axes.forEach((axis, i) => {
    const g = svgEl("g", { class: `pc-axis${axis.best ? " best" : ""}`, "data-key": axis.key });
    g.appendChild(svgEl("line", { class: "axis", x1: X(i), x2: X(i), y1: Y(0), y2: Y(1) }));
    const anchor = i === 0 ? "start" : i === axes.length - 1 ? "end" : "middle";
    const label = axis.key.length > 22 ? `…${axis.key.slice(-21)}` : axis.key;
    g.appendChild(svgEl("text", { class: "pc-label", x: X(i), y: 14 + (i % 2) * 12, "text-anchor": anchor }, label))
      .appendChild(svgEl("title", {}, axis.key + (axis.log ? " (log scale)" : "")));
    for (const [p, text] of axis.ticks) {
      g.appendChild(svgEl("text", { x: X(i) + 4, y: Y(p) + 4, class: "pc-tick" }, text.length > 14 ? `${text.slice(0, 13)}…` : text));
    }
    svg.appendChild(g);
  });
  runs.forEach((r, j) => {
    const cfg = flattenConfig(r.summary.config);
    let d = "", pen = false;
    axes.forEach((axis, i) => {
      const p = axis.best ? axis.pos(best[j]) : axis.pos(cfg[axis.key]);
      if (p === null) { pen = false; return; }
      d += `${pen ? "L" : "M"}${X(i).toFixed(1)},${Y(p).toFixed(1)}`;
      pen = true;
    });
    if (!d) return;
    const path = svgEl("path", { class: "pc-line", d, stroke: r.color, "data-run": r.id });
    path.appendChild(svgEl("title", {}, `${r.label}: best ${fmtNum(best[j])}`));
    svg.appendChild(path);
  });
  svg.dataset.drawn = "true";
}
