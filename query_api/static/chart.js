// Hand-written SVG line charts: no library, nothing fetched from outside.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// Round tick steps (1, 2, 5 × 10^k) covering [lo, hi] with about `count` ticks.
function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { const d = Math.abs(lo) || 1; lo -= d / 2; hi += d / 2; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return { lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), ticks };
}

// Decade ticks (in log10 units) covering [lo, hi], at most about six of them.
function logTicks(lo, hi) {
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  const step = Math.max(1, Math.ceil((b - a) / 6));
  const ticks = [];
  for (let t = a; t <= b; t += step) ticks.push(t);
  return { lo: a, hi: Math.max(b, ticks[ticks.length - 1]), ticks };
}

function fmtNum(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (!isFinite(v)) return isNaN(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
  const a = Math.abs(v);
  return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(1).replace("e+", "e") : (+v.toPrecision(4)).toString();
}

// series: [{name, cls, points: [{x, y}]}] where y is a number, NaN/±Infinity (drawn as ×) or null (a gap).
// opts: {bestX, bestLabel, yLabel, xLabel, integerX}
function drawLineChart(svg, series, opts) {
  opts = opts || {};
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const vb = svg.viewBox.baseVal;
  const W = vb.width, H = vb.height, m = { l: 58, r: 16, t: 26, b: 34 };
  const finite = series.flatMap(s => s.points.filter(p => typeof p.y === "number" && isFinite(p.y)));
  const xs = series.flatMap(s => s.points.map(p => p.x));
  if (!xs.length) {
    svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, opts.empty || "no data yet"));
    svg.dataset.drawn = "empty";
    return;
  }
  const xt = niceTicks(Math.min(...xs), Math.max(...xs), 8);
  const ys = finite.map(p => p.y);
  // A curve spanning more than three decades (a diverging loss) is drawn on a log scale, or its healthy part
  // would be a flat line at the bottom.
  const log = ys.length > 1 && Math.min(...ys) > 0 && Math.max(...ys) / Math.min(...ys) > 1e3;
  const T = log ? Math.log10 : (y => y);
  const yt = log ? logTicks(Math.min(...ys), Math.max(...ys))
    : niceTicks(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, 5);
  const X = x => m.l + (x - xt.lo) / ((xt.hi - xt.lo) || 1) * (W - m.l - m.r);
  const Y = y => H - m.b - (T(y) - yt.lo) / ((yt.hi - yt.lo) || 1) * (H - m.t - m.b);

  for (const t of yt.ticks) {
    const v = log ? Math.pow(10, t) : t;
    svg.appendChild(svgEl("line", { class: "grid", x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
    svg.appendChild(svgEl("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, fmtNum(v)));
  }
  if (log) svg.appendChild(svgEl("text", { x: m.l + 4, y: H - m.b - 4 }, "log scale"));
  for (const t of xt.ticks) {
    if (opts.integerX && !Number.isInteger(t)) continue;
    svg.appendChild(svgEl("text", { x: X(t), y: H - m.b + 16, "text-anchor": "middle" }, fmtNum(t)));
  }
  svg.appendChild(svgEl("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
  svg.appendChild(svgEl("line", { class: "axis", x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  if (opts.xLabel) svg.appendChild(svgEl("text", { x: W - m.r, y: H - 4, "text-anchor": "end" }, opts.xLabel));
  if (opts.yLabel) svg.appendChild(svgEl("text", { x: 4, y: 14 }, opts.yLabel));

  if (opts.bestX !== undefined && opts.bestX !== null) {
    const bx = X(opts.bestX);
    svg.appendChild(svgEl("line", { class: "best-line", x1: bx, x2: bx, y1: m.t, y2: H - m.b }));
    const anchor = bx > W * 0.75 ? "end" : "start";
    svg.appendChild(svgEl("text", { class: "best-label", x: bx + (anchor === "end" ? -4 : 4), y: m.t + 26,
      "text-anchor": anchor }, opts.bestLabel || `best epoch ${opts.bestX}`));
  }

  let legendX = opts.yLabel ? Math.max(m.l + 8, 4 + opts.yLabel.length * 6.5 + 16) : m.l + 8;
  for (const s of series) {
    // One path per run of finite points: a NaN or a missing value breaks the line.
    let d = "", pen = false, drawn = 0;
    for (const p of s.points) {
      if (typeof p.y === "number" && isFinite(p.y)) {
        d += `${pen ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)} `;
        pen = true; drawn++;
      } else {
        pen = false;
        if (typeof p.y === "number") {  // NaN or inf: mark it at the top edge
          const mark = svgEl("text", { class: `nonfinite ${s.cls}`, x: X(p.x), y: m.t + 10, "text-anchor": "middle" }, "×");
          mark.appendChild(svgEl("title", {}, `${s.name} = ${fmtNum(p.y)} at ${p.x}`));
          svg.appendChild(mark);
        }
      }
    }
    if (drawn) {
      const path = svgEl("path", { class: `curve ${s.cls}`, d: d.trim(), "data-points": drawn });
      path.appendChild(svgEl("title", {}, s.name));
      svg.appendChild(path);
      if (drawn === 1) {
        const p = s.points.find(q => typeof q.y === "number" && isFinite(q.y));
        svg.appendChild(svgEl("circle", { class: `dot ${s.cls}`, cx: X(p.x), cy: Y(p.y), r: 3 }));
      }
    }
    svg.appendChild(svgEl("line", { class: `curve ${s.cls}`, x1: legendX, x2: legendX + 18, y1: m.t - 12, y2: m.t - 12 }));
    svg.appendChild(svgEl("text", { x: legendX + 22, y: m.t - 8 }, s.name));
    legendX += 30 + s.name.length * 7;
  }
  svg.dataset.drawn = "true";
}
