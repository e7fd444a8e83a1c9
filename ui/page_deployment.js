// page_deployment.js: one deployment: instances, actions by role, live logs (SSE through a
// stream ticket), events, health-check history and metrics charts. Tab and log filters are in
// the URL; the metrics history lives in the page while it is open.
import { api, get, qs, stream } from './api.js';
import { lineChart } from './chart.js';
import { LEVELS, matches } from './logfilter.js';
import { History, KEEP_MS, samplesOf } from './metrics.js';
import { badge, clear, confirmDialog, errorBox, fill, fmtAge, fmtBytes, fmtTime, h, kv, table, toast } from './ui.js';

const TABS = [['overview', 'Overview'], ['logs', 'Logs'], ['events', 'Events'], ['health', 'Health checks'], ['metrics', 'Metrics']];
const MAX_LINES = 5000;

// "sh -c 'echo hi'" -> ["sh", "-c", "echo hi"]: quotes group, a backslash escapes.
export function splitCommand(text) {
  const out = [];
  let cur = '', quote = null, any = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === '"' || c === "'") { quote = c; any = true; }
    else if (c === '\\' && i + 1 < text.length) { cur += text[++i]; any = true; }
    else if (/\s/.test(c)) { if (any || cur) out.push(cur); cur = ''; any = false; }
    else cur += c;
  }
  if (any || cur) out.push(cur);
  return out;
}

