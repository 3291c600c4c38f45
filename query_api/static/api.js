// GETs of the read-only JSON API with If-None-Match: a 304 answer reuses the body already held for that URL.

const MAX_CACHED = 400;  // URLs whose last body and ETag are kept (listings with many filters, many runs)
const cache = new Map();
let token = null;

export function setToken(value) { token = value || null; }

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map(d => d.msg || JSON.stringify(d)).join("; ");
  return JSON.stringify(detail);
}

// {body, fresh}: fresh is false when the server said 304 (nothing changed since the last answer).
export async function getJSON(url) {
  const cached = cache.get(url);
  const headers = { Accept: "application/json" };
  if (cached) headers["If-None-Match"] = cached.etag;
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(url, { headers, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "the API cannot be reached (is `epochstream api` or `epochstream up` running?)");
  }
  if (res.status === 304 && cached) {
    cache.delete(url); cache.set(url, cached);  // most recently used last
    return { body: cached.body, fresh: false };
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = detailText((await res.json()).detail) || detail; } catch (e) { /* not JSON */ }
    throw new ApiError(res.status, detail);
  }
  const body = await res.json();
  const etag = res.headers.get("ETag");
  if (etag) {
    cache.delete(url);
    cache.set(url, { etag, body });
    while (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value);
  }
  return { body, fresh: true };
}

// Like getJSON, but a failure becomes {error} instead of a rejection: one bad answer never blanks the page.
export async function tryJSON(url) {
  try { return await getJSON(url); } catch (error) { return { body: null, fresh: true, error }; }
}
