// The HTTP API (docs/api.md): one fetch wrapper that adds the bearer token and turns the server's
// `{"error": {"code", "message"}}` into an ApiError carrying both.

const TOKEN_KEY = 'feeds.token';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export const auth = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
};

let onSignedOut = () => {};
/** Called when the server no longer accepts the token (expired, revoked). */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

export async function request(method, path, { body, query, form, signal } = {}) {
  let url = `/api/v1${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const headers = {};
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  let payload;
  if (form) {
    payload = form; // multipart: the browser writes the boundary
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection and try again.');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(response.status, e.code || 'http_error', e.message || `The server answered ${response.status}.`, e.details);
    if (response.status === 401 && auth.token && path !== '/auth/signin') onSignedOut(err);
    throw err;
  }
  return data;
}

export const api = {
  get: (path, query, opts = {}) => request('GET', path, { query, ...opts }),
  post: (path, body) => request('POST', path, { body }),
  put: (path, body) => request('PUT', path, { body }),
  patch: (path, body) => request('PATCH', path, { body }),
  del: (path) => request('DELETE', path),
  upload: (path, form) => request('POST', path, { form }),
};

/** Download an attachment with the bearer token and hand it to the browser as a file. */
export async function download(path, filename) {
  const response = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${auth.token}` } });
  if (!response.ok) {
    let message = `The download failed (${response.status}).`;
    try {
      message = (await response.json()).error.message;
    } catch { /* not JSON */ }
    throw new ApiError(response.status, 'download_failed', message);
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
