// The console's HTTP helpers: JSON requests that turn the v3 error body into an Error.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error_code;
  }
}

export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!resp.ok) throw new ApiError(resp.status, json);
  return raw ? text : json;
}

let cluster = null;

// The cluster id (for the REST proxy's /v3/clusters/{id} paths), read once.
export async function clusterId() {
  if (!cluster) cluster = (await api('/api/console/overview')).cluster_id;
  return cluster;
}

export async function v3(path, opts) {
  return api(`/v3/clusters/${encodeURIComponent(await clusterId())}${path}`, opts);
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}
