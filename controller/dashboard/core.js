// The dashboard's core: API calls with the session cookie and CSRF header, a DOM builder (text is
// never parsed as HTML), the page registry and router, and the one confirmed-action dialog every
// action goes through. New pages call registerPage(); new actions call confirmAction().

export const session = { current: null };

const RANK = { viewer: 1, operator: 2, admin: 3 };
export function can(role) {
  return (RANK[session.current?.role] ?? 0) >= RANK[role];
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch() against the controller's API: the cookie rides along; changes carry the CSRF token. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session.current?.csrf) headers['x-csrf-token'] = session.current.csrf;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok)
    throw new ApiError(res.status, json?.error ?? 'HTTP', json?.message ?? `${res.status} ${res.statusText}`);
  return json;
}

/** h('a', { href }, 'text', child…): elements from data, with no HTML parsing anywhere. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity))
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export const stateBadge = (s) => h('span', { class: `state ${s}` }, s);
export const sevText = (s) => h('span', { class: `sev-${s}` }, s);
export const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
export const hostLink = (id, label) => h('a', { href: `#/host/${encodeURIComponent(id)}` }, label ?? id);
export const show = (v) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** A value as people read it: hashes cut to 16 digits (the full value is in the exports). */
const showField = (v, field) =>
  v === undefined
    ? '(none)'
    : field === 'sha256' && typeof v === 'string' && v.length > 16
      ? `${v.slice(0, 16)}…`
      : show(v);

/**
 * Expected against actual as shared/change-text.ts writes it for the CLI: the fields that differ as
 * `field: expected → actual`, an added or removed item as its fields. One entry per line.
 */
export function changeLines(d) {
  const item = (x) =>
    Object.entries(x ?? {})
      .filter(([k]) => k !== 'key')
      .map(([k, v]) => `${k}=${showField(v, k)}`)
      .join(' ');
  if (d.change === 'added') return [`added: ${item(d.actual)}`];
  if (d.change === 'removed') return [`removed: ${item(d.expected)}`];
  const keys = [...new Set([...Object.keys(d.expected ?? {}), ...Object.keys(d.actual ?? {})])]
    .filter((k) => k !== 'key' && JSON.stringify(d.expected?.[k]) !== JSON.stringify(d.actual?.[k]))
    .sort();
  return keys.length
    ? keys.map((k) => `${k}: ${showField(d.expected?.[k], k)} → ${showField(d.actual?.[k], k)}`)
    : ['(no field differs)'];
}

/** An audit row's detail as `key: value` lines (nested values as compact JSON). */
export function detailLines(detail) {
  return Object.entries(detail ?? {})
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

// The sentence shared/attribution-text.ts writes for `check` and the reports, for the same record.
const DONE = {
  install: 'installed',
  reinstall: 'reinstalled',
  upgrade: 'upgraded',
  downgrade: 'downgraded',
  remove: 'removed',
  purge: 'purged',
  configure: 'configured',
};
const SOURCES = {
  'dpkg-log': 'dpkg.log',
  'apt-history': 'apt history',
  'dnf-history': 'dnf history',
  rpm: 'rpm database',
  'auth-log': 'auth log',
};
/** Who or what made a change, from the host's package-manager or auth log: "upgraded by "apt-get upgrade", run by alice at …". */
export function attributionText(a) {
  let s = DONE[a.action] ?? a.action;
  if (a.ownedBy !== undefined) {
    const versions =
      a.fromVersion !== undefined && a.toVersion !== undefined
        ? ` ${a.fromVersion} -> ${a.toVersion}`
        : a.toVersion !== undefined
          ? ` ${a.toVersion}`
          : '';
    s = `owned by ${a.ownedBy}, ${s}${versions}`;
  }
  if (a.commandLine !== undefined) s += ` by "${a.commandLine}"`;
  if (a.user !== undefined) s += `, run by ${a.user}`;
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(Z|[+-]\d\d:\d\d)?$/.exec(a.at);
  const at = m ? `${m[1]} ${m[2]}${m[3] === undefined ? '' : ` ${m[3] === 'Z' ? 'UTC' : m[3]}`}` : a.at;
  return `${s} at ${at} (${SOURCES[a.source] ?? a.source})`;
}
/** The attribution line under a deviation, or nothing when the host keeps no record of the change. */
export const attributionLine = (a) =>
  a ? h('p', { class: 'attribution', 'data-test': 'attribution' }, h('b', {}, 'Made by: '), attributionText(a)) : null;

/** Report downloads (JSON, CSV, printable HTML) for a scope. */
export function downloads(scope, id) {
  const q = (format) =>
    `/api/v1/drift-report?${new URLSearchParams({ scope, ...(id ? { id } : {}), format, download: format === 'html' ? 'false' : 'true' })}`;
  return h(
    'span',
    { class: 'downloads' },
    'Report: ',
    h('a', { href: q('json'), download: '' }, 'JSON'),
    h('a', { href: q('csv'), download: '', 'data-test': 'csv-link' }, 'CSV'),
    h('a', { href: q('html'), target: '_blank', rel: 'noopener' }, 'HTML (print)'),
  );
}

// ---- pages and routing ----

const pages = new Map();

/** name: the first segment of #/name/arg?query. `nav`: shown in the top bar, in registration order. */
export function registerPage(name, page) {
  pages.set(name, page);
}

export function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '') || 'overview';
  const [path, query = ''] = raw.split('?');
  const [name, ...rest] = path.split('/');
  return { name, arg: rest.length ? decodeURIComponent(rest.join('/')) : null, params: new URLSearchParams(query) };
}

