// The replacement queue and its groups: what the scheduler decided (or in dry-run would do) and why,
// the budgets and breaker of each group, and the operator's actions on them (each confirmed, audited
// by the API). Also adds the breaker and mode to the overview's groups and a host's progress to its page.
import {
  api,
  can,
  confirmAction,
  flash,
  go,
  h,
  hostLink,
  registerPage,
  route,
  stateBadge,
  when,
  fill,
} from './core.js';
import { hostSections } from './host.js';
import { groupColumns } from './overview.js';

const ACTIVE = ['queued', 'awaiting-approval', 'scheduled', 'replacing', 'failed'];
const ALL = [...ACTIVE, 'replaced', 'cancelled'];
const LIMIT = 50;

const opLabel = (label) => (can('operator') ? label : `${label} (operator)`);
const opTitle = (what) => (can('operator') ? what : 'Needs the operator role: the controller will refuse a viewer');

/** One confirmed, audited action; on success the page is drawn again and says what happened. */
async function act(o, done) {
  const r = await confirmAction(o);
  if (r) {
    await route();
    flash(done(r));
  }
}

function budgetText(b) {
  const parts = [];
  if (b.maxUnavailable !== undefined) parts.push(`maxUnavailable ${b.maxUnavailable}`);
  if (b.rate) parts.push(`at most ${b.rate.max} per ${b.rate.per}`);
  if (b.windows?.length) parts.push(`windows ${b.windows.map((w) => `${w.schedule} for ${w.duration}`).join('; ')}`);
  if (b.minClean !== undefined) parts.push(`minClean ${b.minClean}`);
  return parts.join(', ') || 'no limit';
}

function breakerCell(g) {
  if (!g) return h('span', { class: 'muted' }, '—');
  if (!g.paused) return h('span', { class: 'breaker closed', 'data-test': 'breaker' }, 'closed');
  const by = g.pausedBy === 'breaker' ? 'tripped' : `paused by ${g.pausedBy}`;
  return h(
    'span',
    { class: 'breaker tripped', 'data-test': 'breaker', title: g.pausedReason ?? '' },
    `${by} ${when(g.pausedAt)}: ${g.pausedReason ?? ''}`,
  );
}

function groupActions(g) {
  if (g.paused) {
    return h(
      'button',
      {
        type: 'button',
        'data-test': 'resume',
        title: opTitle('Let the scheduler replace hosts of this group again'),
        onclick: () =>
          act(
            {
              title: `Resume group ${g.name}`,
              description: `Replacements in ${g.name} start again within its budgets. Taints before now no longer count toward the breaker. Paused: ${g.pausedReason ?? ''}. Recorded in the audit log with your name.`,
              confirmLabel: 'Resume',
              run: () => api(`/api/v1/replacement-groups/${encodeURIComponent(g.name)}/resume`, { method: 'POST' }),
            },
            (r) => `Group ${r.name} resumed by ${r.resumedBy}.`,
          ),
      },
      opLabel('Resume…'),
    );
  }
  return h(
    'button',
    {
      type: 'button',
      'data-test': 'pause',
      title: opTitle('Stop replacements in this group until someone resumes it'),
      onclick: () =>
        act(
          {
            title: `Pause group ${g.name}`,
            description:
              'No replacement of this group starts until it is resumed; those already with the provider finish. Recorded in the audit log.',
            fields: [{ name: 'reason', label: 'Reason', type: 'textarea', required: true }],
            confirmLabel: 'Pause',
            danger: true,
            run: (v) =>
              api(`/api/v1/replacement-groups/${encodeURIComponent(g.name)}/pause`, {
                method: 'POST',
                body: { reason: v.reason },
              }),
          },
          (r) => `Group ${r.name} paused.`,
        ),
    },
    opLabel('Pause…'),
  );
}

