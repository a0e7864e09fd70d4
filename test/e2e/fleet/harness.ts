/**
 * @module A simulated fleet for fault tests: controllers as real child processes (`driftwarden
 * controller --config FILE`, so they can be SIGKILLed) on SQLite or PostgreSQL, and many hosts, each
 * a real agent process (`driftwarden agent`) with its own root (the web fixture with its own
 * machine-id and hostname), its own state directory, and a path to the controller that a test can cut:
 * a network namespace of its own where the machine allows it (see netns.ts), else a fault-injecting
 * TCP proxy on loopback (proxy.ts).
 *
 * verifyHost() is the invariant every fault test ends with: nothing the controller acknowledged was
 * lost, nothing was stored twice or out of order, and the host's row, deviations and transitions agree.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { BIN, dwAsync, spooledReports, until, type SpooledReport } from '../../helpers/agent-host.js';
import { copyFixture, FIXTURES, tempDir } from '../../helpers/tmp.js';
import type { NetHost, NetLab } from './netns.js';
import { FaultProxy } from './proxy.js';
import { freePort } from './pg-cluster.js';

const children = new Set<ChildProcess>();

/** SIGKILL every process this harness started that still runs, and wait for them. */
export async function killFleet(): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
  children.clear();
}

function track(
  child: ChildProcess,
  sink: (s: string) => void,
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void,
): void {
  children.add(child);
  child.stdout!.on('data', (b: Buffer) => sink(b.toString()));
  child.stderr!.on('data', (b: Buffer) => sink(b.toString()));
  child.on('exit', (code, signal) => {
    children.delete(child);
    onExit(code, signal);
  });
}

function waitExit(
  child: ChildProcess,
  timeoutMs: number,
  what: () => string,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what()} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

export type StoreSpec = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string; schema: string };

