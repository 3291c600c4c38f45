// The page's state in the URL hash: selected runs, filters, sort, smoothing, page size. Pure functions.
//   #runs=ID1,ID2&project=P&status=failed&tag=T&q=TEXT&sort=best&smooth=0.6&per=100
// Every link a person shares restores exactly what they saw; Back/Forward walk through the states.

export const MAX_SELECTED = 10;  // one colour each; beyond ten the curves stop being readable
export const STATUSES = ["running", "completed", "failed", "interrupted", "stale"];
export const SORTS = ["newest", "oldest", "best", "best_desc", "epochs"];
export const PAGE_SIZES = [50, 100, 200, 500, 1000];
export const API_PAGE = 500;  // the most rows /runs gives in one answer: a larger page is several of them
export const DEFAULTS = Object.freeze({ runs: [], project: "", status: "", tag: "", q: "", sort: "newest",
  smooth: 0, per: 100 });
const KEYS = ["runs", "project", "status", "tag", "q", "sort", "smooth", "per"];

function decode(value) {
  try { return decodeURIComponent(value.replace(/\+/g, " ")); } catch (e) { return value; }
}

// {state, token}: the state (defaults filled in, bad values dropped) and a `token=` if the hash had one.
export function parseHash(hash) {
  const state = { ...DEFAULTS, runs: [] };
  let token = null;
  for (const part of (hash || "").replace(/^#/, "").split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    const raw = eq < 0 ? "" : part.slice(eq + 1);
    if (key === "runs" || key === "run") {  // `run=` is the old single-run link; it keeps working
      for (const id of raw.split(",")) {
        const v = decode(id).trim();
        if (v && !state.runs.includes(v) && state.runs.length < MAX_SELECTED) state.runs.push(v);
      }
    } else if (key === "token") {
      token = decode(raw);
    } else if (key === "status") {
      const v = decode(raw); if (STATUSES.includes(v)) state.status = v;
    } else if (key === "sort") {
      const v = decode(raw); if (SORTS.includes(v)) state.sort = v;
    } else if (key === "smooth") {
      const v = Number(decode(raw));
      if (Number.isFinite(v) && v > 0 && v < 1) state.smooth = Math.round(v * 1000) / 1000;
    } else if (key === "per") {
      const v = Number(decode(raw)); if (PAGE_SIZES.includes(v)) state.per = v;
    } else if (key === "project" || key === "tag" || key === "q") {
      state[key] = decode(raw).slice(0, 200);
    }
  }
  return { state, token };
}

// The hash for a state: only what differs from the defaults, always in the same order (so equal states give
// equal hashes, and a state that did not change adds no history entry).
export function formatHash(state) {
  const parts = [];
  for (const key of KEYS) {
    const v = state[key];
    if (key === "runs") {
      if (v && v.length) parts.push(`runs=${v.map(encodeURIComponent).join(",")}`);
    } else if (v !== undefined && v !== null && v !== "" && v !== DEFAULTS[key]) {
      parts.push(`${key}=${encodeURIComponent(String(v))}`);
    }
  }
  return parts.length ? `#${parts.join("&")}` : "#";
}

// The /runs query string for a state's filters (the API does the filtering, sorting and paging).
export function listingQuery(state, cursor, limit) {
  const p = new URLSearchParams();
  for (const key of ["project", "status", "tag", "q"]) if (state[key]) p.set(key, state[key]);
  if (state.sort !== "newest") p.set("sort", state.sort);
  p.set("limit", String(limit || Math.min(state.per, API_PAGE)));
  if (cursor) p.set("cursor", cursor);
  return `/runs?${p.toString()}`;
}

export function sameFilters(a, b) {
  return ["project", "status", "tag", "q", "sort", "per"].every(k => a[k] === b[k]);
}
