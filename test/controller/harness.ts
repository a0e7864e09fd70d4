/**
 * @module A controller under test: the real app (driven with app.inject(), no port) on a real store,
 * a fake clock, a bake key the controller trusts, signed manifests built in-process from small item
 * lists, and simulated hosts whose reports are computed the way the agent computes them (diffSection
 * and sectionDigests over the host's actual sections).
 */
import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { pino } from 'pino';
import { buildApp, type App } from '../../controller/app.js';
import { ControllerConfigSchema, type ControllerConfig } from '../../controller/config.js';
import { createMetrics } from '../../controller/metrics.js';
import { defaultPolicy, type Policy } from '../../controller/policy.js';
import { createToken } from '../../controller/routes/tokens.js';
import type { HostRow, Role, Store } from '../../controller/store/types.js';
import { sha256Hex } from '../../shared/canonical.js';
import { diffSection } from '../../shared/diff.js';
import { sealManifest, sectionDigests } from '../../shared/manifest.js';
import type { CollectorName } from '../../shared/schema/common.js';
import type { Deviation } from '../../shared/schema/deviation.js';
import type { AnyItem, FileItem, PackageItem, SysctlItem } from '../../shared/schema/items.js';
import { MANIFEST_SCHEMA_ID, type Manifest, type Sections } from '../../shared/schema/manifest.js';
import { REPORT_SCHEMA_ID, type Report } from '../../shared/schema/report.js';
import { defaultRules } from '../../shared/schema/rules.js';
import { generateKeyPair } from '../../shared/sign.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
export const T0 = Date.parse('2026-03-02T08:00:00.000Z');

