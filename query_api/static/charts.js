// Small multiples: one chart per metric, grouped by prefix (train/x beside val/x), every selected run overlaid
// in its own colour. Epoch, step and system sections share this code.

import { drawChart, fmtTick, nearest, svgEl } from "./chart.js";
import { el, fmtNum, metricOf } from "./format.js";

const PREFIX_ORDER = ["train", "val", "valid", "validation", "eval", "test"];
const VIEWBOX = "0 0 420 230";

function prefixRank(p) {
  const i = PREFIX_ORDER.indexOf(p);
  return i < 0 ? PREFIX_ORDER.length : i;
}

// {columns, rows: [{suffix, cells: {prefix: name}}], other}: `train/loss` and `val/loss` share a row, one
// column per prefix; names without a prefix (learning_rate, gradient_norm, ...) go to `other`.
export function layoutMetrics(names) {
  const prefixed = new Map();
  const other = [];
  for (const name of names) {
    const slash = name.indexOf("/");
    if (slash <= 0) { other.push(name); continue; }
    const prefix = name.slice(0, slash), suffix = name.slice(slash + 1);
    if (!prefixed.has(suffix)) prefixed.set(suffix, {});
    prefixed.get(suffix)[prefix] = name;
  }
  const columns = [...new Set([...prefixed.values()].flatMap(c => Object.keys(c)))]
    .sort((a, b) => prefixRank(a) - prefixRank(b) || a.localeCompare(b));
  const rank = s => (s === "loss" ? 0 : 1);
  const rows = [...prefixed.entries()].sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]))
    .map(([suffix, cells]) => ({ suffix, cells }));
  return { columns, rows, other: other.sort() };
}

function card(kind, name, title) {
  const fig = el("figure", { class: "chart-card", "data-kind": kind, "data-metric": name });
  fig.appendChild(el("figcaption", { title: name }, title || name));
  const svg = svgEl("svg", { class: "chart", viewBox: VIEWBOX, role: "img", "aria-label": `${title || name} chart` });
  fig.appendChild(svg);
  return { fig, svg };
}

// Fill `container` with one chart per name; `draw(name, svg)` draws each. Returns the number of charts.
export function renderGrid(container, kind, names, draw, titleOf) {
  container.replaceChildren();
  if (!names.length) return 0;
  const { columns, rows, other } = layoutMetrics(names);
  const cols = Math.min(Math.max(columns.length, 2), 4);
  if (rows.length && columns.length <= 4) {
    const grid = el("div", { class: "chart-grid", style: `grid-template-columns: repeat(${cols}, minmax(0, 1fr))` });
    rows.forEach((row, r) => {
      columns.forEach((prefix, c) => {
        const name = row.cells[prefix];
        if (!name) return;
        const { fig, svg } = card(kind, name, titleOf && titleOf(name));
        fig.style.gridRow = String(r + 1);
        fig.style.gridColumn = String(c + 1);
        grid.appendChild(fig);
        draw(name, svg);
      });
    });
    container.appendChild(grid);
  } else {
    other.push(...rows.flatMap(r => Object.values(r.cells)));
  }
  if (other.length) {
    const grid = el("div", { class: "chart-grid auto" });
    for (const name of other) {
      const { fig, svg } = card(kind, name, titleOf && titleOf(name));
      grid.appendChild(fig);
      draw(name, svg);
    }
    container.appendChild(grid);
  }
  return names.length;
}

// Points of one metric from API rows: rows without the metric are skipped (a downsampled step row carries only
// the metrics that kept it; validation may be logged less often), NaN/inf kept to be marked.
export function pointsOf(rows, name, xOf) {
  const out = [];
  for (const row of rows || []) {
    const y = metricOf(row, name);
    if (y !== null) out.push({ x: xOf(row), y });
  }
  return out;
}

export function metricNames(rowLists) {
  const names = new Set();
  for (const rows of rowLists) {
    for (const row of rows || []) {
      for (const k of Object.keys(row.metrics || row.values || {})) names.add(k);
    }
  }
  return [...names].sort();
}

// The hover read-out: a guide line and each run's nearest value, for any chart drawn by drawChart.
export function attachHover(root, tooltip) {
  let last = null;
  const clear = () => {
    tooltip.hidden = true;
    if (last) for (const g of last.querySelectorAll("line.hover-line")) g.remove();
    last = null;
  };
  root.addEventListener("mousemove", ev => {
    const svg = ev.target.closest && ev.target.closest("svg.chart");
    if (svg !== last) clear();
    if (!svg || !svg.__chart) return;
    last = svg;
    const c = svg.__chart;
    const pt = svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    const local = pt.matrixTransform(svg.getScreenCTM().inverse());
    if (local.x < c.m.l || local.x > c.W - c.m.r) { tooltip.hidden = true; return; }
    const x = c.xt.lo + (local.x - c.m.l) / (c.W - c.m.l - c.m.r) * (c.xt.hi - c.xt.lo);
    const lines = [];
    let at = null;
    for (const s of c.series) {
      const p = nearest(s.points, x);
      if (!p) continue;
      at = at === null || Math.abs(p.x - x) < Math.abs(at - x) ? p.x : at;
      lines.push([s.color, s.name, fmtNum(p.y), p.x]);
    }
    if (!lines.length) { tooltip.hidden = true; return; }
    let guide = svg.querySelector("line.hover-line");
    if (!guide) { guide = svgEl("line", { class: "hover-line" }); svg.appendChild(guide); }
    guide.setAttribute("x1", c.X(at)); guide.setAttribute("x2", c.X(at));
    guide.setAttribute("y1", c.m.t); guide.setAttribute("y2", c.H - c.m.b);
    tooltip.replaceChildren(el("div", { class: "tip-x" }, `${c.xLabel} ${fmtTick(at)}`));
    for (const [color, name, value, px] of lines) {
      const row = el("div");
      row.appendChild(el("span", { class: "swatch", style: `background:${color}` }));
      row.appendChild(document.createTextNode(`${name}: ${value}${px !== at ? ` (at ${fmtTick(px)})` : ""}`));
      tooltip.appendChild(row);
    }
    tooltip.hidden = false;
    tooltip.style.left = `${Math.min(ev.pageX + 14, document.documentElement.scrollWidth - 260)}px`;
    tooltip.style.top = `${ev.pageY + 12}px`;
  });
  root.addEventListener("mouseleave", clear);
}

export { drawChart };
