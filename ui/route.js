// route.js: the page's state lives in the URL hash: "#/path/parts?key=value&key=value".
// Pure functions, unit-tested with node (tests/ui/test_client.mjs).

export function parseHash(hash) {
  const text = (hash || '').replace(/^#/, '') || '/';
  const at = text.indexOf('?');
  const path = at < 0 ? text : text.slice(0, at);
  const query = {};
  for (const [k, v] of new URLSearchParams(at < 0 ? '' : text.slice(at + 1))) query[k] = v;
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { path: '/' + parts.map(encodeURIComponent).join('/'), parts, query };
}

// Empty values are left out, so a cleared filter leaves no trace in a shared link; keys are
// sorted so that one state has one URL.
export function buildHash(parts, query = {}) {
  const path = '/' + parts.map((p) => encodeURIComponent(p)).join('/');
  const q = new URLSearchParams();
  for (const k of Object.keys(query).sort()) {
    const v = query[k];
    if (v !== undefined && v !== null && v !== '' && v !== false) q.set(k, v === true ? '1' : String(v));
  }
  const s = q.toString();
  return '#' + path + (s ? '?' + s : '');
}