function groupsPanel(gr) {
  return h(
    'div',
    { class: 'panel', 'data-test': 'replacement-groups' },
    h('h2', {}, 'Groups and budgets'),
    h(
      'p',
      { class: 'muted' },
      `Scheduler mode: ${gr.mode}. Fleet-wide budget: ${gr.overall ? budgetText(gr.overall) : 'none'}. `,
      `Breaker: more than ${Math.round(gr.breaker.taintedShare * 100)}% of a group (at least ${gr.breaker.minTainted} hosts) tainted within ${gr.breaker.window}, or ${gr.breaker.sameDeviation} hosts tainted by the same deviation.`,
    ),
    h(
      'table',
      {},
      h(
        'tr',
        {},
        [
          'group',
          'mode',
          'breaker',
          'hosts',
          'unavailable',
          'in flight',
          'queue',
          'budgets in force',
          'allowed now',
          '',
        ].map((t) => h('th', {}, t)),
      ),
      gr.groups.map((g) =>
        h(
          'tr',
          { 'data-group': g.name },
          h(
            'td',
            {},
            g.name,
            g.requireApproval ? h('div', { class: 'muted' }, 'requires approval') : null,
            g.provider ? h('div', { class: 'muted' }, `provider ${g.provider}`) : null,
          ),
          h('td', {}, h('span', { class: `mode ${g.mode}` }, g.mode)),
          h('td', {}, breakerCell(g)),
          h('td', { class: 'num' }, g.hosts.total),
          h('td', { class: 'num' }, g.hosts.unavailable),
          h('td', { class: 'num' }, g.inFlight),
          h(
            'td',
            {},
            Object.entries(g.queue)
              .filter(([, n]) => n > 0)
              .map(([s, n]) => `${s} ${n}`)
              .join(', ') || '—',
          ),
          h('td', {}, g.budgets.length ? g.budgets.map((b) => h('div', {}, `"${b.group}": ${budgetText(b)}`)) : 'none'),
          h(
            'td',
            {},
            g.allowedNow === null ? 'no limit' : String(g.allowedNow),
            g.limitedBy ? h('div', { class: 'muted' }, g.limitedBy) : null,
          ),
          h('td', {}, groupActions(g)),
        ),
      ),
    ),
  );
}

function rowActions(r, requireApproval) {
  const buttons = [];
  const button = (test, label, what, o, done) =>
    buttons.push(
      h(
        'button',
        { type: 'button', 'data-test': test, title: opTitle(what), onclick: () => act(o, done) },
        opLabel(label),
      ),
    );
  if ((r.state === 'awaiting-approval' || (r.state === 'queued' && requireApproval)) && !r.approvedAt) {
    button(
      'approve',
      'Approve…',
      'Let the scheduler replace this host within budgets',
      {
        title: `Approve replacing ${r.hostname ?? r.hostId}`,
        description: `The scheduler may then replace ${r.hostId} (group ${r.group}) within the group's budgets. Recorded in the audit log.`,
        confirmLabel: 'Approve',
        run: () => api(`/api/v1/replacements/${encodeURIComponent(r.id)}/approve`, { method: 'POST' }),
      },
      (x) => `Replacement of ${x.hostId} approved by ${x.approvedBy}.`,
    );
  }
  if (!['replacing', 'replaced', 'cancelled'].includes(r.state)) {
    button(
      'cancel',
      'Cancel…',
      'Cancel before the provider acts; the host stays tainted',
      {
        title: `Cancel the replacement of ${r.hostname ?? r.hostId}`,
        description: 'The host stays tainted and is not queued again automatically. Recorded in the audit log.',
        fields: [{ name: 'reason', label: 'Reason', type: 'textarea', required: true }],
        confirmLabel: 'Cancel replacement',
        danger: true,
        run: (v) =>
          api(`/api/v1/replacements/${encodeURIComponent(r.id)}/cancel`, {
            method: 'POST',
            body: { reason: v.reason },
          }),
      },
      (x) => `Replacement of ${x.hostId} cancelled.`,
    );
  }
  if (!['replaced', 'cancelled'].includes(r.state)) {
    button(
      'done',
      'Mark done…',
      'The host was replaced out of band',
      {
        title: `Mark ${r.hostname ?? r.hostId} replaced`,
        description:
          "Say the host is gone (replaced out of band, or the provider's confirmation was lost). The host becomes replaced. Recorded in the audit log.",
        fields: [{ name: 'replacedBy', label: 'Replaced by (host id, optional)' }],
        confirmLabel: 'Mark done',
        run: (v) =>
          api(`/api/v1/replacements/${encodeURIComponent(r.id)}/done`, {
            method: 'POST',
            body: v.replacedBy ? { replacedBy: v.replacedBy } : {},
          }),
      },
      (x) => `Replacement of ${x.hostId} marked done.`,
    );
  }
  return buttons;
}

