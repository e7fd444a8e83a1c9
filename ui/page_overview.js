// page_overview.js: deployments by status and namespace, the node's capacity (GET /node, where
// the server has it), and the recent warnings of every deployment's events.
import { get } from './api.js';
import { badge, errorBox, fill, fmtAge, fmtBytes, h, kv, table } from './ui.js';

const POLL_MS = 3000;

function counts(list, key) {
  const out = {};
  for (const d of list) out[d[key] || '–'] = (out[d[key] || '–'] || 0) + 1;
  return out;
}

function capacity(node) {
  // Shown as bars where the answer has used/total pairs, else as it is.
  const pairs = [];
  const walk = (o, prefix) => {
    for (let [k, v] of Object.entries(o || {})) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        const total = v.total ?? v.total_bytes ?? v.capacity ?? v.allocatable;
        let used = v.used ?? v.used_bytes ?? v.admitted_bytes ?? v.admitted ?? v.allocated;
        if (used === undefined && typeof v.available_bytes === 'number' && typeof total === 'number') used = total - v.available_bytes;
        if (v.admitted_bytes !== undefined) k = `${k} admitted`;
        else if (v.available_bytes !== undefined) k = `${k} used`;
        if (typeof total === 'number' && typeof used === 'number') pairs.push([prefix + k, used, total]);
        else walk(v, `${prefix}${k}.`);
      }
    }
  };
  walk(node, '');
  if (!pairs.length) return kv(node);
  return h('div', { class: 'cards' }, pairs.map(([name, used, total]) => {
    const bytes = /mem|disk|bytes/i.test(name);
    const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
    const bar = h('div');
    bar.style.width = `${pct.toFixed(1)}%`;
    return h('div', { class: 'card' }, h('div', { class: 'muted' }, name),
      h('div', {}, bytes ? `${fmtBytes(used)} of ${fmtBytes(total)}` : `${used} of ${total}`),
      h('div', { class: 'bar', role: 'meter', 'aria-valuenow': pct.toFixed(0), 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': name }, bar));
  }));
}

export { capacity };

export async function render(ctx) {
  const { main } = ctx;
  const body = h('div');
  main.append(h('h1', {}, 'Overview'), body);
  let warningsAt = 0, warnings = [], nodeAnswer;

  async function refresh() {
    let list;
    try {
      list = await get('/deployments');
    } catch (e) {
      fill(body, errorBox(e));
      return;
    }
    // Events are per deployment; the newest warnings of each, every 15 s.
    if (Date.now() - warningsAt > 15000 && ctx.can('events:read')) {
      warningsAt = Date.now();
      const lists = await Promise.all(list.slice(0, 50).map((d) =>
        get(`/deployments/${encodeURIComponent(d.id)}/events?level=warning&limit=5`).then(
          (evs) => evs.map((e) => ({ ...e, deployment: d })), () => [])));
      warnings = lists.flat().sort((a, b) => (b.timestamp_ms || 0) - (a.timestamp_ms || 0)).slice(0, 15);
    }
    if (nodeAnswer === undefined) nodeAnswer = await get('/node').catch((e) => e);
    const byStatus = counts(list, 'status'), byNs = counts(list, 'namespace');
    const matrix = {};
    for (const d of list) (matrix[d.namespace] ||= {})[d.status] = ((matrix[d.namespace] || {})[d.status] || 0) + 1;
    const statuses = Object.keys(byStatus).sort();
    fill(body, 
      h('section', { 'aria-labelledby': 'ov-status' }, h('h2', { id: 'ov-status' }, 'Deployments by status'),
        h('div', { class: 'cards' },
          h('a', { class: 'card', href: '#/deployments' }, h('div', { class: 'n' }, list.length), h('div', { class: 'muted' }, 'all')),
          statuses.map((s) => h('a', { class: 'card', href: `#/deployments?status=${encodeURIComponent(s)}` },
            h('div', { class: 'n' }, byStatus[s]), badge(s))))),
      h('section', { 'aria-labelledby': 'ov-ns' }, h('h2', { id: 'ov-ns' }, 'By namespace'),
        table(Object.keys(byNs).sort(), [
          { title: 'Namespace', get: (ns) => h('a', { href: `#/deployments?namespace=${encodeURIComponent(ns)}` }, ns) },
          { title: 'Total', get: (ns) => byNs[ns] },
          ...statuses.map((s) => ({ title: s, class: 'opt', get: (ns) => (matrix[ns] && matrix[ns][s]) || '' })),
        ], { empty: 'No deployments yet.' })),
      h('section', { 'aria-labelledby': 'ov-node' }, h('h2', { id: 'ov-node' }, 'Node'),
        nodeAnswer instanceof Error
          ? h('p', { class: 'muted' }, nodeAnswer.status === 404 ? 'This server has no GET /node yet.' : `Node: ${nodeAnswer.message}`)
          : capacity(nodeAnswer)),
      h('section', { 'aria-labelledby': 'ov-warn' }, h('h2', { id: 'ov-warn' }, 'Recent warnings'),
        table(warnings, [
          { title: 'When', get: (e) => fmtAge(e.timestamp_ms || e.timestamp) },
          { title: 'Deployment', get: (e) => h('a', { href: `#/deployments/${encodeURIComponent(e.deployment.id)}?tab=events` }, `${e.deployment.namespace}/${e.deployment.name}`) },
          { title: 'Level', get: (e) => badge(e.level) },
          { title: 'Reason', class: 'opt', get: (e) => e.reason },
          { title: 'Message', get: (e) => e.message },
        ], { empty: 'No warnings.' })));
  }
  await refresh();
  const timer = setInterval(refresh, POLL_MS);
  ctx.onCleanup(() => clearInterval(timer));
}
