// One host: its current deviations as expected-vs-actual diffs grouped by collector, its timeline
// (reports, events, state changes) and, while it is being replaced, the replacement's progress.
import {
  api,
  attributionLine,
  can,
  confirmAction,
  downloads,
  flash,
  h,
  registerPage,
  route,
  sevText,
  show,
  stateBadge,
  when,
  fill,
} from './core.js';
import { COLLECTORS } from './collectors.js';

/** Sections other parts add to the host page (the replacement scheduler's progress): (host, detail) => Node | null. */
export const hostSections = [];

/** Exemptions name a registered collector; `integrity` gaps are not exemptable. */
const EXEMPTABLE = new Set(COLLECTORS.map((c) => c.name));
const LABEL = new Map(COLLECTORS.map((c) => [c.name, c.label]));
const REPLACEMENT_STATES = ['replacement-scheduled', 'replacing', 'replaced'];

function diffTable(d) {
  const exp = d.expected ?? {};
  const act = d.actual ?? {};
  const keys = [...new Set([...Object.keys(exp), ...Object.keys(act)])].filter((k) => k !== 'key').sort();
  return h(
    'table',
    { class: 'diff' },
    h('tr', {}, h('th', {}, 'field'), h('th', {}, 'expected (image)'), h('th', {}, 'actual (host)')),
    keys.map((k) => {
      const e = show(exp[k]);
      const a = show(act[k]);
      const same = d.expected && d.actual && e === a;
      return h(
        'tr',
        { class: same ? 'same' : '' },
        h('td', {}, k),
        h('td', { class: 'mono exp' }, d.expected ? e : '(absent)'),
        h('td', { class: 'mono act' }, d.actual ? a : '(absent)'),
      );
    }),
  );
}

function exemptButton(host, d) {
  if (!EXEMPTABLE.has(d.collector) || d.action === 'ignore') return null;
  return h(
    'button',
    {
      type: 'button',
      'data-test': 'exempt',
      title: can('operator')
        ? 'Exempt this deviation for a limited time'
        : 'Needs the operator role: the controller will refuse a viewer',
      onclick: async () => {
        const done = await confirmAction({
          title: 'Exempt a deviation',
          description: `The policy will not act on ${d.collector} ${d.key} while the exemption lasts. It is recorded in the audit log with your name.`,
          fields: [
            {
              name: 'scope',
              label: 'Applies to',
              type: 'select',
              value: 'host',
              options: [
                ['host', `this host (${host.id})`],
                ['image', `every host of image ${host.imageId}`],
              ],
            },
            { name: 'keyPattern', label: 'Key (glob)', value: d.key, required: true },
            { name: 'reason', label: 'Reason', type: 'textarea', required: true },
            {
              name: 'for',
              label: 'Expires after',
              type: 'select',
              value: '7d',
              options: [
                ['24h', '1 day'],
                ['7d', '7 days'],
                ['30d', '30 days'],
                ['90d', '90 days'],
              ],
              required: true,
            },
          ],
          confirmLabel: 'Exempt',
          run: (v) =>
            api('/api/v1/exemptions', {
              method: 'POST',
              body: {
                ...(v.scope === 'host' ? { hostId: host.id } : { imageId: host.imageId }),
                collector: d.collector,
                keyPattern: v.keyPattern,
                reason: v.reason,
                for: v.for,
              },
            }),
        });
        if (done) {
          await route();
          flash(`Exemption ${done.id} active until ${done.expiresAt}. It applies from the host's next report.`);
        }
      },
    },
    can('operator') ? 'Exempt…' : 'Exempt… (operator)',
  );
}

function timeline(detail, events) {
  const items = [
    ...detail.timeline.transitions.map((t) => ({
      at: t.at,
      text: `${t.from ?? '(new)'} → ${t.to}: ${t.cause}`,
      who: t.actor,
      kind: 'state',
    })),
    ...detail.timeline.reports.map((r) => ({
      at: r.receivedAt,
      text: `${r.kind} report #${r.seq}: ${r.deviationCount} deviations${r.digestMismatch.length ? `, digests do not add up: ${r.digestMismatch.join(', ')}` : ''}`,
      who: 'agent',
      kind: 'report',
    })),
    ...events
      .filter((e) => e.kind !== 'state')
      .map((e) => ({
        at: e.at,
        text:
          e.kind === 'deviation'
            ? `new deviation: ${e.detail.collector} ${e.detail.change} ${e.detail.key} (${e.detail.action})`
            : `${e.kind}: ${show(e.detail)}`,
        who: e.actor,
        kind: e.kind,
      })),
  ].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  return h(
    'ul',
    { class: 'timeline', 'data-test': 'timeline' },
    items
      .slice(0, 200)
      .map((i) =>
        h(
          'li',
          {},
          h('span', { class: 'muted' }, when(i.at)),
          ' ',
          h('b', {}, i.kind),
          ' ',
          i.text,
          ' ',
          h('span', { class: 'muted' }, `[${i.who}]`),
        ),
      ),
  );
}

