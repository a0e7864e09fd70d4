// Fleet overview: hosts by state and by image, drift over time, groups (the scheduler adds each
// group's breaker state to the groups panel through groupColumns).
import { api, downloads, go, h, registerPage, svg, fill } from './core.js';

/**
 * Extra columns for the groups table: [header, (group, loaded) => cell, load?]. `load` (optional) runs
 * once per render before the table is drawn and its result is passed to the cell as `loaded`; the
 * replacement scheduler adds its breaker state and mode this way.
 */
export const groupColumns = [];

const STATES = ['pending', 'clean', 'drifted', 'silent', 'tainted', 'replacement-scheduled', 'replacing', 'replaced'];

function chart(days) {
  const W = 900,
    H = 200,
    P = 28;
  const max = Math.max(1, ...days.map((d) => Math.max(d.deviations, d.tainted, d.drifted)));
  const x = (i) => P + (i * (W - 2 * P)) / Math.max(1, days.length - 1);
  const y = (v) => H - P - (v * (H - 2 * P)) / max;
  const bw = Math.max(2, (W - 2 * P) / days.length - 3);
  return svg(
    'svg',
    { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'new deviations and hosts tainted per day' },
    svg('line', { class: 'axis', x1: P, y1: H - P, x2: W - P, y2: H - P }),
    days.map((d, i) =>
      svg(
        'rect',
        { class: 'bar', x: x(i) - bw / 2, y: y(d.deviations), width: bw, height: H - P - y(d.deviations) },
        svg('title', {}, `${d.day}: ${d.deviations} new deviations, ${d.tainted} tainted, ${d.drifted} drifted`),
      ),
    ),
    svg('polyline', { class: 'line', points: days.map((d, i) => `${x(i)},${y(d.tainted)}`).join(' ') }),
    svg('text', { x: P, y: 12 }, `max ${max}`),
    svg('text', { x: P, y: H - 8 }, days[0]?.day ?? ''),
    svg('text', { x: W - P - 60, y: H - 8 }, days[days.length - 1]?.day ?? ''),
  );
}

registerPage('overview', {
  title: 'Overview',
  nav: true,
  async render(main) {
    const [o, ...loaded] = await Promise.all([
      api('/api/v1/fleet/overview'),
      ...groupColumns.map(([, , load]) => (load ? load() : null)),
    ]);
    const link = (params) => `#/hosts?${new URLSearchParams(params)}`;
    fill(
      main,
      h('h1', {}, `Fleet: ${o.total.toLocaleString()} hosts`),
      h(
        'div',
        { class: 'cards', 'data-test': 'state-cards' },
        STATES.map((s) =>
          h(
            'a',
            // A zero is not an alarm: only a count above zero takes its state's colour.
            { class: `card ${s}${(o.states[s] ?? 0) === 0 ? ' zero' : ''}`, href: link({ state: s }) },
            h('div', { class: 'n' }, (o.states[s] ?? 0).toLocaleString()),
            h('div', {}, s),
          ),
        ),
      ),
      h(
        'div',
        { class: 'panel' },
        h('h2', {}, `Drift over the last ${o.drift.length} days`),
        h('p', { class: 'muted' }, 'Bars: new deviations per day. Line: hosts tainted per day.'),
        chart(o.drift),
      ),
      h(
        'div',
        { class: 'grid2' },
        h(
          'div',
          { class: 'panel' },
          h('h2', {}, 'By image'),
          h(
            'table',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'image'),
              h('th', { class: 'num' }, 'hosts'),
              h('th', { class: 'num' }, 'drifted'),
              h('th', { class: 'num' }, 'tainted'),
              h('th', {}, ''),
            ),
            o.images.map((i) =>
              h(
                'tr',
                { class: 'clickable', onclick: () => go('hosts', null, new URLSearchParams({ image: i.value })) },
                h('td', { class: 'mono' }, i.value),
                h('td', { class: 'num' }, i.hosts),
                h('td', { class: 'num' }, i.drifted),
                h('td', { class: 'num' }, i.tainted),
                h('td', {}, downloads('image', i.value)),
              ),
            ),
          ),
        ),
        h(
          'div',
          { class: 'panel', id: 'groups-panel' },
          h('h2', {}, 'Groups'),
          h(
            'table',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'group'),
              h('th', { class: 'num' }, 'hosts'),
              h('th', { class: 'num' }, 'drifted'),
              h('th', { class: 'num' }, 'tainted'),
              groupColumns.map(([t]) => h('th', {}, t)),
            ),
            o.groups.map((g) =>
              h(
                'tr',
                {
                  class: 'clickable',
                  onclick: () => g.group !== null && go('hosts', null, new URLSearchParams({ group: g.group })),
                },
                h('td', {}, g.group ?? '(none)'),
                h('td', { class: 'num' }, g.hosts),
                h('td', { class: 'num' }, g.drifted),
                h('td', { class: 'num' }, g.tainted),
                groupColumns.map(([, cell], i) => h('td', {}, cell(g, loaded[i]))),
              ),
            ),
          ),
        ),
      ),
      h('p', {}, downloads('fleet')),
    );
  },
});
