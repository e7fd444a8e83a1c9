// api.js: every call the dashboard makes goes through the REST API with the user's own token
// (kept in sessionStorage: gone with the tab, never in a cookie the browser would send by itself).

const TOKEN_KEY = 'husk.token';

export class ApiError extends Error {
  constructor(status, problem, fallback) {
    super((problem && (problem.detail || problem.title)) || fallback || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || null;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }
export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// body: an object (sent as JSON) or a string (sent as it is, with contentType).
export async function api(method, path, body, { contentType = 'application/yaml', signal, full = false } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (typeof body === 'string') {
    payload = body;
    headers['Content-Type'] = contentType;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, { method, headers, body: payload, cache: 'no-store', credentials: 'omit', signal });
  if (r.status === 204) return full ? { status: 204, data: null, headers: r.headers } : null;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    if (r.status === 401 && path !== '/login') onUnauthorized();
    throw new ApiError(r.status, data, text.slice(0, 200));
  }
  return full ? { status: r.status, data, headers: r.headers } : data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);

export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Server-Sent Events through a stream ticket (an EventSource cannot send a header). A ticket
// serves once: after a cut the stream reconnects with a fresh one, asking params() again so
// that it resumes where it was. Returns {close()}.
export function stream(path, params, { onMessage, onEnd, onState }) {
  let es = null, closed = false, timer = null;
  const state = (s) => onState && onState(s);
  async function open() {
    if (closed) return;
    state('connecting');
    let ticket;
    try {
      ticket = (await api('POST', '/auth/stream-ticket', {})).ticket;
    } catch (e) {
      state(`error: ${e.message}`);
      timer = setTimeout(open, 3000);
      return;
    }
    if (closed) return;
    es = new EventSource(path + qs({ ...params(), ticket }));
    es.onopen = () => state('live');
    es.onmessage = (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      onMessage(data, ev);
    };
    es.addEventListener('end', () => { es.close(); state('ended'); onEnd && onEnd(); });
    es.onerror = () => {
      es.close(); // its own retry would spend the used ticket again
      if (!closed) {
        state('reconnecting');
        timer = setTimeout(open, 2000);
      }
    };
  }
  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (es) es.close();
    },
  };
}