export async function render(ctx) {
  const { main, route } = ctx;
  const id = route.parts[1];
  const q = route.query;
  const path = `/deployments/${encodeURIComponent(id)}`;
  let dep = await get(path);

  const head = h('div');
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const panel = h('section', { id: 'panel', role: 'tabpanel', tabindex: '-1' });
  main.append(h('p', {}, h('a', { href: `#/deployments?namespace=${encodeURIComponent(dep.namespace)}` }, '← Deployments')), head, tabs, panel);

  const drawHead = () => fill(head, 
    h('h1', {}, `${dep.namespace}/${dep.name} `, h('span', { id: 'dep-status' }, badge(dep.status))),
    dep.status_message ? h('p', { class: 'muted' }, dep.status_message) : null);
  drawHead();

  // ---- tabs (arrow keys move between them, as a tablist should) ----
  const tabLinks = TABS.map(([key, title]) => h('a', {
    href: '#', role: 'tab', id: `tab-${key}`, 'aria-controls': 'panel',
    onclick: (ev) => { ev.preventDefault(); show(key); },
    onkeydown: (ev) => {
      const i = TABS.findIndex((t) => t[0] === key);
      const j = ev.key === 'ArrowRight' ? i + 1 : ev.key === 'ArrowLeft' ? i - 1 : null;
      if (j === null) return;
      ev.preventDefault();
      const next = TABS[(j + TABS.length) % TABS.length][0];
      show(next);
      document.getElementById(`tab-${next}`).focus();
    },
  }, title));
  tabs.append(...tabLinks);

  let stopPanel = () => {};
  ctx.onCleanup(() => stopPanel());
  function show(key) {
    stopPanel();
    stopPanel = () => {};
    ctx.setQuery({ tab: key === 'overview' ? '' : key });
    for (const a of tabLinks) {
      const on = a.id === `tab-${key}`;
      a.setAttribute('aria-selected', on);
      a.tabIndex = on ? 0 : -1;
    }
    clear(panel);
    const fn = { overview: overviewTab, logs: logsTab, events: eventsTab, health: healthTab, metrics: metricsTab }[key] || overviewTab;
    const stop = fn();
    if (typeof stop === 'function') stopPanel = stop;
  }

  // ---- the deployment itself, polled (status and instances follow the scheduler) ----
  const listeners = new Set();
  const poll = setInterval(async () => {
    try {
      dep = await get(path);
    } catch (e) {
      if (e.status === 404) { toast(`${dep.name} is gone`); ctx.go(['deployments']); }
      return;
    }
    drawHead();
    for (const fn of listeners) fn();
  }, 2000);
  ctx.onCleanup(() => clearInterval(poll));

  // ---- metrics: sampled while the page is open, whatever the tab ----
  const hist = new History(KEEP_MS);
  let metricsError = null;
  const metricsListeners = new Set();
  async function sampleMetrics() {
    try {
      hist.add(samplesOf(await get(`${path}/metrics`)));
      metricsError = null;
    } catch (e) {
      metricsError = e;
      if (e.status === 404) clearInterval(metricsTimer); // this server has no metrics route
    }
    for (const fn of metricsListeners) fn();
  }
  const metricsTimer = setInterval(sampleMetrics, 5000);
  sampleMetrics();
  ctx.onCleanup(() => clearInterval(metricsTimer));

  function overviewTab() {
    const inst = h('div'), actions = h('div');
    const draw = () => {
      fill(inst, 
        h('h2', {}, 'Instances'),
        table(dep.instances || [], [
          { title: 'Instance', get: (i) => i.instance_id || i.id },
          { title: 'State', get: (i) => badge(i.state) },
          { title: 'Address', get: (i) => i.address || '–' },
          { title: 'Uptime', get: (i) => (i.started_at && !i.exited ? fmtAge(i.started_at) : '–') },
          { title: 'Exit', get: (i) => (i.exit_reason ? `${i.exit_reason} (${i.exit_status ?? '–'})` : '–') },
          { title: 'Generation', class: 'opt', get: (i) => i.generation ?? '–' },
        ], { empty: 'No instances.' }),
        (dep.exited_instances || []).length ? [h('h2', {}, 'Exited instances'), table(dep.exited_instances, [
          { title: 'Instance', get: (i) => i.instance_id || i.id },
          { title: 'Exit', get: (i) => `${i.exit_reason || '–'} (${i.exit_status ?? '–'})` },
          { title: 'Started', class: 'opt', get: (i) => fmtTime(i.started_at) },
          { title: 'Ended', get: (i) => fmtTime(i.exited_at) },
        ])] : null,
        h('h2', {}, 'Details'),
        kv({ id: dep.id, kind: dep.kind, image: dep.image, replicas: dep.replicas, ready: dep.ready_replicas,
          restarts: dep.restart_count, generation: dep.generation, labels: dep.labels, updated: fmtTime(dep.updated_at) }));
    };
    draw();
    listeners.add(draw);
    if (ctx.can('deployments:write') || ctx.can('deployments:exec')) actions.append(h('h2', {}, 'Actions'));
    if (ctx.can('deployments:write')) actions.append(writeActions());
    if (ctx.can('deployments:exec')) actions.append(execForm());
    panel.append(actions, inst);
    return () => listeners.delete(draw);
  }

  // As husk apply reports it: created, updated (a new generation) or unchanged.
  async function reapply(spec, what) {
    try {
      const r = await api('POST', '/deployments', spec, { full: true });
      const how = r.headers.get('Husk-Apply-Result') || 'applied';
      toast(`${dep.name}: ${what} (${how}${how !== 'unchanged' && r.data && r.data.generation ? `, generation ${r.data.generation}` : ''})`);
    } catch (e) {
      toast(`${what}: refused: ${e.message}`, { error: true });
    }
  }

  function writeActions() {
    const n = h('input', { id: 'scale-n', type: 'number', min: 0, max: 1000, value: dep.replicas ?? 1, size: 4, 'aria-label': 'Replicas' });
    return h('div', { class: 'toolbar' },
      h('label', { for: 'scale-n' }, 'Replicas', n),
      h('button', { id: 'btn-scale', onclick: () => reapply({ ...(dep.spec || {}), replicas: Number(n.value) }, `scaled to ${n.value}`) }, 'Scale'),
      h('button', {
        id: 'btn-restart',
        onclick: async () => { if (await confirmDialog('Re-apply', `Re-apply ${dep.name} as it is stored?`, { confirm: 'Re-apply' })) reapply(dep.spec || {}, 're-applied'); },
      }, 'Re-apply'),
      h('button', {
        id: 'btn-delete', class: 'danger',
        onclick: async () => {
          if (!(await confirmDialog('Delete deployment', `Delete ${dep.namespace}/${dep.name} and stop its instances?`, { confirm: 'Delete', danger: true, typed: dep.name }))) return;
          try {
            await api('DELETE', path);
            toast(`${dep.name} deleted`);
            ctx.go(['deployments']);
          } catch (e) { toast(`delete refused: ${e.message}`, { error: true }); }
        },
      }, 'Delete'));
  }

  function execForm() {
    const cmd = h('input', { id: 'exec-cmd', placeholder: 'command and arguments, e.g. cat /etc/hostname', size: 40 });
    const inst = h('select', { id: 'exec-instance', 'aria-label': 'Instance' }, h('option', { value: '' }, 'any instance'),
      (dep.instances || []).map((i) => h('option', { value: i.instance_id || i.id }, i.instance_id || i.id)));
    const out = h('div', { id: 'exec-out', 'aria-live': 'polite' });
    const form = h('form', { class: 'toolbar' }, h('label', { for: 'exec-cmd' }, 'Exec'), cmd, inst, h('button', { id: 'btn-exec', type: 'submit' }, 'Run'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const command = splitCommand(cmd.value);
      if (!command.length) return;
      fill(out, h('p', { class: 'muted' }, 'running…'));
      try {
        const r = await api('POST', `${path}/exec`, { command, ...(inst.value ? { instance: inst.value } : {}) });
        fill(out, h('p', {}, `exit status ${r.exit_status}${r.timed_out ? ' (timed out)' : ''} on ${r.instance_id}`),
          h('pre', { class: 'out', id: 'exec-stdout' }, r.stdout || ''), r.stderr ? h('pre', { class: 'out error' }, r.stderr) : null);
      } catch (e) { fill(out, errorBox(e)); }
    });
    return h('div', {}, form, out);
  }

  function logsTab() {
    const level = h('select', { id: 'log-level', 'aria-label': 'Level at least' }, h('option', { value: '' }, 'all levels'),
      LEVELS.slice(3, 8).map((l) => h('option', { value: l }, `${l} and worse`)));
    level.value = q.level || '';
    const search = h('input', { id: 'log-search', type: 'search', placeholder: 'search', value: q.search || '' });
    const pause = h('button', { id: 'log-pause', 'aria-pressed': 'false' }, 'Pause');
    const fromStart = h('input', { id: 'log-start', type: 'checkbox', checked: q.from === 'start' });
    const state = h('span', { class: 'muted', id: 'log-state', 'aria-live': 'polite' });
    const box = h('div', { class: 'logs', id: 'logs', tabindex: '0', role: 'log', 'aria-label': 'Log lines' });
    panel.append(h('div', { class: 'toolbar' }, level, search, pause, h('label', { for: 'log-start' }, fromStart, 'from the start'), state), box);

    // How many earlier lines a view starts with: ?tail=N in the URL (a shared link shows as much).
    const tail = /^\d+$/.test(q.tail || '') ? Number(q.tail) : 200;
    const lines = [], seen = new Set();
    let paused = false, held = 0, last = null, s = null;
    const lineEl = (e) => h('div', { class: `l-${e.level || 'unknown'}` },
      h('span', { class: 't' }, `${(e.timestamp || '').replace('T', ' ').slice(0, 23)} ${e.instance || ''} ${e.level || ''} `), e.message);
    const filters = () => ({ level: level.value, search: search.value });
    function redraw() {
      fill(box, ...lines.filter((e) => matches(e, filters())).slice(-1000).map(lineEl));
      box.scrollTop = box.scrollHeight;
    }
    function add(e, ev) {
      const key = ev && ev.lastEventId ? `${e.instance}/${ev.lastEventId}` : null;
      if (key) { if (seen.has(key)) return; seen.add(key); }
      lines.push(e);
      last = e.timestamp || last;
      if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
      if (paused) { held++; state.textContent = `paused · ${held} new`; return; }
      if (matches(e, filters())) {
        const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
        box.append(lineEl(e));
        while (box.childNodes.length > 1000) box.firstChild.remove();
        if (stick) box.scrollTop = box.scrollHeight;
      }
    }
    function connect() {
      if (s) s.close();
      lines.length = 0; seen.clear(); last = null;
      clear(box);
      s = stream(`${path}/logs`, () => (last ? { follow: 'true', since: last } : { follow: 'true', tail: fromStart.checked ? 'all' : tail }), {
        onMessage: add,
        onState: (st) => { if (!paused) state.textContent = st; },
      });
    }
    const onFilter = () => { ctx.setQuery({ level: level.value, search: search.value }); redraw(); };
    level.addEventListener('change', onFilter);
    search.addEventListener('input', onFilter);
    fromStart.addEventListener('change', () => { ctx.setQuery({ from: fromStart.checked ? 'start' : '' }); connect(); });
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.textContent = paused ? 'Resume' : 'Pause';
      pause.setAttribute('aria-pressed', String(paused));
      if (!paused) { held = 0; state.textContent = 'live'; redraw(); }
    });
    connect();
    return () => s && s.close();
  }

  function eventsTab() {
    const body = h('div', { id: 'events' });
    panel.append(body);
    let events = [];
    const draw = () => fill(body, table(events.slice().reverse(), [
      { title: 'When', get: (e) => fmtTime(e.timestamp_ms || e.timestamp) },
      { title: 'Level', get: (e) => badge(e.level) },
      { title: 'Reason', get: (e) => e.reason },
      { title: 'Component', class: 'opt', get: (e) => e.component },
      { title: 'Message', get: (e) => e.message },
    ], { empty: 'No events.' }));
    async function refresh() {
      try {
        const after = events.length ? events[events.length - 1].id : undefined;
        const got = await get(`${path}/events` + qs({ limit: 200, after }));
        if (got.length || !events.length) { events = events.concat(got).slice(-500); draw(); }
      } catch (e) { fill(body, errorBox(e)); }
    }
    refresh();
    const t = setInterval(refresh, 3000);
    return () => clearInterval(t);
  }

  function healthTab() {
    const body = h('div', { id: 'health' });
    panel.append(body);
    async function refresh() {
      let checks;
      try { checks = await get(`${path}/health-checks`); } catch (e) { fill(body, errorBox(e)); return; }
      clear(body);
      if (!checks.length) body.append(h('p', { class: 'muted' }, 'No health checks (or no instance yet).'));
      for (const c of checks) {
        body.append(h('h2', {}, `Instance ${c.instance_id} · check ${c.check}: ${c.type} ${c.target} `, badge(c.status)),
          h('p', { class: 'muted' }, `on failure: ${c.on_failure}, threshold ${c.threshold}, ${c.consecutive_failures} failing in a row${c.readiness ? ', readiness gate' : ''}`),
          table((c.history || []).slice().reverse(), [
            { title: 'When', get: (r) => fmtTime(r.timestamp > 1e14 ? r.timestamp / 1e6 : r.timestamp) },
            { title: 'Result', get: (r) => badge(r.ok ? 'passing' : 'failing') },
            { title: 'Counted', class: 'opt', get: (r) => (r.counted ? 'yes' : 'no') },
            { title: 'Duration', get: (r) => `${r.duration_ms} ms` },
            { title: 'Message', get: (r) => r.message || '' },
          ], { empty: 'No result yet.' }));
      }
    }
    refresh();
    const t = setInterval(refresh, 5000);
    return () => clearInterval(t);
  }

  function metricsTab() {
    const body = h('div', { id: 'metrics' });
    panel.append(body);
    const rate = (v) => `${fmtBytes(v)}/s`;
    const draw = () => {
      clear(body);
      if (metricsError) {
        body.append(h('p', { class: 'muted' }, metricsError.status === 404 && !hist.byInstance.size
          ? 'This server has no GET /deployments/{id}/metrics yet.' : `metrics: ${metricsError.message}`));
        if (!hist.byInstance.size) return;
      }
      body.append(h('p', { class: 'muted' }, `Sampled every 5 s while this page is open; the last ${KEEP_MS / 60000} minutes are kept.`),
        h('div', { class: 'charts' },
          lineChart('CPU', hist.series('cpu'), (v) => `${v.toFixed(1)}%`, KEEP_MS),
          lineChart('Memory', hist.series('memory'), fmtBytes, KEEP_MS),
          lineChart('Network in', hist.series('net_rx'), rate, KEEP_MS),
          lineChart('Network out', hist.series('net_tx'), rate, KEEP_MS),
          lineChart('Disk read', hist.series('disk_read'), rate, KEEP_MS),
          lineChart('Disk write', hist.series('disk_write'), rate, KEEP_MS)));
    };
    draw();
    metricsListeners.add(draw);
    return () => metricsListeners.delete(draw);
  }

  show(TABS.some((t) => t[0] === q.tab) ? q.tab : 'overview');
}
