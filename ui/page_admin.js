// page_admin.js: the smaller pages: namespaces with their audit log, configs, secrets (metadata
// only), volumes, tokens, users, webhooks with their deliveries, and the node. Each shows what
// the role may see and offers only what it may do.
import { api, get, qs } from './api.js';
import { capacity } from './page_overview.js';
import { add, badge, confirmDialog, errorBox, fill, fmtTime, h, kv, table, toast } from './ui.js';

// A form of labelled fields; submit calls onSubmit(values) and shows its error inline.
function form(id, fields, submitText, onSubmit) {
  const inputs = {};
  const msg = h('p', { class: 'error', role: 'alert' });
  const f = h('form', { class: 'form card', id },
    fields.map(([name, label, opts = {}]) => {
      const el = opts.options
        ? h('select', { id: `${id}-${name}`, name }, opts.options.map((o) => h('option', { value: o }, o)))
        : opts.multiline ? h('textarea', { id: `${id}-${name}`, name, rows: 4, placeholder: opts.placeholder || '' })
          : h('input', { id: `${id}-${name}`, name, type: opts.type || 'text', placeholder: opts.placeholder || '', required: !!opts.required, autocomplete: 'off' });
      inputs[name] = el;
      return [h('label', { for: `${id}-${name}` }, label), el];
    }),
    msg, h('div', { class: 'toolbar' }, h('button', { class: 'primary', type: 'submit' }, submitText)));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
    try {
      await onSubmit(values);
      f.reset();
    } catch (e) {
      const v = e.problem && e.problem.violations;
      msg.textContent = v && v.length ? v.map((x) => `${x.field}: ${x.reason}`).join('; ') : e.message;
    }
  });
  return f;
}

function deleteButton(what, doDelete, refresh) {
  return h('button', {
    class: 'danger',
    onclick: async () => {
      if (!(await confirmDialog(`Delete ${what}`, `Delete ${what}?`, { confirm: 'Delete', danger: true }))) return;
      try { await doDelete(); toast(`${what} deleted`); refresh(); } catch (e) { toast(e.message, { error: true }); }
    },
  }, 'Delete');
}

// A list page: title, a loader, columns, and an optional creation form.
async function listPage(ctx, title, load, columns, create) {
  const body = h('div');
  ctx.main.append(h('h1', {}, title), body);
  async function refresh() {
    let rows;
    try { rows = await load(); } catch (e) {
      fill(body, e.status === 404 ? h('p', { class: 'muted' }, `This server does not offer ${title.toLowerCase()} yet (404).`) : errorBox(e));
      return;
    }
    fill(body, table(rows, columns(refresh)), create ? create(refresh) : null);
  }
  await refresh();
  return refresh;
}

async function namespaceFilter(ctx) {
  const sel = h('select', { id: 'f-namespace', 'aria-label': 'Namespace' }, h('option', { value: '' }, 'all namespaces'));
  try { for (const n of await get('/namespaces')) sel.append(h('option', { value: n.name }, n.name)); } catch { /* none visible */ }
  sel.value = ctx.route.query.namespace || '';
  return sel;
}

export const namespaces = {
  async render(ctx) {
    const audit = h('div', { id: 'audit' });
    const sel = ctx.route.query.ns || '';
    await listPage(ctx, 'Namespaces', () => get('/namespaces'), (refresh) => [
      { title: 'Name', get: (n) => h('a', { href: `#/namespaces?ns=${encodeURIComponent(n.name)}` }, n.name) },
      { title: 'Deployments', get: (n) => h('a', { href: `#/deployments?namespace=${encodeURIComponent(n.name)}` }, String(n.deployments ?? 'list')) },
      { title: 'Created', class: 'opt', get: (n) => fmtTime(n.created_at) },
      { title: '', get: (n) => (ctx.can('namespaces:write') && n.name !== 'default'
        ? deleteButton(`namespace ${n.name} (and everything in it)`, () => api('DELETE', `/namespaces/${encodeURIComponent(n.name)}?cascade=true`), refresh) : '') },
    ], ctx.can('namespaces:write') ? (refresh) => form('ns-create', [['name', 'New namespace', { required: true }]], 'Create',
      async (v) => { await api('POST', '/namespaces', { name: v.name }); refresh(); }) : null);
    ctx.main.append(audit);
    if (sel && ctx.can('audit:read')) {
      try {
        const entries = await get(`/namespaces/${encodeURIComponent(sel)}/audit?limit=200`);
        audit.append(h('h2', {}, `Audit log of ${sel}`), table(entries, [
          { title: 'When', get: (e) => fmtTime(e.timestamp) },
          { title: 'Who', get: (e) => `${e.actor} (${e.via})` },
          { title: 'Action', get: (e) => e.action },
          { title: 'Target', class: 'opt', get: (e) => e.target },
          { title: 'From', class: 'opt', get: (e) => e.source },
          { title: 'Status', get: (e) => String(e.status) },
        ], { empty: 'Nothing recorded.' }));
      } catch (e) { audit.append(errorBox(e)); }
    } else if (ctx.can('audit:read')) audit.append(h('p', { class: 'muted' }, 'Choose a namespace to read its audit log.'));
  },
};