export function go(name, arg, params) {
  const q = params && [...params].length ? `?${params}` : '';
  location.hash = `#/${name}${arg ? `/${encodeURIComponent(arg)}` : ''}${q}`;
}

export function renderNav() {
  const nav = document.getElementById('nav');
  const current = parseRoute().name;
  nav.replaceChildren(
    ...[...pages]
      .filter(([, p]) => p.nav)
      .map(([name, p]) =>
        h('a', { href: `#/${name}`, class: current === name || p.navFor?.includes(current) ? 'active' : '' }, p.title),
      ),
  );
}

export async function route() {
  const main = document.getElementById('main');
  const r = parseRoute();
  const page = pages.get(r.name);
  renderNav();
  if (!page) {
    main.replaceChildren(h('p', { class: 'error' }, `No page ${r.name}.`));
    return;
  }
  document.title = `${page.title} · driftwarden`;
  const started = performance.now();
  try {
    await page.render(main, r);
    main.dataset.loadedMs = String(Math.round(performance.now() - started));
    main.dataset.page = r.name;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showLogin(err.message);
    main.replaceChildren(h('p', { class: 'error' }, `Could not load: ${err.message}`));
  }
}

// ---- the confirmed action ----

/**
 * Every state-changing action: a dialog that says what will happen, asks for what the API needs
 * (fields marked required must be filled), and only then sends the request with the session's CSRF
 * token. The API decides whether the role may; its refusal is shown in the dialog as is.
 * Resolves with the API's answer, or null if cancelled.
 */
export function confirmAction({ title, description, fields = [], confirmLabel = 'Confirm', danger = false, run }) {
  const dialog = document.getElementById('confirm');
  return new Promise((resolve) => {
    const inputs = {};
    const error = h('p', { class: 'error', role: 'alert' });
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', {}, title),
      description ? h('p', {}, description) : null,
      fields.map((f) => {
        const input =
          f.type === 'select'
            ? h(
                'select',
                { name: f.name, required: f.required },
                f.options.map(([v, label]) => h('option', { value: v, selected: v === f.value }, label)),
              )
            : f.type === 'textarea'
              ? h('textarea', { name: f.name, required: f.required, rows: 3 }, f.value ?? '')
              : h('input', { name: f.name, type: f.type ?? 'text', required: f.required, value: f.value ?? '' });
        inputs[f.name] = input;
        return h('label', {}, f.label, input);
      }),
      error,
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', value: 'cancel', onclick: () => close(null) }, 'Cancel'),
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, confirmLabel),
      ),
    );
    const close = (v) => {
      dialog.close();
      resolve(v);
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const values = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
      for (const f of fields)
        if (f.required && !values[f.name]) return void (error.textContent = `${f.label} is required.`);
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      error.textContent = '';
      try {
        close(await run(values));
      } catch (err) {
        error.textContent = `Refused: ${err.message}`;
        button.disabled = false;
      }
    });
    dialog.replaceChildren(form);
    dialog.showModal();
  });
}

export function flash(text) {
  const main = document.getElementById('main');
  main.prepend(h('p', { class: 'notice', role: 'status' }, text));
}

// ---- login ----

export function showLogin(message) {
  session.current = null;
  document.getElementById('who').replaceChildren();
  document.getElementById('nav').replaceChildren();
  const token = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    placeholder: 'dwt_…',
    required: true,
  });
  const error = h('p', { class: 'error', role: 'alert' }, message && !/missing bearer/.test(message) ? message : '');
  const form = h(
    'form',
    { class: 'login panel' },
    h('h1', {}, 'Sign in'),
    h(
      'p',
      { class: 'muted' },
      'Paste an API token (viewer, operator or admin). The controller keeps it only as a signed session cookie naming the token.',
    ),
    h('label', {}, 'API token', token),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      session.current = await api('/api/v1/session', { method: 'POST', body: { token: token.value } });
      token.value = '';
      renderWho();
      await route();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  document.getElementById('main').replaceChildren(form);
}

export function renderWho() {
  const s = session.current;
  const who = document.getElementById('who');
  if (!s) return who.replaceChildren();
  who.replaceChildren(
    `${s.name} (${s.role})`,
    h(
      'button',
      {
        type: 'button',
        onclick: async () => {
          await api('/api/v1/session', { method: 'DELETE' }).catch(() => {});
          showLogin();
        },
      },
      'Sign out',
    ),
  );
}

export async function start() {
  window.addEventListener('hashchange', () => void route());
  try {
    session.current = await api('/api/v1/session');
  } catch (err) {
    return showLogin(err.message);
  }
  renderWho();
  await route();
}

/** Replaces an element's children the way h() adds them: arrays flattened, null/false left out, text as text. */
export function fill(el, ...children) {
  el.replaceChildren(
    ...children
      .flat(Infinity)
      .filter((c) => c !== undefined && c !== null && c !== false)
      .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))),
  );
  return el;
}