export function pgStoreUrl(url: string, schema: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`;
}

export interface ControllerOptions {
  store: StoreSpec;
  trustedKey: string;
  /** Address to listen on (127.0.0.1, or the bridge address for namespaced hosts). */
  host?: string;
  silentAfter?: string;
  /** Passed through as the config's `scheduler` key (mode, budgets, breaker, provider). */
  scheduler?: Record<string, unknown>;
  /** Any other controller.yaml keys. */
  extra?: Record<string, unknown>;
}

/** A controller process; stop/kill and start again keep its config, store and port. */
export class FleetController {
  readonly dir = tempDir('dw-fleet-ctl-');
  readonly configFile = join(this.dir, 'controller.yaml');
  proc: ChildProcess | null = null;
  log = '';
  port = 0;
  exits: { code: number | null; signal: NodeJS.Signals | null }[] = [];

  constructor(readonly opts: ControllerOptions) {}

  get url(): string {
    return `http://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  get storeUrl(): string {
    const s = this.opts.store;
    return s.kind === 'sqlite' ? `sqlite:${s.file}` : pgStoreUrl(s.url, s.schema);
  }

  private writeConfig(): void {
    const o = this.opts;
    writeFileSync(
      this.configFile,
      stringify({
        listen: `${o.host ?? '127.0.0.1'}:${this.port}`,
        store: this.storeUrl,
        trustedKeys: [o.trustedKey],
        silentAfter: o.silentAfter ?? '1h',
        taintSilentAfter: '48h',
        // The whole fleet enrolls from 127.0.0.1 at once, like hosts behind one NAT: room for all of it.
        rateLimit: { enroll: { max: 1000, per: '1m' } },
        ...(o.scheduler ? { scheduler: o.scheduler } : {}),
        ...o.extra,
      }),
    );
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    this.writeConfig();
    const from = this.log.length;
    const child = spawn(process.execPath, [BIN, 'controller', '--config', this.configFile], {
      env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(
      child,
      (s) => (this.log += s),
      (code, signal) => this.exits.push({ code, signal }),
    );
    this.proc = child;
    await until(
      () => {
        if (child.exitCode !== null) throw new Error(`controller exited ${child.exitCode}: ${this.log.slice(from)}`);
        return this.log.slice(from).includes('"msg":"controller listening"');
      },
      () => `controller listening\n${this.log.slice(from, from + 3000)}`,
      30_000,
    );
  }

  get alive(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGKILL: no shutdown, no flush; whatever was in flight is cut. */
  async kill(): Promise<void> {
    const child = this.proc!;
    child.kill('SIGKILL');
    await waitExit(child, 10_000, () => 'controller');
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.proc!.kill('SIGTERM');
    await waitExit(this.proc!, 15_000, () => 'controller');
  }

  /** `driftwarden token create`, the real command, writing to the store. */
  async token(role: 'admin' | 'agent'): Promise<string> {
    this.writeConfig();
    const r = await dwAsync([
      'token',
      'create',
      '--config',
      this.configFile,
      '--role',
      role,
      '--name',
      `fleet-${role}`,
      ...(role === 'agent' ? ['--uses', 'unlimited'] : []),
    ]);
    if (r.code !== 0) throw new Error(`token create: exit ${r.code}: ${r.stderr}`);
    return r.stdout.trim();
  }
}

/** An API client for people's routes, with an admin token. */
export class Api {
  constructor(
    private readonly url: () => string,
    private readonly token: string,
  ) {}

  async call<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await request(this.url() + path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: (text ? JSON.parse(text) : null) as T };
  }

  async host(id: string): Promise<HostDetail | null> {
    const r = await this.call<HostDetail>('GET', `/api/v1/hosts/${id}`);
    return r.status === 200 ? r.body : null;
  }

  /** Every stored report of the host (scans and events), paged. */
  async reports(id: string): Promise<StoredReport[]> {
    const all: StoredReport[] = [];
    let before: number | undefined;
    for (;;) {
      const r = await this.call<{ reports: StoredReport[] }>(
        'GET',
        `/api/v1/hosts/${id}/reports?limit=500${before !== undefined ? `&beforeSeq=${before}` : ''}`,
      );
      if (r.status !== 200) throw new Error(`reports: ${r.status} ${JSON.stringify(r.body)}`);
      all.push(...r.body.reports);
      if (r.body.reports.length < 500) return all;
      before = Math.min(...r.body.reports.map((x) => x.seq));
    }
  }

  async publish(manifest: string): Promise<void> {
    const r = await dwAsync(['manifest', 'publish', manifest, '--url', this.url(), '--token', this.token]);
    if (r.code !== 0) throw new Error(`manifest publish: exit ${r.code}: ${r.stderr}`);
  }
}

export interface HostDetail {
  host: {
    id: string;
    state: string;
    lastSeq: number;
    deviationCount: number;
    lastSeenAt: string | null;
    hostname: string | null;
  };
  deviations: { collector: string; key: string; change: string; action: string; expected: unknown; actual: unknown }[];
  timeline: { transitions: { from: string | null; to: string; cause: string; at: string; reportId: string | null }[] };
}

export interface StoredReport {
  reportId: string;
  seq: number;
  kind: string;
  scannedAt: string;
  receivedAt: string;
  deviationCount: number;
}

export interface Delivered {
  seq: number;
  kind: string;
  reportId: string;
}

export interface HostOptions {
  manifest: string;
  enrollToken: string;
  /** How the host reaches the controller. */
  path:
    | { kind: 'proxy'; controller: { host: string; port: number } }
    | { kind: 'netns'; lab: NetLab; net: NetHost; controllerUrl: string }
    | { kind: 'direct'; controllerUrl: string };
  /** The group the agent reports (agent.yaml `group:`), for replacement budgets and the breaker. */
  group?: string;
  scan?: string;
  heartbeat?: string;
  watch?: string[];
  /** A state directory prepared by the test (e.g. a small tmpfs); else one in the host's temp dir. */
  stateDir?: string;
  /** Extra arguments for node before the CLI (e.g. --import of a clock preload). */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

/** One host of the fleet: its own root, machine-id, state directory and link to the controller. */
export class FleetHost {
  readonly id = randomBytes(16).toString('hex');
  readonly dir = tempDir('dw-fleet-host-');
  readonly root = copyFixture(join(FIXTURES, 'hosts/web'));
  readonly stateDir: string;
  readonly configFile = join(this.dir, 'agent.yaml');
  private readonly tokenFile = join(this.dir, 'enrollment-token');
  readonly proxy: FaultProxy | null;
  proc: ChildProcess | null = null;
  log = '';
  exits: { code: number | null; signal: NodeJS.Signals | null }[] = [];

  constructor(
    readonly name: string,
    readonly opts: HostOptions,
  ) {
    this.stateDir = opts.stateDir ?? join(this.dir, 'state');
    writeFileSync(join(this.root, 'etc/machine-id'), `${this.id}\n`);
    writeFileSync(join(this.root, 'etc/hostname'), `${name}\n`);
    writeFileSync(this.tokenFile, opts.enrollToken + '\n', { mode: 0o600 });
    this.proxy = opts.path.kind === 'proxy' ? new FaultProxy(opts.path.controller) : null;
  }

  private controllerUrl(): string {
    const p = this.opts.path;
    return p.kind === 'proxy' ? this.proxy!.url : p.controllerUrl;
  }

  private writeConfig(): void {
    const o = this.opts;
    writeFileSync(
      this.configFile,
      stringify({
        // A namespaced host reaches the controller on the lab bridge, not loopback: plain http there is a test's choice.
        controller: {
          url: this.controllerUrl(),
          enrollmentTokenFile: this.tokenFile,
          ...(o.path.kind === 'netns' ? { allowInsecure: true } : {}),
        },
        manifest: o.manifest,
        root: this.root,
        stateDir: this.stateDir,
        ...(o.group ? { group: o.group } : {}),
        schedule: { scan: o.scan ?? '*/2 * * * * *', fullRehash: '0 0 1 1 *', heartbeat: o.heartbeat ?? '250ms' },
        watch: { paths: o.watch ?? ['/etc', '/opt'] },
      }),
    );
  }

  async start(): Promise<void> {
    if (this.proxy && !this.proxy.port) await this.proxy.start();
    this.writeConfig();
    const p = this.opts.path;
    const prefix = p.kind === 'netns' ? p.lab.exec(p.net) : [];
    const argv = [
      ...prefix,
      process.execPath,
      ...(this.opts.nodeArgs ?? []),
      BIN,
      'agent',
      '--config',
      this.configFile,
    ];
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'debug', ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(
      child,
      (s) => (this.log += s),
      (code, signal) => this.exits.push({ code, signal }),
    );
    this.proc = child;
  }

  /** SIGTERM and wait: the agent finishes its current send, so its log holds every acknowledgement. */
  async stop(): Promise<void> {
    const child = this.proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await until(
      () => this.log.includes('"msg":"agent running"') || child.exitCode !== null,
      () => `${this.name} running before SIGTERM\n${this.log.slice(-2000)}`,
      30_000,
    );
    child.kill('SIGTERM');
    await waitExit(child, 20_000, () => `agent ${this.name}\n${this.log.slice(-2000)}`);
  }

  /** The link to the controller goes down (namespace link or proxy). */
  cut(): void {
    const p = this.opts.path;
    if (p.kind === 'netns') p.lab.cut(p.net);
    else if (this.proxy) this.proxy.cut();
    else throw new Error('a direct host cannot be cut off');
  }

  restore(): void {
    const p = this.opts.path;
    if (p.kind === 'netns') p.lab.restore(p.net);
    else if (this.proxy) this.proxy.restore();
  }

  /** Every report the controller acknowledged to this agent, in the order it did (from the debug log). */
  delivered(): Delivered[] {
    return this.logLines()
      .filter((l) => l.msg === 'report delivered')
      .map((l) => ({ seq: l.seq as number, kind: l.kind as string, reportId: l.reportId as string }));
  }

  logLines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.log.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut by a SIGKILL
      }
    }
    return out;
  }

  get spoolDir(): string {
    return join(this.stateDir, 'spool');
  }

  /** Reports waiting in the spool (seq, kind), oldest first. */
  spooled(): SpooledReport[] {
    return spooledReports(this.spoolDir);
  }

  rejected(): string[] {
    try {
      return readdirSync(join(this.spoolDir, 'rejected'));
    } catch {
      return [];
    }
  }

  /** Every spooled file parses: nothing was left half written. */
  spoolIntact(): void {
    for (const e of this.spooled()) JSON.parse(readFileSync(join(this.spoolDir, e.name), 'utf8'));
  }
}

