// app.js: the dashboard's shell: theme, session, navigation, and the hash router that gives each
// page its state from the URL (route.js).
import { ApiError, api, get, setToken, setUnauthorizedHandler, token } from './api.js';
import { buildHash, parseHash } from './route.js';
import { clear, errorBox, fill, h } from './ui.js';
import * as overview from './page_overview.js';
import * as deployments from './page_deployments.js';
import * as deployment from './page_deployment.js';
import * as apply from './page_apply.js';
import * as admin from './page_admin.js';

// [path segment, title, page, who sees it in the menu]
const PAGES = [
  ['', 'Overview', overview, (c) => c.can('deployments:read')],
  ['deployments', 'Deployments', deployments, (c) => c.can('deployments:read')],
  ['apply', 'Apply', apply, (c) => c.can('deployments:write')],
  ['namespaces', 'Namespaces', admin.namespaces, (c) => c.can('namespaces:read')],
  ['configs', 'Configs', admin.configs, (c) => c.can('configs:read')],
  ['secrets', 'Secrets', admin.secrets, (c) => c.can('secrets:read')],
  ['volumes', 'Volumes', admin.volumes, (c) => c.can('deployments:read')],
  ['tokens', 'Tokens', admin.tokens, (c) => c.can('tokens:write')],
  ['users', 'Users', admin.users, (c) => c.can('users:read')],
  ['webhooks', 'Webhooks', admin.webhooks, (c) => c.can('webhooks:read') || c.admin],
  ['node', 'Node', admin.node, () => true],
];

const main = document.getElementById('main');
let me = null;
let cleanups = [];
let renderedPath = null;

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem('husk.theme', theme);
}
const preferred = localStorage.getItem('husk.theme') ||
  (window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
applyTheme(preferred);
document.getElementById('theme').addEventListener('click', () =>
  applyTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));

const navToggle = document.getElementById('nav-toggle');
navToggle.addEventListener('click', () => {
  const nav = document.getElementById('nav');
  nav.classList.toggle('open');
  navToggle.setAttribute('aria-expanded', nav.classList.contains('open'));
});

document.getElementById('logout').addEventListener('click', async () => {
  try { await api('POST', '/logout'); } catch { /* the session may be gone already */ }
  setToken(null);
  me = null;
  location.hash = '#/';
  route();
});

setUnauthorizedHandler(() => {
  setToken(null);
  me = null;
  route();
});

function ctxFor(r) {
  const scopes = new Set((me && me.scopes) || []);
  return {
    main, route: r, me,
    admin: me && me.role === 'admin',
    can: (scope) => scopes.has(scope),
    onCleanup: (fn) => cleanups.push(fn),
    // The page changed its own state: into the URL, without a new page (history gets no entry
    // per keystroke; a link copied now opens this very view).
    setQuery(patch) {
      Object.assign(r.query, patch);
      history.replaceState(null, '', buildHash(r.parts, r.query));
    },
    go(parts, query = {}) { location.hash = buildHash(parts, query); },
  };
}

function renderNav(ctx, current) {
  const nav = clear(document.getElementById('nav'));
  if (!me) return;
  for (const [seg, title, , visible] of PAGES) {
    if (!visible(ctx)) continue;
    nav.append(h('a', { href: `#/${seg}`, 'aria-current': seg === current ? 'page' : null }, title));
  }
  document.getElementById('who').textContent = `${me.username} (${me.role})`;
  document.getElementById('logout').hidden = false;
}

function loginPage() {
  document.getElementById('who').textContent = '';
  document.getElementById('logout').hidden = true;
  clear(document.getElementById('nav'));
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const msg = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'login card', id: 'login' },
    h('h1', {}, 'Log in to husk'),
    h('label', { for: 'login-user' }, 'Username'), user,
    h('label', { for: 'login-pass' }, 'Password'), pass, msg,
    h('div', { class: 'toolbar' }, h('button', { class: 'primary', type: 'submit' }, 'Log in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    try {
      const answer = await api('POST', '/login', { username: user.value, password: pass.value });
      setToken(answer.token);
      route();
    } catch (e) {
      msg.textContent = e instanceof ApiError ? e.message : `cannot reach the API: ${e.message}`;
      pass.select();
    }
  });
  fill(main, form);
  user.focus();
}

async function route() {
  for (const fn of cleanups.splice(0)) try { fn(); } catch { /* a page's cleanup must not stop the next */ }
  const r = parseHash(location.hash);
  if (!token()) return loginPage();
  if (!me) {
    try { me = await get('/users/me'); } catch (e) {
      if (e.status === 401 || !token()) return loginPage();
      fill(main, errorBox(e));
      return;
    }
  }
  const seg = r.parts[0] || '';
  const entry = PAGES.find((p) => p[0] === seg);
  const ctx = ctxFor(r);
  renderNav(ctx, seg);
  document.getElementById('nav').classList.remove('open');
  clear(main);
  const page = seg === 'deployments' && r.parts.length > 1 ? deployment : entry && entry[2];
  if (!page) {
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Overview')));
    return;
  }
  document.title = `husk · ${entry ? entry[1] : 'deployment'}`;
  try {
    await page.render(ctx);
  } catch (e) {
    main.append(errorBox(e));
  }
  // Focus moves to the new content for keyboard and screen-reader users, not on every poll.
  if (renderedPath !== r.path) main.focus({ preventScroll: true });
  renderedPath = r.path;
}

window.addEventListener('hashchange', route);
route();
