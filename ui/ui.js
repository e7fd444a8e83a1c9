// ui.js: DOM helpers (no innerHTML with data: every text goes in as text), formatting, toasts,
// confirmation dialogs, tables.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElementNS(attrs && attrs.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'svg' || v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && !attrs.svg && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function toast(message, { error = false, ms = 5000 } = {}) {
  const t = h('div', { class: error ? 'toast err' : 'toast', role: error ? 'alert' : 'status' }, message);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), ms);
}

// A modal question; resolves true when confirmed. Escape cancels (the dialog element does).
export function confirmDialog(title, text, { confirm = 'Confirm', danger = false, typed = null } = {}) {
  return new Promise((resolve) => {
    const input = typed ? h('input', { 'aria-label': `Type ${typed} to confirm`, autocomplete: 'off' }) : null;
    const ok = h('button', { class: danger ? 'danger' : 'primary', type: 'submit', disabled: !!typed }, confirm);
    if (input) input.addEventListener('input', () => { ok.disabled = input.value !== typed; });
    const d = h('dialog', { 'aria-label': title },
      h('form', { method: 'dialog' },
        h('h2', {}, title), h('p', {}, text),
        typed ? h('p', {}, 'Type ', h('b', {}, typed), ' to confirm:') : null, input,
        h('div', { class: 'toolbar' }, ok, h('button', { type: 'button', value: 'cancel', onclick: () => d.close('cancel') }, 'Cancel'))));
    d.addEventListener('close', () => { resolve(d.returnValue !== 'cancel' && d.returnValue !== ''); d.remove(); });
    ok.addEventListener('click', (ev) => { ev.preventDefault(); d.close('ok'); });
    document.body.append(d);
    d.showModal();
    (input || ok).focus();
  });
}

export function badge(status) {
  const s = String(status || 'unknown');
  return h('span', { class: `badge s-${s.replace(/[^a-z_]/gi, '_')}` }, s);
}

export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${u[i]}`;
}

export function fmtAge(ts) {
  if (!ts) return '–';
  const t = typeof ts === 'number' ? ts : Date.parse(ts);
  if (!Number.isFinite(t)) return String(ts);
  let s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? (s % 60) + 's' : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export function fmtTime(ts) {
  if (!ts) return '–';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

// columns: [{title, get(row) -> node|text, class}]
export function table(rows, columns, { empty = 'Nothing here.', caption } = {}) {
  if (!rows || !rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    caption ? h('caption', { class: 'muted' }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.title)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.class }, c.get(r))))))));
}

// A JSON object as a definition list (nested values as JSON text).
export function kv(obj) {
  return h('dl', { class: 'kv' }, Object.entries(obj || {}).flatMap(([k, v]) => [
    h('dt', {}, k), h('dd', {}, v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v ?? '–'))]));
}

export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e && e.status ? `${e.status}: ${e.message}` : String(e && e.message || e));
}

// el.append() would print null as "null" and an array as its text: these skip what is absent
// and flatten lists.
export function add(el, ...children) {
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function fill(el, ...children) {
  return add(clear(el), ...children);
}
