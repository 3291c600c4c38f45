// Hand-written SVG line charts: no library, nothing fetched from outside.

const SVG_NS = "http://www.w3.org/2000/svg";

export function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function fmtTick(v) {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1).replace("e+", "e");
  return (+v.toPrecision(4)).toString();
}

// Round tick steps (1, 2, 5 × 10^k) covering [lo, hi] with about `count` ticks.
export function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return { lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), ticks };
}

// Decade ticks (in log10 units) covering [lo, hi], at most about six of them.
export function logTicks(lo, hi) {
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  const step = Math.max(1, Math.ceil((b - a) / 6));
  const ticks = [];
  for (let t = a; t <= b; t += step) ticks.push(t);
  return { lo: a, hi: Math.max(b, ticks[ticks.length - 1]), ticks };
}

// A curve spanning more than two decades (a loss that blew up, a learning-rate schedule) goes on a log scale,
// or its healthy part would be a flat line at the bottom.
export function wantsLog(ys) {
  if (ys.length < 2) return false;
  let lo = Infinity, hi = -Infinity;
  for (const y of ys) { if (y < lo) lo = y; if (y > hi) hi = y; }
  return lo > 0 && hi / lo > 100;
}

const finite = y => typeof y === "number" && Number.isFinite(y);

function pathOf(points, X, Y) {
  // One subpath per run of finite points: a NaN or a missing value breaks the line.
  let d = "", pen = false, drawn = 0;
  for (const p of points) {
    if (finite(p.y)) {
      d += `${pen ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`;
      pen = true; drawn++;
    } else {
      pen = false;
    }
  }
  return { d, drawn };
}

function extent(series) {
  let xlo = Infinity, xhi = -Infinity;
  const ys = [];
  for (const s of series) {
    for (const list of [s.points, s.raw || []]) {
      for (const p of list) {
        if (p.x < xlo) xlo = p.x;
        if (p.x > xhi) xhi = p.x;
        if (finite(p.y)) ys.push(p.y);
      }
    }
  }
  return { xlo, xhi, ys };
}

// series: [{id, name, color, points: [{x, y}], raw?: [{x, y}], best?: {x, y, label}}]; y is a number,
// NaN/±Infinity (marked × at the top edge) or null (a gap). `raw` is drawn faint behind a smoothed `points`.
// opts: {xLabel, integerX, bestLine: {x, label}, empty}
export function drawChart(svg, series, opts) {
  opts = opts || {};
  svg.replaceChildren();
  const vb = svg.viewBox.baseVal;
  const W = vb.width, H = vb.height, m = { l: 52, r: 12, t: 14, b: 30 };
  const { xlo, xhi, ys } = extent(series);
  if (!(xhi >= xlo)) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, opts.empty || "no data yet"));
    svg.dataset.drawn = "empty";
    svg.dataset.curves = "0";
    return;
  }
  const xt = niceTicks(xlo, xhi, 6);
  const log = wantsLog(ys);
  let ylo = Infinity, yhi = -Infinity;
  for (const y of ys) { if (y < ylo) ylo = y; if (y > yhi) yhi = y; }
  if (!ys.length) { ylo = 0; yhi = 1; }
  // A constant (a fixed learning rate, smoothed or not) is a flat line, not rounding noise blown up to full height.
  if (yhi - ylo <= 1e-9 * Math.max(Math.abs(ylo), Math.abs(yhi))) { ylo = yhi = (ylo + yhi) / 2; }
  const T = log ? Math.log10 : (y => y);
  const yt = log ? logTicks(ylo, yhi) : niceTicks(ylo, yhi, 4);
  const X = x => m.l + (x - xt.lo) / ((xt.hi - xt.lo) || 1) * (W - m.l - m.r);
  const Y = y => H - m.b - (T(y) - yt.lo) / ((yt.hi - yt.lo) || 1) * (H - m.t - m.b);

  const grid = svgEl("g", { class: "axes" });
  for (const t of yt.ticks) {
    const v = log ? Math.pow(10, t) : t;
    grid.appendChild(svgEl("line", { class: "grid", x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
    grid.appendChild(svgEl("text", { x: m.l - 5, y: Y(v) + 4, "text-anchor": "end" }, fmtTick(v)));
  }
  for (const t of xt.ticks) {
    if (opts.integerX && !Number.isInteger(t)) continue;
    grid.appendChild(svgEl("text", { x: X(t), y: H - m.b + 14, "text-anchor": "middle" }, fmtTick(t)));
  }
  grid.appendChild(svgEl("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
  grid.appendChild(svgEl("line", { class: "axis", x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  if (opts.xLabel) grid.appendChild(svgEl("text", { x: W - m.r, y: H - 3, "text-anchor": "end" }, opts.xLabel));
  if (log) grid.appendChild(svgEl("text", { class: "log-note", x: W - m.r - 2, y: m.t - 3, "text-anchor": "end" }, "log scale"));
  svg.appendChild(grid);
  svg.dataset.scale = log ? "log" : "linear";

  if (opts.bestLine && opts.bestLine.x !== null && opts.bestLine.x !== undefined) {
    const bx = X(opts.bestLine.x);
    svg.appendChild(svgEl("line", { class: "best-line", x1: bx, x2: bx, y1: m.t, y2: H - m.b }));
    const anchor = bx > W * 0.7 ? "end" : "start";
    svg.appendChild(svgEl("text", { class: "best-label", x: bx + (anchor === "end" ? -4 : 4), y: m.t + 22,
      "text-anchor": anchor }, opts.bestLine.label));
  }

  let curves = 0;
  for (const s of series) {
    if (s.raw) {
      const raw = pathOf(s.raw, X, Y);
      if (raw.drawn) svg.appendChild(svgEl("path", { class: "raw", d: raw.d, stroke: s.color, "data-run": s.id }));
    }
    const { d, drawn } = pathOf(s.points, X, Y);
    if (drawn) {
      const path = svgEl("path", { class: "curve", d, stroke: s.color, "data-run": s.id, "data-points": drawn });
      path.appendChild(svgEl("title", {}, s.name));
      svg.appendChild(path);
      curves++;
      if (drawn === 1) {
        const p = s.points.find(q => finite(q.y));
        svg.appendChild(svgEl("circle", { class: "dot", cx: X(p.x), cy: Y(p.y), r: 3, fill: s.color }));
      }
    }
    for (const p of s.raw || s.points) {
      if (typeof p.y === "number" && !Number.isFinite(p.y)) {
        const mark = svgEl("text", { class: "nonfinite", x: X(p.x), y: m.t + 8, "text-anchor": "middle",
          fill: s.color, "data-run": s.id }, "×");
        mark.appendChild(svgEl("title", {}, `${s.name}: ${fmtTick(p.y)} at ${p.x}`));
        svg.appendChild(mark);
      }
    }
    if (s.best && finite(s.best.y)) {
      const dot = svgEl("circle", { class: "best-dot", cx: X(s.best.x), cy: Y(s.best.y), r: 4.5, stroke: s.color,
        "data-run": s.id });
      dot.appendChild(svgEl("title", {}, s.best.label));
      svg.appendChild(dot);
    }
  }
  svg.dataset.curves = String(curves);
  svg.dataset.drawn = curves ? "true" : "empty";
  if (!curves) svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
    "only NaN or infinite values"));
  svg.__chart = { series, X, Y, xt, m, W, H, xLabel: opts.xLabel || "x" };
}

// The value of each series nearest to x: for the hover read-out.
export function nearest(points, x) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].x < x) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(points[lo - 1].x - x) <= Math.abs(points[lo].x - x)) lo -= 1;
  return points[lo];
}