registerPage('host', {
  title: 'Host',
  async render(main, { arg }) {
    const id = arg;
    const [detail, ev] = await Promise.all([
      api(`/api/v1/hosts/${encodeURIComponent(id)}`),
      api(`/api/v1/hosts/${encodeURIComponent(id)}/events?limit=200`),
    ]);
    const host = detail.host;
    const byCollector = new Map();
    for (const d of detail.deviations) byCollector.set(d.collector, [...(byCollector.get(d.collector) ?? []), d]);
    const inReplacement = REPLACEMENT_STATES.includes(host.state);
    fill(
      main,
      h('h1', {}, `${host.hostname ?? host.id} `, stateBadge(host.state)),
      h(
        'div',
        { class: 'panel' },
        h(
          'table',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'host id'),
            h('td', { class: 'mono' }, host.id),
            h('th', {}, 'image'),
            h('td', { class: 'mono' }, host.imageId),
          ),
          h(
            'tr',
            {},
            h('th', {}, 'group'),
            h('td', {}, host.group ?? '—'),
            h('th', {}, 'state since'),
            h('td', {}, when(host.stateSince)),
          ),
          h(
            'tr',
            {},
            h('th', {}, 'last seen'),
            h('td', {}, when(host.lastSeenAt)),
            h('th', {}, 'last report'),
            h('td', {}, when(host.lastReportAt)),
          ),
          h(
            'tr',
            {},
            h('th', {}, 'last full scan'),
            h('td', {}, when(host.lastScanAt)),
            h('th', {}, 'enrolled'),
            h('td', {}, when(host.enrolledAt)),
          ),
          h(
            'tr',
            {},
            h('th', {}, 'tainted at'),
            h('td', {}, when(host.taintedAt)),
            h('th', {}, 'agent'),
            h('td', {}, host.agentVersion ?? '—'),
          ),
          h(
            'tr',
            {},
            h('th', {}, 'cloud identity'),
            h('td', { colspan: '3', class: 'mono' }, host.cloudIdentity ? identityText(host.cloudIdentity) : '—'),
          ),
          // The name, group and identity above are pinned at enrollment; a different claim is shown, never used.
          host.reportedHostname || host.reportedGroup || host.reportedCloudIdentity
            ? h(
                'tr',
                { class: 'claim' },
                h('th', {}, 'claims'),
                h(
                  'td',
                  { colspan: '3' },
                  [
                    host.reportedHostname ? `hostname ${host.reportedHostname}` : null,
                    host.reportedGroup ? `group ${host.reportedGroup}` : null,
                    host.reportedCloudIdentity ? `identity ${identityText(host.reportedCloudIdentity)}` : null,
                  ]
                    .filter(Boolean)
                    .join(', '),
                  h('span', { class: 'muted' }, ' (refused: replacements act on the enrolled identity)'),
                ),
              )
            : null,
        ),
        h('p', {}, downloads('host', host.id)),
      ),
      inReplacement || hostSections.length
        ? h(
            'div',
            { class: 'panel', id: 'replacement' },
            h('h2', {}, 'Replacement'),
            inReplacement ? h('p', {}, `The host is ${host.state} since ${when(host.stateSince)}.`) : null,
            hostSections.map((s) => s(host, detail)),
          )
        : null,
      h('h2', {}, `Current deviations (${detail.deviations.length})`),
      detail.deviations.length === 0 ? h('p', { class: 'muted' }, 'None: the host matches its image.') : null,
      [...byCollector].map(([collector, list]) =>
        h(
          'section',
          { class: 'collector', 'data-collector': collector },
          h('h2', {}, `${LABEL.get(collector) ?? collector} (${list.length})`),
          list.map((d) =>
            h(
              'div',
              { class: 'deviation', 'data-key': d.key },
              h(
                'div',
                { class: 'head' },
                h('b', { class: 'mono' }, d.key),
                h('span', {}, d.change),
                sevText(d.severity),
                h('span', {}, `policy: ${d.action}`),
                h('span', { class: 'muted' }, `by ${d.decidedBy}, since ${when(d.firstSeenAt)}`),
                exemptButton(host, d),
              ),
              attributionLine(d.attribution),
              diffTable(d),
            ),
          ),
        ),
      ),
      h('h2', {}, 'Timeline'),
      timeline(detail, ev.events),
    );
  },
});

/** One line for a cloud identity (as the CLI's `report HOST` prints it). */
function identityText(i) {
  if (i.kind === 'aws')
    return `aws instance ${i.instanceId} (account ${i.accountId}, ${i.availabilityZone}, ${i.imageId})`;
  if (i.kind === 'kubernetes') return `kubernetes node ${i.nodeName}${i.providerId ? ` (${i.providerId})` : ''}`;
  return `machine-id ${i.machineId}`;
}
