// The hosts table: server-side filters and sorts, keyset pages (the API's `next` cursor), so it
// never loads more than one page of a 100,000-host fleet.
import { api, go, h, hostLink, registerPage, stateBadge, when, fill } from './core.js';
import { COLLECTORS } from './collectors.js';

const FILTERS = ['state', 'image', 'group', 'collector', 'severity', 'q', 'sort', 'order'];

registerPage('hosts', {
  title: 'Hosts',
  nav: true,
  navFor: ['host'],
  async render(main, { params }) {
    const limit = 50;
    const query = new URLSearchParams({ limit: String(limit), count: 'true' });
    for (const k of [...FILTERS, 'after']) if (params.get(k)) query.set(k, params.get(k));
    const page = await api(`/api/v1/hosts?${query}`);
    // Cursors of the pages before this one travel in the URL, so Back works.
    const trail = params.get('trail') ? params.get('trail').split(',') : [];

    const field = (name, control) => h('label', {}, name, control);
    const sel = (name, options) =>
      h(
        'select',
        { name },
        h('option', { value: '' }, 'any'),
        options.map((o) => h('option', { value: o, selected: params.get(name) === o }, o)),
      );
    const text = (name, ph) => h('input', { name, value: params.get(name) ?? '', placeholder: ph });
    const form = h(
      'form',
      { class: 'filters', 'data-test': 'host-filters' },
      field(
        'state',
        sel('state', [
          'pending',
          'clean',
          'drifted',
          'silent',
          'tainted',
          'replacement-scheduled',
          'replacing',
          'replaced',
        ]),
      ),
      field('image', text('image', 'image id')),
      field('group', text('group', 'group')),
      field('collector', sel('collector', [...COLLECTORS.map((c) => c.name), 'integrity'])),
      field('severity', sel('severity', ['low', 'medium', 'high', 'critical'])),
      field('search', text('q', 'host id or name prefix')),
      field(
        'sort',
        h(
          'select',
          { name: 'sort' },
          [
            ['id', 'host id'],
            ['deviations', 'deviations'],
            ['stateSince', 'state since'],
          ].map(([v, l]) => h('option', { value: v, selected: (params.get('sort') ?? 'id') === v }, l)),
        ),
      ),
      field(
        'order',
        h(
          'select',
          { name: 'order' },
          ['asc', 'desc'].map((v) => h('option', { value: v, selected: (params.get('order') ?? 'asc') === v }, v)),
        ),
      ),
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) p.set(k, String(v));
      go('hosts', null, p);
    });

    const move = (after, newTrail) => {
      const p = new URLSearchParams();
      for (const k of FILTERS) if (params.get(k)) p.set(k, params.get(k));
      if (after) p.set('after', after);
      if (newTrail.length) p.set('trail', newTrail.join(','));
      go('hosts', null, p);
    };
    const pageNo = trail.length + 1;
    const pager = h(
      'div',
      { class: 'pager' },
      h(
        'button',
        {
          type: 'button',
          disabled: pageNo === 1,
          onclick: () => move(trail[trail.length - 1] || null, trail.slice(0, -1)),
        },
        '‹ Previous',
      ),
      h('span', { 'data-test': 'host-count' }, `Page ${pageNo} · ${page.total.toLocaleString()} hosts match`),
      h(
        'button',
        { type: 'button', disabled: !page.next, onclick: () => move(page.next, [...trail, params.get('after') ?? '']) },
        'Next ›',
      ),
    );
    fill(
      main,
      h('h1', {}, 'Hosts'),
      form,
      pager,
      h(
        'table',
        { 'data-test': 'hosts-table' },
        h(
          'tr',
          {},
          ['host', 'host id', 'image', 'group', 'state', 'since', 'deviations', 'last seen'].map((t) =>
            h('th', { class: t === 'deviations' ? 'num' : '' }, t),
          ),
        ),
        page.hosts.map((x) =>
          h(
            'tr',
            { class: 'clickable', onclick: () => go('host', x.id) },
            // People know hosts by name; the 32-hex id is there to copy.
            h('td', {}, hostLink(x.id, x.hostname ?? x.id)),
            h('td', { class: 'mono muted' }, x.id),
            h('td', { class: 'mono' }, x.imageId),
            h('td', {}, x.group ?? ''),
            h('td', {}, stateBadge(x.state)),
            h('td', {}, when(x.stateSince)),
            h('td', { class: 'num' }, x.deviationCount),
            h('td', {}, when(x.lastSeenAt)),
          ),
        ),
      ),
      page.hosts.length === 0 ? h('p', { class: 'muted' }, 'No host matches.') : null,
    );
  },
});