export function requestReplacement(hostId, label) {
  return act(
    {
      // From the queue page no host is chosen yet: the dialog asks for one instead of naming "null".
      title: hostId ? `Replace ${label ?? hostId}` : 'Request a replacement',
      description:
        "Queues the host for replacement. A request is not drift: a host that is not tainted stays as it is, and no breaker counts it. The scheduler replaces it within its group's budgets, approval and mode. Recorded in the audit log.",
      fields: [
        ...(hostId ? [] : [{ name: 'hostId', label: 'Host id', required: true }]),
        { name: 'reason', label: 'Reason', type: 'textarea', required: true },
      ],
      confirmLabel: 'Request replacement',
      danger: true,
      run: (v) =>
        api('/api/v1/replacements', { method: 'POST', body: { hostId: hostId ?? v.hostId, reason: v.reason } }),
    },
    (x) => `Replacement of ${x.hostId} requested (${x.state}).`,
  );
}

function queueTable(list, groupsByName) {
  return h(
    'table',
    { 'data-test': 'replacements-table' },
    h(
      'tr',
      {},
      ['host', 'group', 'state', 'decision', 'attempts', 'last error', 'provider', 'replaced by', 'requested', ''].map(
        (t) => h('th', {}, t),
      ),
    ),
    list.map((r) =>
      h(
        'tr',
        { 'data-host': r.hostId, 'data-state': r.state },
        h(
          'td',
          {},
          hostLink(r.hostId, r.hostname ?? r.hostId),
          r.hostname ? h('div', { class: 'muted mono' }, r.hostId) : null,
        ),
        h('td', {}, r.group),
        h('td', {}, stateBadge(r.state), r.severity ? h('div', { class: 'muted' }, r.severity) : null),
        h(
          'td',
          {},
          r.decision
            ? h('b', { class: `decision ${r.decision}` }, r.decision === 'would-replace' ? 'would replace' : r.decision)
            : null,
          r.decisionReason ? h('div', { class: 'muted' }, r.decisionReason) : null,
        ),
        h('td', { class: 'num' }, r.attempts),
        h('td', { class: r.lastError ? 'error' : '' }, r.lastError ?? ''),
        h('td', {}, r.provider ?? '', r.providerRef ? h('div', { class: 'mono' }, r.providerRef) : null),
        h(
          'td',
          {},
          r.replacedBy
            ? [
                hostLink(r.replacedBy, r.replacedByHostname ?? r.replacedBy),
                r.replacedByHostname ? h('div', { class: 'muted mono' }, r.replacedBy) : null,
              ]
            : '',
        ),
        h('td', {}, r.requestedBy, h('div', { class: 'muted' }, `${r.reason}, ${when(r.createdAt)}`)),
        h('td', {}, rowActions(r, groupsByName.get(r.group)?.requireApproval)),
      ),
    ),
  );
}

registerPage('replacements', {
  title: 'Replacements',
  nav: true,
  async render(main, { params }) {
    const states = params.get('state') || ACTIVE.join(',');
    const query = new URLSearchParams({ state: states, limit: String(LIMIT) });
    for (const k of ['group', 'after']) if (params.get(k)) query.set(k, params.get(k));
    const [gr, page] = await Promise.all([api('/api/v1/replacement-groups'), api(`/api/v1/replacements?${query}`)]);
    const groupsByName = new Map(gr.groups.map((g) => [g.name, g]));
    const trail = params.get('trail') ? params.get('trail').split(',') : [];

    const form = h(
      'form',
      { class: 'filters', 'data-test': 'replacement-filters' },
      h(
        'label',
        {},
        'state',
        h(
          'select',
          { name: 'state' },
          [[ACTIVE.join(','), 'active (the queue)'], [ALL.join(','), 'all'], ...ALL.map((s) => [s, s])].map(([v, l]) =>
            h('option', { value: v, selected: states === v }, l),
          ),
        ),
      ),
      h(
        'label',
        {},
        'group',
        h(
          'select',
          { name: 'group' },
          h('option', { value: '' }, 'any'),
          gr.groups.map((g) => h('option', { value: g.name, selected: params.get('group') === g.name }, g.name)),
        ),
      ),
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h(
        'button',
        {
          type: 'button',
          'data-test': 'request',
          title: opTitle('Queue a host for replacement'),
          onclick: () => requestReplacement(null),
        },
        opLabel('Request a replacement…'),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) p.set(k, String(v));
      go('replacements', null, p);
    });
    const move = (after, newTrail) => {
      const p = new URLSearchParams();
      for (const k of ['state', 'group']) if (params.get(k)) p.set(k, params.get(k));
      if (after) p.set('after', after);
      if (newTrail.length) p.set('trail', newTrail.join(','));
      go('replacements', null, p);
    };
    const pageNo = trail.length + 1;
    fill(
      main,
      h('h1', {}, 'Replacements'),
      gr.mode === 'dry-run'
        ? h(
            'p',
            { class: 'notice' },
            'The scheduler is in dry-run: "would replace" is what enforce would do now; no host is touched.',
          )
        : null,
      groupsPanel(gr),
      h('h2', {}, 'Queue'),
      form,
      h(
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
        h('span', { 'data-test': 'replacement-page' }, `Page ${pageNo} · most severe, longest tainted first`),
        h(
          'button',
          {
            type: 'button',
            disabled: !page.next,
            onclick: () => move(page.next, [...trail, params.get('after') ?? '']),
          },
          'Next ›',
        ),
      ),
      queueTable(page.replacements, groupsByName),
      page.replacements.length === 0 ? h('p', { class: 'muted' }, 'Nothing here.') : null,
    );
  },
});

