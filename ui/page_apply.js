// page_apply.js: apply a manifest pasted or uploaded, as `husk apply` does: the server reads the
// YAML with the CLI's own reader (POST /manifests/parse, which also says on which line each
// field is written), every deployment is checked (?dryRun=All) before any is applied, and
// each 422 violation is shown under the line of the field it names.
import { api } from './api.js';
import { placeViolations } from './manifest.js';
import { clear, fill, h, toast } from './ui.js';

const EXAMPLE = `deployments:
  hello:
    namespace: default
    image: /srv/rootfs/hello
    command: ["/bin/sh", "-c", "while true; do echo hello; sleep 5; done"]
    replicas: 1
`;

export async function render(ctx) {
  const { main } = ctx;
  const text = h('textarea', { id: 'manifest', rows: 18, spellcheck: false, 'aria-label': 'Manifest (YAML)' });
  text.value = sessionStorage.getItem('husk.apply.draft') || EXAMPLE;
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const file = h('input', { id: 'manifest-file', type: 'file', accept: '.yaml,.yml,text/yaml' });
  const check = h('button', { id: 'btn-check', type: 'button' }, 'Check');
  const go = h('button', { id: 'btn-apply', class: 'primary', type: 'button' }, 'Apply');
  const out = h('div', { id: 'apply-result', 'aria-live': 'polite' });
  const annotated = h('div', { id: 'annotated', class: 'table-wrap' });
  main.append(h('h1', {}, 'Apply a manifest'),
    h('p', { class: 'muted' }, 'A Ring/husk manifest (a deployments: map, with namespaces: and configs: if you like), read exactly as husk apply reads it. ${VAR} references are not expanded here.'),
    h('div', { class: 'toolbar' }, h('label', { for: 'manifest-file' }, 'Upload'), file),
    h('div', { class: 'editor' }, gutter, text),
    h('div', { class: 'toolbar' }, check, go), out, annotated);

  let bad = new Map(); // line -> [messages]
  function drawGutter() {
    const n = text.value.split('\n').length;
    fill(gutter, ...Array.from({ length: n }, (_, i) => h('div', { class: bad.has(i + 1) ? 'bad' : null, title: bad.has(i + 1) ? bad.get(i + 1).join('; ') : null }, String(i + 1))));
    gutter.scrollTop = text.scrollTop;
  }
  text.addEventListener('input', () => { sessionStorage.setItem('husk.apply.draft', text.value); drawGutter(); });
  text.addEventListener('scroll', () => { gutter.scrollTop = text.scrollTop; });
  file.addEventListener('change', async () => {
    if (!file.files[0]) return;
    text.value = await file.files[0].text();
    text.dispatchEvent(new Event('input'));
  });
  drawGutter();

  function goToLine(line) {
    const at = text.value.split('\n').slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
    text.focus();
    text.setSelectionRange(at, at);
    text.scrollTop = Math.max(0, (line - 3) * parseFloat(getComputedStyle(text).lineHeight || '18'));
  }

  // The manifest again, read-only, each violation printed right under the line it belongs to.
  function showViolations(found) {
    bad = new Map();
    for (const v of found) if (v.line) bad.set(v.line, [...(bad.get(v.line) || []), `${v.path}: ${v.reason}`]);
    drawGutter();
    const rows = [];
    text.value.split('\n').forEach((l, i) => {
      rows.push(h('tr', { class: 'src', dataset: { line: i + 1 } }, h('td', { class: 'muted' }, String(i + 1)), h('td', {}, h('code', {}, l || ' '))));
      for (const v of found.filter((x) => x.line === i + 1))
        rows.push(h('tr', { class: 'violation', dataset: { line: i + 1, path: v.path } },
          h('td'), h('td', { class: 'error', role: 'alert' }, h('button', { type: 'button', onclick: () => goToLine(v.line) }, `↑ ${v.path}`), `: ${v.reason}`)));
    });
    const loose = found.filter((v) => !v.line);
    fill(annotated, 
      loose.length ? h('ul', { class: 'violations' }, loose.map((v) => h('li', { class: 'violation', dataset: { path: v.path } }, `${v.path}: ${v.reason}`))) : null,
      found.some((v) => v.line) ? h('table', { class: 'annotated' }, h('tbody', {}, rows)) : null);
  }

  async function parse() {
    try {
      return await api('POST', '/manifests/parse', text.value);
    } catch (e) {
      if (e.status === 422) {
        showViolations(placeViolations({}, 'manifest', e.problem).map((v) => ({ ...v, path: v.field || 'manifest' })));
        out.replaceChildren(h('p', { class: 'error' }, 'The manifest cannot be read. Nothing was applied.'));
        return null;
      }
      throw e;
    }
  }

  async function checkAll(m) {
    const found = [];
    for (const d of m.deployments) {
      try {
        await api('POST', '/deployments?dryRun=All', d.deployment);
      } catch (e) {
        if (e.status === 422 || e.status === 400) found.push(...placeViolations(m.lines, `deployments.${d.key}`, e.problem || { violations: [{ field: '', reason: e.message }] }));
        else found.push({ path: `deployments.${d.key}`, reason: e.message, line: m.lines[`deployments.${d.key}`] || null });
      }
    }
    return found;
  }

  async function run(applyIt) {
    check.disabled = go.disabled = true;
    clear(out);
    clear(annotated);
    bad = new Map();
    drawGutter();
    try {
      const m = await parse();
      if (!m) return;
      for (const w of m.warnings) out.append(h('p', { class: 'muted' }, `warning: ${w}`));
      if (!m.deployments.length && !m.configs.length && !(m.namespaces || []).length) {
        out.append(h('p', {}, 'No deployments in the manifest: nothing to apply.'));
        return;
      }
      const found = await checkAll(m);
      if (found.length) {
        showViolations(found);
        out.append(h('p', { class: 'error', id: 'apply-invalid' }, `${found.length} problem${found.length > 1 ? 's' : ''}. Nothing was applied.`));
        return;
      }
      if (!applyIt) {
        out.append(h('p', { id: 'apply-valid' }, `Valid: ${m.deployments.length} deployment(s) would be applied.`));
        return;
      }
      const results = [];
      for (const ns of m.namespaces || []) {
        try { await api('POST', '/namespaces', { name: ns }); results.push(`namespace ${ns} created`); } catch (e) {
          if (e.status !== 409) { out.append(h('p', { class: 'error' }, `namespace ${ns}: ${e.message}. No deployment was applied.`)); return; }
        }
      }
      for (const c of m.configs) {
        try {
          await api('POST', '/configs', { name: c.name, namespace: c.namespace, data: c.data });
          results.push(`config ${c.namespace}/${c.name} created`);
        } catch (e) {
          if (e.status !== 409) { results.push(`config ${c.name}: ${e.message}`); continue; }
          await api('PUT', `/configs/${encodeURIComponent(c.name)}?namespace=${encodeURIComponent(c.namespace)}`, { data: c.data });
          results.push(`config ${c.namespace}/${c.name} updated`);
        }
      }
      const links = [];
      for (const d of m.deployments) {
        try {
          const r = await api('POST', '/deployments', d.deployment, { full: true });
          const how = r.headers.get('Husk-Apply-Result') || (r.status === 201 ? 'created' : 'applied');
          links.push(h('li', {}, h('a', { href: `#/deployments/${encodeURIComponent(r.data.id)}`, class: 'applied', dataset: { name: r.data.name } }, `${r.data.namespace}/${r.data.name}`), ` ${how}`));
        } catch (e) {
          links.push(h('li', { class: 'error' }, `${d.key}: not applied: ${e.message}`));
        }
      }
      out.append(h('ul', {}, results.map((r) => h('li', {}, r)), links));
      toast('Manifest applied');
    } catch (e) {
      out.append(h('p', { class: 'error' }, e.message));
    } finally {
      check.disabled = go.disabled = false;
    }
  }
  check.addEventListener('click', () => run(false));
  go.addEventListener('click', () => run(true));
}