export const configs = {
  async render(ctx) {
    const sel = await namespaceFilter(ctx);
    const view = h('div', { id: 'config-view' });
    ctx.main.append(h('div', { class: 'toolbar' }, sel));
    const refresh = await listPage(ctx, 'Configs', () => get('/configs' + qs({ namespace: sel.value })), (re) => [
      { title: 'Name', get: (c) => h('button', { type: 'button', onclick: async () => fill(view, h('h2', {}, `${c.namespace}/${c.name}`), kv((await get(`/configs/${encodeURIComponent(c.name)}?namespace=${encodeURIComponent(c.namespace)}`)).data)) }, c.name) },
      { title: 'Namespace', get: (c) => c.namespace },
      { title: 'Keys', class: 'opt', get: (c) => (c.keys || Object.keys(c.data || {})).join(', ') },
      { title: 'Updated', class: 'opt', get: (c) => fmtTime(c.updated_at) },
      { title: '', get: (c) => (ctx.can('configs:write') ? deleteButton(`config ${c.name}`, () => api('DELETE', `/configs/${encodeURIComponent(c.name)}?namespace=${encodeURIComponent(c.namespace)}`), re) : '') },
    ], ctx.can('configs:write') ? (re) => form('config-create', [['name', 'Name', { required: true }], ['namespace', 'Namespace', { placeholder: 'default' }], ['data', 'Data: KEY=value lines', { multiline: true }]], 'Create',
      async (v) => {
        const data = Object.fromEntries(v.data.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')).trim(), l.slice(l.indexOf('=') + 1)]));
        await api('POST', '/configs', { name: v.name, namespace: v.namespace || 'default', data });
        re();
      }) : null);
    ctx.main.append(view);
    sel.addEventListener('change', () => { ctx.setQuery({ namespace: sel.value }); refresh(); });
  },
};

export const secrets = {
  async render(ctx) {
    const sel = await namespaceFilter(ctx);
    ctx.main.append(h('div', { class: 'toolbar' }, sel));
    const refresh = await listPage(ctx, 'Secrets', () => get('/secrets' + qs({ namespace: sel.value })), (re) => [
      { title: 'Name', get: (s) => s.name },
      { title: 'Namespace', get: (s) => s.namespace },
      { title: 'Created', get: (s) => fmtTime(s.created_at) },
      { title: '', get: (s) => (ctx.can('secrets:write') ? deleteButton(`secret ${s.name}`, () => api('DELETE', `/secrets/${encodeURIComponent(s.id || s.name)}?namespace=${encodeURIComponent(s.namespace)}`), re) : '') },
    ], ctx.can('secrets:write') ? (re) => form('secret-create', [['name', 'Name', { required: true }], ['namespace', 'Namespace', { placeholder: 'default' }], ['value', 'Value (sent once, never shown again)', { type: 'password', required: true }]], 'Create',
      async (v) => { await api('POST', '/secrets', { name: v.name, namespace: v.namespace || 'default', value: v.value }); re(); }) : null);
    ctx.main.append(h('p', { class: 'muted' }, 'Values are never shown: the API has no route that answers one.'));
    sel.addEventListener('change', () => { ctx.setQuery({ namespace: sel.value }); refresh(); });
  },
};

export const volumes = {
  async render(ctx) {
    const sel = await namespaceFilter(ctx);
    ctx.main.append(h('div', { class: 'toolbar' }, sel));
    const refresh = await listPage(ctx, 'Volumes', () => get('/volumes' + qs({ namespace: sel.value })), (re) => [
      { title: 'Name', get: (v) => v.name },
      { title: 'Namespace', get: (v) => v.namespace },
      { title: 'Used by', get: (v) => (v.used_by || v.users || []).map((u) => (typeof u === 'string' ? u : u.name || u.id)).join(', ') || 'unused' },
      { title: 'Created', class: 'opt', get: (v) => fmtTime(v.created_at) },
      { title: '', get: (v) => (ctx.can('deployments:write') ? deleteButton(`volume ${v.name}`, () => api('DELETE', `/volumes/${encodeURIComponent(v.name)}?namespace=${encodeURIComponent(v.namespace)}`), re) : '') },
    ]);
    sel.addEventListener('change', () => { ctx.setQuery({ namespace: sel.value }); refresh(); });
  },
};

export const tokens = {
  async render(ctx) {
    const shown = h('div', { id: 'token-once', 'aria-live': 'polite' });
    await listPage(ctx, 'Tokens', () => get('/tokens'), (re) => [
      { title: 'Name', get: (t) => t.name },
      { title: 'Scopes', get: (t) => (t.scopes || []).join(', ') },
      { title: 'Namespaces', class: 'opt', get: (t) => (t.namespaces || []).join(', ') || 'all' },
      { title: 'Expires', class: 'opt', get: (t) => fmtTime(t.expires_at) },
      { title: '', get: (t) => deleteButton(`token ${t.name}`, () => api('DELETE', `/tokens/${encodeURIComponent(t.id)}`), re) },
    ], (re) => form('token-create', [['name', 'Name', { required: true }], ['scopes', 'Scopes (space separated)', { placeholder: (ctx.me.scopes || []).join(' ') }], ['namespaces', 'Namespaces (space separated, empty: all)'], ['expires_in', 'Expires in', { placeholder: '30d' }]], 'Create',
      async (v) => {
        const body = { name: v.name, scopes: v.scopes.split(/\s+/).filter(Boolean) };
        if (v.namespaces) body.namespaces = v.namespaces.split(/\s+/).filter(Boolean);
        if (v.expires_in) body.expires_in = v.expires_in;
        const t = await api('POST', '/tokens', body);
        fill(shown, h('div', { class: 'card' }, h('p', {}, 'The token, shown this once: copy it now.'), h('pre', { class: 'out', id: 'token-value' }, t.token)));
        re();
      }));
    ctx.main.append(shown);
  },
};

export const users = {
  async render(ctx) {
    await listPage(ctx, 'Users', () => get('/users'), (re) => [
      { title: 'Name', get: (u) => u.username },
      { title: 'Role', get: (u) => (ctx.admin && u.username !== ctx.me.username
        ? h('select', { 'aria-label': `Role of ${u.username}`, onchange: async (ev) => { try { await api('PUT', `/users/${encodeURIComponent(u.username)}`, { role: ev.target.value }); toast(`${u.username} is ${ev.target.value}`); } catch (e) { toast(e.message, { error: true }); re(); } } },
          ['admin', 'operator', 'viewer'].map((r) => h('option', { value: r, selected: r === u.role }, r)))
        : u.role) },
      { title: 'Created', class: 'opt', get: (u) => fmtTime(u.created_at) },
      { title: '', get: (u) => (ctx.admin && u.username !== ctx.me.username ? deleteButton(`user ${u.username}`, () => api('DELETE', `/users/${encodeURIComponent(u.username)}`), re) : '') },
    ], ctx.admin ? (re) => form('user-create', [['username', 'Username', { required: true }], ['password', 'Password', { type: 'password', required: true }], ['role', 'Role', { options: ['viewer', 'operator', 'admin'] }]], 'Create',
      async (v) => { await api('POST', '/users', v); re(); }) : null);
  },
};

export const webhooks = {
  async render(ctx) {
    const deliveries = h('div', { id: 'deliveries' });
    const sel = ctx.route.query.webhook || '';
    await listPage(ctx, 'Webhooks', () => get('/webhooks'), (re) => [
      { title: 'Name', get: (w) => h('a', { href: `#/webhooks?webhook=${encodeURIComponent(w.id)}` }, w.name || w.id) },
      { title: 'URL', get: (w) => w.url },
      { title: 'Filter', class: 'opt', get: (w) => JSON.stringify(w.filter || {}) },
      { title: 'Created', class: 'opt', get: (w) => fmtTime(w.created_at) },
      { title: '', get: (w) => (ctx.can('webhooks:write') || ctx.admin) && deleteButton(`webhook ${w.name || w.id}`, () => api('DELETE', `/webhooks/${encodeURIComponent(w.id)}`), re) },
    ], ctx.can('webhooks:write') || ctx.admin ? (re) => form('webhook-create', [['name', 'Name'], ['url', 'URL', { required: true, placeholder: 'https://…' }],
      ['secret', 'Secret (16 to 1024 bytes; signs each delivery; never shown again)', { type: 'password', required: true }],
      ['level', 'Level at least', { options: ['warning', 'info', 'error'] }], ['reasons', 'Reasons (space separated, e.g. BackOff InstanceCrashed; empty: all)'],
      ['namespaces', 'Namespaces (space separated; empty: all)']], 'Create',
      async (v) => {
        const filter = { level: v.level };
        if (v.reasons) filter.reasons = v.reasons.split(/\s+/);
        if (v.namespaces) filter.namespaces = v.namespaces.split(/\s+/);
        await api('POST', '/webhooks', { ...(v.name ? { name: v.name } : {}), secret: v.secret, url: v.url, filter });
        re();
      }) : null);
    ctx.main.append(deliveries);
    if (sel) {
      try {
        const list = await get(`/webhooks/${encodeURIComponent(sel)}/events?limit=100`);
        deliveries.append(h('h2', {}, 'Deliveries'), table(list, [
          { title: 'Event', get: (d) => d.reason },
          { title: 'State', get: (d) => badge(d.state) },
          { title: 'Attempts', get: (d) => String(d.attempts) },
          { title: 'Last status', get: (d) => `${d.last_status || '–'} ${d.last_error || ''}` },
          { title: 'Updated', class: 'opt', get: (d) => fmtTime(d.updated_at) },
        ], { empty: 'No deliveries yet.' }));
      } catch (e) { deliveries.append(errorBox(e)); }
    }
  },
};

export const node = {
  async render(ctx) {
    const body = h('div');
    ctx.main.append(h('h1', {}, 'Node'), body);
    let n;
    try { n = await get('/node'); } catch (e) {
      body.append(e.status === 404 ? h('p', { class: 'muted' }, 'This server has no GET /node yet.') : errorBox(e));
      return;
    }
    add(body, capacity({ memory: n.memory, disk: n.disk }),
      h('h2', {}, 'Host'), kv(n.host || Object.fromEntries(Object.entries(n).filter(([, v]) => v === null || typeof v !== 'object'))),
      Array.isArray(n.daemons) ? [h('h2', {}, 'Daemons'), table(n.daemons, [
        { title: 'Daemon', get: (d) => d.name },
        { title: 'Reachable', get: (d) => badge(d.reachable ? 'running' : 'failed') },
        { title: 'Version', get: (d) => d.version || d.error || '' },
        { title: 'Pid', class: 'opt', get: (d) => String(d.pid ?? '') },
      ])] : null,
      n.runtimes ? [h('h2', {}, 'Runtimes'), Array.isArray(n.runtimes) ? table(n.runtimes, Object.keys(n.runtimes[0] || {}).map((k) => ({ title: k, get: (r) => (r[k] === null || r[k] === undefined ? '–' : typeof r[k] === 'object' ? JSON.stringify(r[k]) : String(r[k])) }))) : kv(n.runtimes)] : null);
    const checks = n.checks || n.doctor;
    const doctor = h('div', { id: 'doctor' });
    body.append(h('h2', {}, 'Doctor'), doctor);
    const showChecks = (list) => doctor.append(table(list, [
      { title: 'Check', get: (c) => c.name || c.check },
      { title: 'Result', get: (c) => badge(c.status || (c.ok ? 'passing' : 'failing')) },
      { title: 'Detail', get: (c) => c.message || c.detail || '' },
    ]));
    if (Array.isArray(checks)) showChecks(checks);
    else {
      try { const d = await get('/doctor'); showChecks(Array.isArray(d) ? d : d.checks || []); } catch (e) {
        doctor.append(h('p', { class: 'muted' }, e.status === 404 ? 'This server answers no doctor checks over the API (husk doctor on the host runs them).' : e.message));
      }
    }
  },
};