/**
 * The invariant after a fault, for one host whose agent has been stopped (so its log is complete):
 * - every scan and event the controller acknowledged is stored, with the reportId it was sent with;
 * - nothing is stored that the agent did not get acknowledged, and nothing twice; what is still
 *   spooled (made as the agent stopped) is newer than all of that;
 * - stored in increasing seq in the order received (in order);
 * - the host row agrees: lastSeq is the last acknowledged seq, the deviation count matches its
 *   current deviations, the transitions form one unbroken chain ending in its state, and each
 *   transition caused by a report names a stored report.
 */
export async function verifyHost(api: Api, h: FleetHost): Promise<{ stored: number; delivered: number }> {
  const delivered = h.delivered();
  const stored = await api.reports(h.id);
  const detail = await api.host(h.id);
  if (!detail) throw new Error(`${h.name}: the controller does not know host ${h.id}`);
  const problems: string[] = [];
  const ackedReports = delivered.filter((d) => d.kind !== 'heartbeat');
  const byId = new Map(stored.map((r) => [r.reportId, r]));
  for (const d of ackedReports) {
    const s = byId.get(d.reportId);
    if (!s) problems.push(`acknowledged ${d.kind} seq ${d.seq} (${d.reportId}) is not stored`);
    else if (s.seq !== d.seq) problems.push(`report ${d.reportId} stored with seq ${s.seq}, sent with ${d.seq}`);
  }
  const ackedIds = new Set(ackedReports.map((d) => d.reportId));
  for (const s of stored)
    if (!ackedIds.has(s.reportId))
      problems.push(`stored seq ${s.seq} (${s.reportId}) was never acknowledged to the agent`);
  if (new Set(stored.map((s) => s.reportId)).size !== stored.length) problems.push('a reportId is stored twice');
  if (new Set(stored.map((s) => s.seq)).size !== stored.length) problems.push('a seq is stored twice');
  const byArrival = [...stored].sort((a, b) =>
    a.receivedAt < b.receivedAt ? -1 : a.receivedAt > b.receivedAt ? 1 : a.seq - b.seq,
  );
  for (let i = 1; i < byArrival.length; i++) {
    if (byArrival[i]!.seq <= byArrival[i - 1]!.seq)
      problems.push(`seq ${byArrival[i]!.seq} was stored after seq ${byArrival[i - 1]!.seq}`);
  }
  // Acknowledgements reach the agent in seq order too (one at a time, oldest first).
  for (let i = 1; i < delivered.length; i++) {
    if (delivered[i]!.seq <= delivered[i - 1]!.seq)
      problems.push(`acknowledged seq ${delivered[i]!.seq} after ${delivered[i - 1]!.seq}`);
  }
  const lastAcked = delivered.at(-1)?.seq ?? 0;
  if (detail.host.lastSeq !== lastAcked)
    problems.push(`host lastSeq ${detail.host.lastSeq}, last acknowledged seq ${lastAcked}`);
  const counted = detail.deviations.filter((d) => d.action !== 'ignore').length;
  if (detail.host.deviationCount !== counted)
    problems.push(`host deviationCount ${detail.host.deviationCount}, current deviations ${counted}`);
  const t = detail.timeline.transitions;
  if (t[0]?.from !== null) problems.push(`first transition from ${t[0]?.from}`);
  for (let i = 1; i < t.length; i++)
    if (t[i]!.from !== t[i - 1]!.to)
      problems.push(`transition ${i} from ${t[i]!.from}, previous went to ${t[i - 1]!.to}`);
  if (t.at(-1)?.to !== detail.host.state)
    problems.push(`last transition to ${t.at(-1)?.to}, host is ${detail.host.state}`);
  for (const x of t)
    if (x.reportId && !byId.has(x.reportId))
      problems.push(`transition to ${x.to} names report ${x.reportId}, which is not stored`);
  // A scan made as the agent was stopping waits in the spool for the next start: it must be newer than
  // anything acknowledged and not stored yet (else a restart would send it twice).
  for (const e of h.spooled()) {
    const left = JSON.parse(readFileSync(join(h.spoolDir, e.name), 'utf8')) as { reportId: string; seq: number };
    if (left.seq <= lastAcked)
      problems.push(`spooled seq ${left.seq} is not newer than the last acknowledged seq ${lastAcked}`);
    if (byId.has(left.reportId)) problems.push(`spooled seq ${left.seq} is already stored`);
  }
  if (h.rejected().length > 0) problems.push(`reports refused by the controller: ${h.rejected().join(', ')}`);
  if (problems.length > 0) throw new Error(`${h.name} (${h.id}):\n  ${problems.join('\n  ')}`);
  return { stored: stored.length, delivered: delivered.length };
}

/** Wait until every host's spool holds no scan or event (all delivered). */
export async function drained(hosts: FleetHost[], timeoutMs = 60_000): Promise<void> {
  await until(
    () => hosts.every((h) => !h.spooled().some((e) => e.kind !== 'heartbeat')),
    () =>
      `spools drained: ${hosts.map((h) => `${h.name}=${h.spooled().length}`).join(' ')}\n${hosts.map((h) => h.log.slice(-600)).join('\n')}`,
    timeoutMs,
    100,
  );
}
