// page_deployments.js: the deployments table, filtered by namespace, status and label (in the
// URL), polled so that it follows what the scheduler does without a reload.
import { get, qs } from './api.js';
import { badge, errorBox, fill, fmtAge, h, table } from './ui.js';

const POLL_MS = 2000;
export const STATUSES = ['pending', 'creating', 'running', 'completed', 'failed', 'crash_loop_back_off', 'insufficient_resources', 'deleted'];

export async function render(ctx) {
  const { main, route } = ctx;
  const q = route.query;
  const nsSelect = h('select', { id: 'f-namespace' }, h('option', { value: '' }, 'all namespaces'));
  const stSelect = h('select', { id: 'f-status' }, h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s }, s)));
  const label = h('input', { id: 'f-label', placeholder: 'key=value', value: q.label || '', size: 16 });
  const state = h('span', { class: 'muted', 'aria-live': 'polite' });
  const body = h('div', { id: 'deployments' });
  main.append(h('h1', {}, 'Deployments'),
    h('div', { class: 'toolbar', role: 'search' },
      h('label', { for: 'f-namespace' }, 'Namespace', nsSelect),
      h('label', { for: 'f-status' }, 'Status', stSelect),
      h('label', { for: 'f-label' }, 'Label', label),
      ctx.can('deployments:write') ? h('a', { href: '#/apply' }, 'Apply a manifest') : null, state),
    body);
  stSelect.value = q.status || '';
  try {
    const nss = await get('/namespaces');
    for (const n of nss) nsSelect.append(h('option', { value: n.name }, n.name));
  } catch { /* a token without namespaces:read still lists deployments */ }
  if (q.namespace && ![...nsSelect.options].some((o) => o.value === q.namespace)) nsSelect.append(h('option', { value: q.namespace }, q.namespace));
  nsSelect.value = q.namespace || '';

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    let list;
    try {
      list = await get('/deployments' + qs({ namespace: q.namespace, status: q.status, label: q.label }));
    } catch (e) {
      if (mine === seq) fill(body, errorBox(e));
      return;
    }
    if (mine !== seq) return; // a newer filter's answer is on its way
    state.textContent = `${list.length} shown · updated ${new Date().toLocaleTimeString()}`;
    fill(body, table(list, [
      { title: 'Name', get: (d) => h('a', { href: `#/deployments/${encodeURIComponent(d.id)}`, class: 'dep-link', dataset: { name: d.name } }, d.name) },
      { title: 'Namespace', get: (d) => d.namespace },
      { title: 'Status', get: (d) => h('span', { class: 'dep-status', dataset: { name: d.name } }, badge(d.status)) },
      { title: 'Ready', get: (d) => `${d.ready_replicas ?? '–'}/${d.replicas ?? '–'}` },
      { title: 'Kind', class: 'opt', get: (d) => d.kind || 'worker' },
      { title: 'Restarts', class: 'opt', get: (d) => d.restart_count ?? 0 },
      { title: 'Labels', class: 'opt', get: (d) => Object.entries(d.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') },
      { title: 'Updated', class: 'opt', get: (d) => fmtAge(d.updated_at) },
    ], { empty: 'No deployment matches.' }));
  }
  const onFilter = () => {
    ctx.setQuery({ namespace: nsSelect.value, status: stSelect.value, label: label.value.trim() });
    refresh();
  };
  nsSelect.addEventListener('change', onFilter);
  stSelect.addEventListener('change', onFilter);
  let debounce;
  label.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(onFilter, 300); });
  await refresh();
  const timer = setInterval(refresh, POLL_MS);
  ctx.onCleanup(() => { clearInterval(timer); clearTimeout(debounce); });
}
