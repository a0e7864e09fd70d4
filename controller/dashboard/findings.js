// Findings: identical deviations across hosts are one row (the openssl patched by hand on 20 hosts
// is one finding with 20 hosts), with when it first appeared and the hosts it affects.
import {
  api,
  attributionText,
  changeLines,
  h,
  hostLink,
  registerPage,
  sevText,
  stateBadge,
  when,
  fill,
} from './core.js';
import { COLLECTORS } from './collectors.js';

/** The API's sorts (shared/schema/findings.ts FINDING_SORTS; `-` is descending). */
const SORTS = [
  ['', 'most hosts'],
  ['-severity', 'severity, worst first'],
  ['-firstSeen', 'newest first'],
  ['firstSeen', 'oldest first'],
  ['-lastSeen', 'last seen'],
  ['key', 'key (path)'],
  ['collector', 'collector'],
];

registerPage('findings', {
  title: 'Findings',
  nav: true,
  async render(main, { params }) {
    const q = new URLSearchParams({ limit: '100' });
    for (const k of ['collector', 'severity', 'q', 'sort', 'offset']) if (params.get(k)) q.set(k, params.get(k));
    const r = await api(`/api/v1/findings?${q}`);
    const rows = [];
    for (const f of r.findings) {
      const hostsRow = h('tr', { hidden: true }, h('td', { colspan: 9 }));
      const open = async () => {
        if (!hostsRow.hidden) return void (hostsRow.hidden = true);
        const hosts = await api(
          `/api/v1/findings/hosts?${new URLSearchParams({ collector: f.collector, key: f.key, change: f.change, actualDigest: f.actualDigest, limit: '200' })}`,
        );
        hostsRow.firstChild.replaceChildren(
          h(
            'div',
            {},
            `${f.hosts} hosts${hosts.next ? ' (first 200)' : ''}: `,
            h(
              'ul',
              { class: 'finding-hosts' },
              hosts.hosts.map((x) =>
                h(
                  'li',
                  {},
                  hostLink(x.hostId, x.hostname ?? x.hostId),
                  ' ',
                  stateBadge(x.state),
                  x.attribution
                    ? h(
                        'span',
                        { class: 'attribution', 'data-test': 'attribution' },
                        ` ${attributionText(x.attribution)}`,
                      )
                    : null,
                ),
              ),
            ),
          ),
        );
        hostsRow.hidden = false;
      };
      rows.push(
        h(
          'tr',
          { class: 'clickable', onclick: open, 'data-test': 'finding' },
          h('td', { class: 'num' }, f.hosts),
          h('td', {}, sevText(f.severity)),
          h('td', {}, f.action),
          h('td', {}, f.collector),
          h('td', {}, f.change),
          h('td', { class: 'mono' }, f.key),
          h('td', {}, when(f.firstSeenAt)),
          h(
            'td',
            { class: 'change', 'data-test': 'change' },
            changeLines(f).map((line) => h('div', {}, line)),
          ),
          h(
            'td',
            { 'data-test': f.attribution ? 'attribution' : undefined },
            f.attribution
              ? `${attributionText(f.attribution)}${f.hosts > 1 ? ` (${f.attributedHosts} of ${f.hosts} hosts have a record)` : ''}`
              : h('span', { class: 'muted' }, 'no record'),
          ),
        ),
        hostsRow,
      );
    }
    const form = h(
      'form',
      { class: 'filters' },
      h(
        'label',
        {},
        'collector',
        h(
          'select',
          { name: 'collector' },
          [['', 'any'], ...COLLECTORS.map((c) => [c.name, c.label]), ['integrity', 'Integrity (scan gaps)']].map(
            ([c, label]) => h('option', { value: c, selected: params.get('collector') === c }, label),
          ),
        ),
      ),
      h(
        'label',
        {},
        'severity',
        h(
          'select',
          { name: 'severity' },
          ['', 'low', 'medium', 'high', 'critical'].map((c) =>
            h('option', { value: c, selected: params.get('severity') === c }, c || 'any'),
          ),
        ),
      ),
      h(
        'label',
        {},
        'search',
        h('input', {
          name: 'q',
          type: 'search',
          value: params.get('q') ?? '',
          placeholder: 'path, collector or hostname',
        }),
      ),
      h(
        'label',
        {},
        'sort by',
        h(
          'select',
          { name: 'sort' },
          SORTS.map(([v, label]) => h('option', { value: v, selected: (params.get('sort') ?? '') === v }, label)),
        ),
      ),
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) p.set(k, String(v));
      location.hash = `#/findings?${p}`;
    });
    const offset = Number(params.get('offset') ?? 0);
    fill(
      main,
      h('h1', {}, 'Findings'),
      h(
        'p',
        { class: 'muted' },
        'Identical deviations (same collector, key, change and actual content) across hosts are one finding. Click one to see its hosts.',
      ),
      form,
      h(
        'table',
        { 'data-test': 'findings-table' },
        h(
          'tr',
          {},
          [
            'hosts',
            'severity',
            'policy',
            'collector',
            'change',
            'key',
            'first seen',
            'expected → actual',
            'made by',
          ].map((t) => h('th', {}, t)),
        ),
        rows,
      ),
      r.findings.length === 0
        ? h(
            'p',
            { class: 'muted' },
            params.get('q') ? `No findings match "${params.get('q')}".` : 'No current deviations.',
          )
        : null,
      h(
        'div',
        { class: 'pager' },
        offset > 0
          ? h(
              'a',
              {
                href: `#/findings?${new URLSearchParams({ ...Object.fromEntries(params), offset: String(Math.max(0, offset - 100)) })}`,
              },
              '‹ Previous',
            )
          : null,
        r.next
          ? h(
              'a',
              { href: `#/findings?${new URLSearchParams({ ...Object.fromEntries(params), offset: String(r.next) })}` },
              'Next ›',
            )
          : null,
      ),
    );
  },
});
