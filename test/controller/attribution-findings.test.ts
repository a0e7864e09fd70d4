/**
 * @module Attribution carried through the controller (who or what made a change, as the agent found it
 * in the host's dpkg/apt/dnf or auth log): stored with the deviation, returned by the host and findings
 * API, written into the JSON/CSV/HTML drift reports and the OCSF feed; and the findings API's search
 * (`q`) and sort. On SQLite and PostgreSQL.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../../controller/drift-report.js';
import { openStore } from '../../controller/store/index.js';
import type { Store } from '../../controller/store/types.js';
import type { Attribution } from '../../shared/schema/deviation.js';
import { pgStores, requirePostgres, SKIP_PG } from '../helpers/postgres.js';
import { Harness, HOUR, type HostSim } from './harness.js';

await requirePostgres();
const pgOpen = pgStores('dw_attr');

const STORES: { name: string; open: () => Promise<Store>; skip: boolean }[] = [
  { name: 'sqlite', open: () => openStore('sqlite::memory:'), skip: false },
  { name: 'postgres', open: pgOpen, skip: SKIP_PG },
];

const UPGRADE: Attribution = {
  source: 'apt-history',
  at: '2024-03-01T00:47:16+00:00',
  action: 'upgrade',
  package: 'openssl',
  fromVersion: '3.0.11-1',
  toVersion: '3.0.13-1',
  commandLine: 'apt-get install --only-upgrade openssl',
  user: 'alice (1000)',
};
const SENTENCE =
  'upgraded by "apt-get install --only-upgrade openssl", run by alice (1000) at 2024-03-01 00:47:16 +00:00 (apt history)';

/** A scan whose openssl deviation carries the record the agent found. */
function attributedScan(sim: HostSim, a: Attribution = UPGRADE) {
  return sim.scan({
    deviations: sim.deviations().map((d) => (d.key === 'openssl:amd64' ? { ...d, attribution: a } : d)),
  });
}

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
for (const { name, open, skip } of STORES)
  describe.skipIf(skip)(`attribution and findings search on ${name}`, () => {
    let h: Harness;
    let sims: HostSim[];
    beforeEach(async () => {
      h = await Harness.start(await open());
      sims = [];
      for (const id of ['web-01', 'web-02', 'web-03', 'db-01'])
        sims.push(await h.enroll(id, { group: id.startsWith('db') ? 'db' : 'web' }));
      for (const s of sims) await s.scan();
      h.clock.advance(HOUR);
    });
    afterEach(async () => {
      await h.close();
    });

    it('the host API returns the attribution with the deviation, and a later scan without one clears it', async () => {
      expect((await attributedScan(sims[0]!.upgrade('openssl', '3.0.13-1'))).body.state).toBe('tainted');
      const detail = (await h.get('/api/v1/hosts/web-01')).body;
      expect(detail.deviations).toHaveLength(1);
      expect(detail.deviations[0]).toMatchObject({ key: 'openssl:amd64', attribution: UPGRADE });
      h.clock.advance(HOUR);
      await sims[0]!.scan(); // the log rotated away: no record this time
      expect((await h.get('/api/v1/hosts/web-01')).body.deviations[0].attribution).toBeNull();
    });

    it("findings carry one host's record and how many have one; the finding's hosts each carry their own", async () => {
      await attributedScan(sims[0]!.upgrade('openssl', '3.0.13-1'));
      await attributedScan(sims[1]!.upgrade('openssl', '3.0.13-1'), { ...UPGRADE, user: 'bob (1001)' });
      await sims[2]!.upgrade('openssl', '3.0.13-1').scan();
      const [f] = (await h.get('/api/v1/findings')).body.findings;
      expect(f).toMatchObject({ key: 'openssl:amd64', hosts: 3, attributedHosts: 2 });
      expect(f.attribution.commandLine).toBe(UPGRADE.commandLine);
      const hosts = (
        await h.get(
          `/api/v1/findings/hosts?${new URLSearchParams({ collector: f.collector, key: f.key, change: f.change, actualDigest: f.actualDigest })}`,
        )
      ).body.hosts;
      expect(
        hosts.map((x: { hostId: string; attribution: Attribution | null }) => [x.hostId, x.attribution?.user ?? null]),
      ).toEqual([
        ['web-01', 'alice (1000)'],
        ['web-02', 'bob (1001)'],
        ['web-03', null],
      ]);
    });

    it('the JSON, CSV and HTML drift reports say who made the change', async () => {
      await attributedScan(sims[0]!.upgrade('openssl', '3.0.13-1'));
      await sims[3]!.write('/home/alice/notes', 'x').scan();
      const json = (await h.get('/api/v1/drift-report?scope=fleet&format=json')).body;
      expect(json.deviations.find((d: { hostId: string }) => d.hostId === 'web-01').attribution).toEqual(UPGRADE);
      expect(json.deviations.find((d: { hostId: string }) => d.hostId === 'db-01').attribution).toBeNull();
      expect(json.findings.find((x: { key: string }) => x.key === 'openssl:amd64').attribution).toEqual(UPGRADE);
      const csv = (await h.get('/api/v1/drift-report?scope=fleet&format=csv')).text.split('\r\n');
      expect(CSV_COLUMNS.at(-1)).toBe('attribution');
      expect(csv[0]!.endsWith(',attribution')).toBe(true);
      const web = csv.find((l) => l.startsWith('web-01,'));
      expect(web).toContain(`"${SENTENCE.replaceAll('"', '""')}"`);
      expect(csv.find((l) => l.startsWith('db-01,'))!.endsWith(',')).toBe(true); // no record: an empty cell
      const html = (await h.get('/api/v1/drift-report?scope=host&id=web-01&format=html')).text;
      expect(html).toContain('<th>made by</th>');
      expect(html).toContain(SENTENCE.replaceAll('"', '&quot;'));
      const jsonl = (await h.get('/api/v1/drift-report?scope=host&id=web-01&format=jsonl')).text;
      expect(JSON.parse(jsonl.trim()).attribution).toEqual(UPGRADE);
    });

    it('the OCSF feed names the user and command as the actor of the change', async () => {
      await attributedScan(sims[0]!.upgrade('openssl', '3.0.13-1'));
      await sims[1]!.upgrade('openssl', '3.0.13-1').scan();
      const events = (await h.get('/api/v1/events?since=0&limit=5000')).text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((e) => e.unmapped?.key === 'openssl:amd64');
      expect(events).toHaveLength(2);
      const [attributed, plain] = events;
      expect(attributed.actor).toMatchObject({
        user: { name: 'alice', uid: '1000' },
        process: { cmd_line: UPGRADE.commandLine },
      });
      expect(attributed.unmapped.attribution).toEqual(UPGRADE);
      expect(attributed.message).toContain(SENTENCE);
      expect(plain.actor).toBeUndefined();
      expect(plain.unmapped.attribution).toBeUndefined();
    });

    describe('findings search and sort', () => {
      beforeEach(async () => {
        await sims[0]!.upgrade('openssl', '3.0.13-1').scan();
        await sims[1]!.upgrade('openssl', '3.0.13-1').scan();
        h.clock.advance(HOUR);
        await sims[3]!.write('/home/alice/Report_100%.txt', 'x').scan();
      });
      const keys = async (q: string) =>
        (await h.get(`/api/v1/findings?${q}`)).body.findings.map((f: { key: string }) => f.key);

      it('q matches a substring of the path, the collector or the hostname, case-insensitively', async () => {
        expect(await keys('q=OPENSSL')).toEqual(['openssl:amd64']);
        expect(await keys('q=report_100%25')).toEqual(['/home/alice/Report_100%.txt']);
        expect(await keys('q=_1')).toEqual(['/home/alice/Report_100%.txt']); // _ is not a wildcard
        expect(await keys('q=files')).toEqual(['/home/alice/Report_100%.txt']);
        expect(await keys('q=db-01.example')).toEqual(['/home/alice/Report_100%.txt']);
        expect(await keys('q=nothing-like-it')).toEqual([]);
      });

      it('filters by host, host state and policy action', async () => {
        expect(await keys('host=db-01')).toEqual(['/home/alice/Report_100%.txt']);
        expect(await keys('state=tainted')).toEqual(['openssl:amd64']);
        expect(await keys('action=report')).toEqual(['/home/alice/Report_100%.txt']);
      });

      it('sorts by severity, first seen, hosts or key; a leading - is descending', async () => {
        expect(await keys('sort=-severity')).toEqual(['openssl:amd64', '/home/alice/Report_100%.txt']);
        expect(await keys('sort=severity')).toEqual(['/home/alice/Report_100%.txt', 'openssl:amd64']);
        expect(await keys('sort=-firstSeen')).toEqual(['/home/alice/Report_100%.txt', 'openssl:amd64']);
        expect(await keys('sort=firstSeen')).toEqual(['openssl:amd64', '/home/alice/Report_100%.txt']);
        expect(await keys('sort=hosts')).toEqual(['/home/alice/Report_100%.txt', 'openssl:amd64']);
        expect(await keys('sort=-key')).toEqual(['openssl:amd64', '/home/alice/Report_100%.txt']);
      });

      it('an unknown sort or an empty q is a 400 that names the parameter', async () => {
        const bad = await h.get('/api/v1/findings?sort=colour');
        expect(bad.status).toBe(400);
        expect(bad.body.message).toMatch(/sort/);
        expect((await h.get('/api/v1/findings?q=')).status).toBe(400);
        expect((await h.get('/api/v1/findings?state=asleep')).status).toBe(400);
      });
    });
  });
