// The audit log, newest first, with each row's hash-chain link (driftwarden audit verify checks them).
import { api, detailLines, h, registerPage, when, fill } from './core.js';

registerPage('audit', {
  title: 'Audit log',
  nav: true,
  async render(main, { params }) {
    const before = params.get('before');
    const q = new URLSearchParams({ limit: '100', beforeId: before ?? String(Number.MAX_SAFE_INTEGER) });
    const r = await api(`/api/v1/audit?${q}`);
    fill(
      main,
      h('h1', {}, 'Audit log'),
      h('p', { class: 'muted' }, 'Append-only and hash-chained: each row carries the hash of the one before it.'),
      h(
        'table',
        { 'data-test': 'audit-table' },
        h(
          'tr',
          {},
          ['#', 'at', 'actor', 'action', 'target', 'detail', 'hash'].map((t) => h('th', {}, t)),
        ),
        r.audit.map((a) =>
          h(
            'tr',
            {},
            h('td', { class: 'num' }, a.id),
            h('td', {}, when(a.at)),
            h('td', {}, a.actor),
            h('td', {}, a.action),
            h('td', { class: 'mono' }, a.target ?? ''),
            h(
              'td',
              { class: 'detail', 'data-test': 'detail' },
              detailLines(a.detail).map((line) => h('div', {}, line)),
            ),
            h('td', { class: 'mono', title: a.hash }, a.hash.slice(0, 12)),
          ),
        ),
      ),
      h('div', { class: 'pager' }, r.next ? h('a', { href: `#/audit?before=${r.next}` }, 'Older ›') : null),
    );
  },
});
