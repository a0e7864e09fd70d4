// Exemptions in force, and revoking one (operator; confirmed and audited).
import { api, can, confirmAction, flash, h, registerPage, route, when, fill } from './core.js';

registerPage('exemptions', {
  title: 'Exemptions',
  nav: true,
  async render(main) {
    const r = await api('/api/v1/exemptions?active=true');
    fill(
      main,
      h('h1', {}, 'Active exemptions'),
      h(
        'table',
        { 'data-test': 'exemptions-table' },
        h(
          'tr',
          {},
          ['scope', 'collector', 'key', 'reason', 'by', 'expires', ''].map((t) => h('th', {}, t)),
        ),
        r.exemptions.map((x) =>
          h(
            'tr',
            {},
            h('td', {}, x.hostId ? `host ${x.hostId}` : x.imageId ? `image ${x.imageId}` : 'all'),
            h('td', {}, x.collector ?? 'any'),
            h('td', { class: 'mono' }, x.keyPattern),
            h('td', {}, x.reason),
            h('td', {}, x.actor),
            h('td', {}, when(x.expiresAt)),
            h(
              'td',
              {},
              h(
                'button',
                {
                  type: 'button',
                  disabled: !can('operator'),
                  onclick: async () => {
                    const done = await confirmAction({
                      title: 'Revoke exemption',
                      description: `The policy acts on ${x.keyPattern} again from the next report.`,
                      confirmLabel: 'Revoke',
                      danger: true,
                      run: () => api(`/api/v1/exemptions/${encodeURIComponent(x.id)}`, { method: 'DELETE' }),
                    });
                    if (done) {
                      await route();
                      flash(`Exemption ${x.id} revoked.`);
                    }
                  },
                },
                'Revoke…',
              ),
            ),
          ),
        ),
      ),
      r.exemptions.length === 0 ? h('p', { class: 'muted' }, 'None.') : null,
    );
  },
});