// ---- the overview's groups: mode and breaker, from one request per render ----

let groupsLoad = null;
function loadGroups() {
  if (!groupsLoad) {
    groupsLoad = api('/api/v1/replacement-groups').catch(() => null);
    setTimeout(() => (groupsLoad = null), 0);
  }
  return groupsLoad;
}
const groupOf = (g, gr) => gr?.groups.find((x) => x.name === (g.group ?? gr.defaultGroup));
groupColumns.push([
  'mode',
  (g, gr) => (groupOf(g, gr) ? h('span', { class: `mode ${groupOf(g, gr).mode}` }, groupOf(g, gr).mode) : '—'),
  loadGroups,
]);
groupColumns.push(['breaker', (g, gr) => breakerCell(groupOf(g, gr)), loadGroups]);

// ---- the host page: this host's replacement, and asking for one ----

hostSections.push((host) => {
  const box = h('div', { 'data-test': 'host-replacement' }, h('p', { class: 'muted' }, 'Loading the replacement…'));
  api(`/api/v1/replacements?${new URLSearchParams({ host: host.id, state: ALL.join(','), limit: '20' })}`)
    .then(({ replacements }) => {
      const current = replacements.find((r) => ACTIVE.includes(r.state));
      const steps = ['queued', 'scheduled', 'replacing', 'replaced'];
      fill(
        box,
        current
          ? [
              h(
                'ol',
                { class: 'progress', 'data-test': 'replacement-progress' },
                steps.map((s) =>
                  h(
                    'li',
                    {
                      class:
                        s === current.state || (s === 'queued' && current.state === 'awaiting-approval')
                          ? 'current'
                          : steps.indexOf(s) < steps.indexOf(current.state)
                            ? 'past'
                            : '',
                    },
                    s,
                  ),
                ),
              ),
              h(
                'p',
                {},
                stateBadge(current.state),
                ' ',
                current.decisionReason ?? '',
                current.lastError ? h('span', { class: 'error' }, ` last error: ${current.lastError}`) : null,
                ` · attempts ${current.attempts}`,
                current.providerRef ? ` · ${current.provider}: ${current.providerRef}` : '',
              ),
            ]
          : host.state === 'replaced'
            ? null
            : h('p', { class: 'muted' }, 'No replacement is queued for this host.'),
        replacements
          .filter((r) => r !== current)
          .map((r) =>
            h(
              'p',
              { class: 'muted' },
              `Earlier: ${r.state} ${when(r.finishedAt ?? r.updatedAt)}${r.replacedBy ? `, replaced by ${r.replacedBy}` : ''}${r.decisionReason ? ` (${r.decisionReason})` : ''}`,
            ),
          ),
        h(
          'p',
          {},
          h('a', { href: `#/replacements?${new URLSearchParams({ state: ALL.join(',') })}` }, 'The replacement queue'),
        ),
        !current && host.state !== 'replaced'
          ? h(
              'button',
              {
                type: 'button',
                'data-test': 'request-host',
                title: opTitle('Queue this host for replacement'),
                onclick: () => requestReplacement(host.id, host.hostname ?? host.id),
              },
              opLabel('Request replacement…'),
            )
          : null,
      );
    })
    .catch((err) => fill(box, h('p', { class: 'error' }, `Could not load the replacement: ${err.message}`)));
  return box;
});