/** Time stands still until a test moves it. */
export class FakeClock {
  private t: number;
  constructor(start = T0) {
    this.t = start;
  }
  readonly now = (): Date => new Date(this.t);
  iso(): string {
    return new Date(this.t).toISOString();
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export const silentLog = pino({ level: 'silent' });

// ---------------------------------------------------------------------------------------------
// Images and their manifests
// ---------------------------------------------------------------------------------------------

export function pkg(name: string, version: string, arch = 'amd64'): PackageItem {
  return { key: `${name}:${arch}`, manager: 'dpkg', name, arch, version, state: 'installed' };
}

export function file(path: string, content: string, mode = '0644'): FileItem {
  return {
    key: path,
    type: 'file',
    mode,
    uid: 0,
    gid: 0,
    size: Buffer.byteLength(content),
    sha256: sha256Hex(content),
  };
}

export function sysctlItem(key: string, value: string): SysctlItem {
  return { key, runtime: value, declared: null, declaredIn: null };
}

const byKey = <T extends { key: string }>(items: T[]): T[] =>
  [...items].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

/** What a small web image contains: a few packages, kernel parameters and files. */
export function imageSections(): Sections {
  return {
    packages: { items: byKey([pkg('curl', '7.88.1-10'), pkg('nginx', '1.22.1-9'), pkg('openssl', '3.0.11-1')]) },
    sysctl: { items: byKey([sysctlItem('net.ipv4.ip_forward', '0'), sysctlItem('vm.swappiness', '10')]) },
    files: {
      items: byKey([
        file('/etc/nginx/nginx.conf', 'worker_processes auto;\n'),
        file('/etc/ssh/sshd_config', 'PermitRootLogin no\n'),
        file('/home/alice/.profile', 'export EDITOR=vi\n'),
        file('/usr/sbin/nginx', 'ELF nginx\n', '0755'),
      ]),
    },
  };
}

/** A sealed manifest for `imageId`, signed when a key is given. */
export function bakeManifest(
  imageId: string,
  signKey: KeyObject | undefined,
  sections: Sections = imageSections(),
  extra: { version?: string; cloudImageId?: string } = {},
): Manifest {
  return sealManifest(
    {
      schema: MANIFEST_SCHEMA_ID,
      image: {
        id: imageId,
        name: 'web',
        version: extra.version ?? '2026.03.1',
        source: 'packer/web.pkr.hcl',
        ...(extra.cloudImageId ? { cloudImageId: extra.cloudImageId } : {}),
      },
      os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
      createdAt: '2026-03-01T12:00:00.000Z',
      builder: { agentVersion: '0.1.0', hostname: 'bake-1' },
      rules: defaultRules(),
      sections,
    },
    signKey,
  );
}

export interface BakeKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicKeyPem: string;
  keyId: string;
}

export function bakeKey(): BakeKey {
  const pair = generateKeyPair();
  return {
    privateKey: createPrivateKey(pair.privateKeyPem),
    publicKey: createPublicKey(pair.publicKeyPem),
    publicKeyPem: pair.publicKeyPem,
    keyId: pair.keyId,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

export interface Res<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Record<string, unknown>;
}

export interface ReqOptions {
  token?: string | null;
  body?: unknown;
  /** Sent as is (for malformed bodies); wins over `body`. */
  payload?: string | Buffer;
  headers?: Record<string, string>;
  /** The client's address as the controller sees it (app.inject's default is 127.0.0.1). */
  remoteAddress?: string;
}

export async function inject(app: App, method: string, url: string, o: ReqOptions = {}): Promise<Res> {
  const headers: Record<string, string> = { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...o.headers };
  let payload: string | Buffer | undefined;
  if (o.payload !== undefined) payload = o.payload;
  else if (o.body !== undefined) payload = JSON.stringify(o.body);
  if (payload !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type'))
    headers['content-type'] = 'application/json';
  const r = await app.inject({
    method: method as 'GET',
    url,
    headers,
    ...(payload !== undefined ? { payload } : {}),
    ...(o.remoteAddress ? { remoteAddress: o.remoteAddress } : {}),
  });
  let body: unknown = r.body;
  try {
    body = JSON.parse(r.body);
  } catch {
    // not JSON (metrics text)
  }
  return { status: r.statusCode, body, text: r.body, headers: r.headers };
}

// ---------------------------------------------------------------------------------------------
// The controller under test
// ---------------------------------------------------------------------------------------------

export interface HarnessOptions {
  config?: Record<string, unknown>;
  policy?: Policy;
  /** Keys the controller trusts (default: the harness's own bake key). */
  trustedKeys?: KeyObject[];
  /** Publish the default image `ami-web-1` (default true). */
  publish?: boolean;
}

export const IMAGE = 'ami-web-1';

/**
 * The harness sends every request from one address (app.inject's 127.0.0.1), and the route tables
 * make hundreds of refused attempts on purpose: out of the rate limits' way unless a test sets
 * `rateLimit` itself (test/controller/rate-limit.test.ts does).
 */
const UNLIMITED = { rateLimit: { failedAuth: { max: 1_000_000, per: '1s' }, enroll: { max: 1_000_000, per: '1s' } } };

export class Harness {
  readonly clock = new FakeClock();
  readonly key = bakeKey();
  app!: App;
  config!: ControllerConfig;
  policy!: Policy;
  /** Secrets of one token per role (name = role). */
  readonly tokens = {} as Record<Role, string>;
  readonly tokenIds = {} as Record<Role, string>;
  /** The default image's manifest, published unless `publish: false`. */
  manifest!: Manifest;
  readonly hosts = new Map<string, HostSim>();

  constructor(readonly store: Store) {}

  static async start(store: Store, o: HarnessOptions = {}): Promise<Harness> {
    const h = new Harness(store);
    h.config = ControllerConfigSchema.parse({ store: 'sqlite::memory:', ...UNLIMITED, ...o.config });
    h.policy = o.policy ?? defaultPolicy();
    h.app = await h.buildApp({ trustedKeys: o.trustedKeys });
    // As `driftwarden token create` makes them: written to the store directly, by `cli:root`.
    await store.transaction(async (tx) => {
      for (const role of ['admin', 'agent', 'viewer', 'operator'] as const) {
        // The agent token enrolls the whole simulated fleet, like an image-baked token.
        const made = await createToken(
          tx,
          role === 'agent' ? { name: role, role, maxUses: 'unlimited', expiresIn: 'never' } : { name: role, role },
          'cli:root',
          h.clock.now(),
        );
        h.tokens[role] = made.secret;
        h.tokenIds[role] = made.token.id;
      }
    });
    h.manifest = bakeManifest(IMAGE, h.key.privateKey);
    if (o.publish !== false) {
      const r = await h.publish(h.manifest);
      if (r.status !== 201) throw new Error(`publishing the manifest: ${r.status} ${r.text}`);
    }
    return h;
  }

  /** Another app on the same store and clock (a restart, or a different config). */
  async buildApp(
    o: { trustedKeys?: KeyObject[]; config?: Record<string, unknown>; policy?: Policy } = {},
  ): Promise<App> {
    const config = o.config
      ? ControllerConfigSchema.parse({ store: 'sqlite::memory:', ...UNLIMITED, ...o.config })
      : this.config;
    return buildApp({
      store: this.store,
      config,
      policy: o.policy ?? this.policy,
      trustedKeys: o.trustedKeys ?? [this.key.publicKey],
      log: silentLog,
      metrics: createMetrics(),
      clock: this.clock.now,
    });
  }

  /** How the audit log and the timeline name what a role's token did. */
  actor(role: Role): string {
    return `token:${this.tokenIds[role]}(${role})`;
  }

  req(method: string, url: string, o: ReqOptions = {}): Promise<Res> {
    return inject(this.app, method, url, o);
  }

  get(url: string, token: string | null = this.tokens.viewer): Promise<Res> {
    return this.req('GET', url, { token });
  }

  publish(manifest: unknown, o: { token?: string; signature?: unknown; app?: App } = {}): Promise<Res> {
    return inject(o.app ?? this.app, 'POST', '/api/v1/manifests', {
      token: o.token ?? this.tokens.operator,
      body: { manifest, ...(o.signature ? { signature: o.signature } : {}) },
    });
  }

  async enroll(id: string, o: { imageId?: string; group?: string; manifest?: Manifest } = {}): Promise<HostSim> {
    const imageId = o.imageId ?? IMAGE;
    const r = await this.req('POST', '/api/v1/enroll', {
      token: this.tokens.agent,
      body: {
        hostId: id,
        hostname: `${id}.example.internal`,
        imageId,
        ...(o.group ? { group: o.group } : {}),
        agentVersion: '0.1.0',
      },
    });
    if (r.status !== 201) throw new Error(`enrolling ${id}: ${r.status} ${r.text}`);
    const sim = new HostSim(this, id, r.body.credential, imageId, o.manifest ?? this.manifest);
    this.hosts.set(id, sim);
    return sim;
  }

  async host(id: string): Promise<HostRow> {
    const row = await this.store.getHost(id);
    if (!row) throw new Error(`no host ${id}`);
    return row;
  }

  /** Everything a refused request must leave alone. */
  async snapshot(): Promise<unknown> {
    const { hosts } = await this.store.listHosts({ limit: 1000 });
    const out: Record<string, unknown> = {};
    for (const host of hosts) {
      out[host.id] = {
        host,
        reports: await this.store.listReports(host.id, { limit: 1000 }),
        deviations: await this.store.listHostDeviations(host.id),
        transitions: await this.store.listTransitions(host.id),
      };
    }
    return {
      hosts: out,
      audit: await this.store.listAudit({ limit: 1000 }),
      exemptions: await this.store.listExemptions({}),
      manifests: await this.store.listManifests(),
    };
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// A host and its agent
// ---------------------------------------------------------------------------------------------

export interface ReportOptions {
  kind?: Report['kind'];
  seq?: number;
  reportId?: string;
  hostId?: string;
  imageId?: string;
  manifestDigest?: string;
  /** Drop deviations before sending (a tampered agent filtering what it reports). */
  filter?: (d: Deviation) => boolean;
  deviations?: Deviation[];
}

/**
 * A host built from an image: `actual` starts as the manifest's sections, tests change it the way
 * people change servers, and `report()` computes what an honest agent would send.
 */
export class HostSim {
  seq = 0;
  actual: Sections;

  constructor(
    readonly h: Harness,
    readonly id: string,
    readonly credential: string,
    readonly imageId: string,
    readonly manifest: Manifest,
  ) {
    this.actual = structuredClone(manifest.sections);
  }

  private items<C extends CollectorName>(c: C): AnyItem[] {
    const s = (this.actual[c] ??= { items: [] } as never) as { items: AnyItem[] };
    return s.items;
  }

  private put(c: CollectorName, item: AnyItem): this {
    const rest = this.items(c).filter((i) => i.key !== item.key);
    (this.actual[c] as { items: AnyItem[] }).items = byKey([...rest, item]);
    return this;
  }

  /** `apt-get install --only-upgrade`: a package change, which the default policy taints on. */
  upgrade(name: string, version: string): this {
    const old = this.items('packages').find((i) => i.key === `${name}:amd64`) as PackageItem | undefined;
    return this.put('packages', { ...(old ?? pkg(name, version)), version });
  }

  /** A file written on the host (under /home the default policy only reports it). */
  write(path: string, content: string, mode = '0644'): this {
    return this.put('files', file(path, content, mode));
  }

  remove(path: string): this {
    (this.actual.files as { items: AnyItem[] }).items = this.items('files').filter((i) => i.key !== path);
    return this;
  }

  /** Undo every change: the host matches its image again. */
  revert(): this {
    this.actual = structuredClone(this.manifest.sections);
    return this;
  }

  deviations(): Deviation[] {
    const out: Deviation[] = [];
    for (const name of Object.keys(this.manifest.sections) as CollectorName[]) {
      out.push(
        ...diffSection(
          name,
          (this.manifest.sections[name]?.items ?? []) as AnyItem[],
          (this.actual[name]?.items ?? []) as AnyItem[],
        ),
      );
    }
    return out;
  }

  /** The address this host sends from (default: app.inject's 127.0.0.1). */
  from: string | undefined;

  /** The report an honest agent sends for the host as it is now (seq is taken only when sent). */
  report(o: ReportOptions = {}): Report {
    const kind = o.kind ?? 'scan';
    let deviations = kind === 'heartbeat' ? [] : (o.deviations ?? this.deviations());
    if (o.filter) deviations = deviations.filter(o.filter);
    return {
      schema: REPORT_SCHEMA_ID,
      kind,
      reportId: o.reportId ?? randomUUID(),
      hostId: o.hostId ?? this.id,
      imageId: o.imageId ?? this.imageId,
      manifestDigest: o.manifestDigest ?? this.manifest.digests.overall,
      agentVersion: '0.1.0',
      seq: o.seq ?? this.seq + 1,
      scannedAt: this.h.clock.iso(),
      digests: sectionDigests(this.actual),
      collectors: (Object.keys(this.actual) as CollectorName[]).map((c) => ({
        collector: c,
        ok: true,
        durationMs: 3,
        items: this.items(c).length,
      })),
      deviations,
    };
  }

  /** POST a report with this host's credential; an accepted one advances the agent's seq. */
  async send(report: Report | ReportOptions = {}, credential = this.credential): Promise<Res> {
    const r = 'schema' in report ? report : this.report(report);
    const res = await this.h.req('POST', '/api/v1/reports', {
      token: credential,
      body: r,
      ...(this.from ? { remoteAddress: this.from } : {}),
    });
    if (res.status === 200 && res.body.status === 'accepted') this.seq = Math.max(this.seq, r.seq);
    return res;
  }

  async scan(o: ReportOptions = {}): Promise<Res> {
    return this.send({ ...o, kind: 'scan' });
  }

  async row(): Promise<HostRow> {
    return this.h.host(this.id);
  }
}
