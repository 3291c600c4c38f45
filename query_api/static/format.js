// Small shared helpers: DOM building (always as text: names and errors are user data), numbers, the
// API's strict-JSON markers, and what a run's status honestly is.

// Ten colours that stay apart for the colour-blind as far as ten can (Tableau 10).
export const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac"];

export function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    e.setAttribute(k, v === true ? "" : String(v));
  }
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export function fmtNum(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2).replace("e+", "e");
  return (+v.toPrecision(4)).toString();
}

function marked(marker) {
  return marker === "nan" ? NaN : (marker.startsWith("-") ? -Infinity : Infinity);
}

// A metric of an API row ({metrics, non_finite}) with the marker turned back into NaN/±Infinity; null: absent.
export function metricOf(row, name) {
  const nf = row.non_finite && row.non_finite[name];
  if (nf) return marked(nf);
  const v = row.metrics ? row.metrics[name] : row.values ? row.values[name] : undefined;
  return typeof v === "number" ? v : null;
}

// A top-level float of a run (best_value, final_loss, ...), markers included.
export function fieldOf(obj, name) {
  const nf = obj.non_finite && obj.non_finite[name];
  if (nf) return marked(nf);
  return typeof obj[name] === "number" ? obj[name] : null;
}

export function trendsOf(run) {
  if (run.trends) return run.trends;
  const t = {};
  for (const k of ["is_overfitting", "is_plateaued", "is_diverging", "recommendation", "reason", "should_stop"]) {
    if (k in run) t[k] = run[k];
  }
  return t;
}

// What a run's state honestly is, worst first: a completed run that diverged is not healthy, and neither is a
// failed one with no trend flag. {key, label, why}; the key names the CSS look (h-<key>).
export function health(run) {
  const t = trendsOf(run);
  const status = run.status || "running";
  const suspect = Object.keys(t.suspect_metrics || {}).length > 0;
  if (status === "failed") return { key: "failed", label: "failed", why: "the run ended with an error" };
  if (t.is_diverging) return { key: "diverged", label: `${status} · diverged`, why: "the monitored metric diverged (NaN, inf or blew up)" };
  if (status === "stale") return { key: "stale", label: "stale", why: "running, but silent for longer than its heartbeat allows" };
  if (status === "interrupted") return { key: "interrupted", label: "interrupted", why: "stopped before it finished" };
  if (t.is_overfitting) return { key: "overfitting", label: `${status} · overfitting`, why: "validation worsens while training improves" };
  if (suspect) return { key: "suspect", label: `${status} · suspect`, why: "a metric is all zero, constant or all NaN" };
  if (t.is_plateaued) return { key: "plateau", label: `${status} · plateau`, why: "no improvement for a while" };
  if (status === "running") return { key: "running", label: "running", why: "sending data" };
  return { key: "ok", label: status, why: "finished with no trend flag" };
}

export function badge(run) {
  const h = health(run);
  return el("span", { class: `badge h-${h.key}`, title: h.why, "data-health": h.key }, h.label);
}

export function flagList(t) {
  const out = [];
  if (t.is_diverging) out.push(["diverging", "bad"]);
  if (t.is_overfitting) out.push(["overfitting", "warn"]);
  if (t.is_plateaued) out.push(["plateau", "warn"]);
  if (t.should_stop) out.push(["early stopping would stop now", "warn"]);
  if (t.epochs_since_improvement > 0) out.push([`${t.epochs_since_improvement} epochs since improvement`, "warn"]);
  for (const [m, why] of Object.entries(t.suspect_metrics || {})) out.push([`${m}: ${why.replace(/_/g, " ")}`, "bad"]);
  return out;
}

export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function fmtWhen(iso) {
  if (!iso) return "–";
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "–";
  const ago = (Date.now() - t) / 1000;
  if (ago >= 0 && ago < 90) return `${Math.round(ago)} s ago`;
  if (ago >= 0 && ago < 5400) return `${Math.round(ago / 60)} min ago`;
  if (ago >= 0 && ago < 36 * 3600) return `${Math.round(ago / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

// A config as flat `a.b.c` keys, so nested hyper-parameters compare key by key. Deep or huge values stay JSON.
export function flattenConfig(config, prefix = "", depth = 0, out = {}) {
  for (const [k, v] of Object.entries(config || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && depth < 6 && Object.keys(v).length) {
      flattenConfig(v, key, depth + 1, out);
    } else {
      out[key] = v;
    }
  }
  return out;
}

export function fmtValue(v) {
  if (v === undefined) return "–";
  if (v === null) return "null";
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function runLabel(run, id) {
  if (!run) return id;
  return run.name || run.run_id.slice(0, 12);
}
