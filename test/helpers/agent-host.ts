/**
 * @module A host and its controller for agent tests: a signed manifest baked from the web fixture by
 * the real CLI, a real controller on 127.0.0.1 with a SQLite file (restartable on the same file and
 * port), and the real agent as a child process (`node bin/driftwarden.js agent`) on a temp copy of
 * the fixture root. Every child started here is killed by killAll() (call it in afterEach).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { request } from 'undici';
import { stringify } from 'yaml';
import { ControllerConfigSchema } from '../../controller/config.js';
import { createToken } from '../../controller/routes/tokens.js';
import { startController, type RunningController } from '../../controller/server.js';
import { copyFixture, FIXTURES, tempDir } from './tmp.js';
import { until } from './wait.js';

export const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));
/** The web fixture's /etc/machine-id. */
export const HOST_ID = '0123456789abcdef0123456789abcdef';

export function dw(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The CLI without blocking this process: the controller runs in-process, so a command that talks to it
 * must not be run with spawnSync (that would freeze the controller it waits for).
 */
export function dwAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    }),
  );
}

export interface Baked {
  dir: string;
  pub: string;
  /** Manifest of image img-web-1, built from an untouched copy of the web fixture. */
  manifest: string;
  /** The same content baked as another image, img-web-2. */
  otherManifest: string;
}

/** Keys and signed manifests, built with the real CLI. */
export function bake(): Baked {
  const dir = tempDir('dw-bake-');
  const root = copyFixture(join(FIXTURES, 'hosts/web'));
  const run = (args: string[]) => {
    const r = dw(args);
    if (r.code !== 0) throw new Error(`driftwarden ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  };
  run(['keygen', '--out', join(dir, 'keys')]);
  const key = join(dir, 'keys/bake.key');
  for (const [id, out] of [
    ['img-web-1', 'manifest.json'],
    ['img-web-2', 'manifest-2.json'],
  ] as const) {
    run([
      'manifest',
      'build',
      '--root',
      root,
      '--image-id',
      id,
      '--name',
      'web',
      '--version',
      '1.0.0',
      '--sign-key',
      key,
      '--out',
      join(dir, out),
    ]);
  }
  return {
    dir,
    pub: join(dir, 'keys/bake.pub'),
    manifest: join(dir, 'manifest.json'),
    otherManifest: join(dir, 'manifest-2.json'),
  };
}

const silent = pino({ level: 'silent' });

/** A real controller on a fixed SQLite file; stop() and start() again keep the file and the port. */
export class Controller {
  running: RunningController | null = null;
  port = 0;
  adminToken = '';
  enrollToken = '';
  readonly db: string;

  constructor(
    readonly dir: string,
    private readonly pub: string,
    /** Any other controller.yaml keys (bodyLimit, tls, ...). */
    private readonly extra: Record<string, unknown> = {},
  ) {
    this.db = join(dir, 'controller.db');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const config = ControllerConfigSchema.parse({
      listen: `127.0.0.1:${this.port}`,
      store: `sqlite:${this.db}`,
      trustedKeys: [this.pub],
      silentAfter: '1h',
      ...this.extra,
    });
    this.running = await startController(config, { log: silent });
    this.port = Number(new URL(this.running.url).port);
    if (!this.adminToken) {
      const store = this.running.store;
      const now = new Date();
      this.adminToken = (
        await store.transaction((tx) => createToken(tx, { name: 'test-admin', role: 'admin' }, 'test', now))
      ).secret;
      this.enrollToken = (
        await store.transaction((tx) =>
          createToken(tx, { name: 'test-enroll', role: 'agent', maxUses: 'unlimited' }, 'test', now),
        )
      ).secret;
    }
  }

  async stop(): Promise<void> {
    const r = this.running;
    this.running = null;
    await r?.close();
  }

  async api<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await request(this.url + path, {
      method,
      headers: {
        authorization: `Bearer ${this.adminToken}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: (text ? JSON.parse(text) : null) as T };
  }

  /** `driftwarden manifest publish`, the real command. */
  async publish(manifest: string): Promise<void> {
    const r = await dwAsync(['manifest', 'publish', manifest, '--url', this.url, '--token', this.adminToken]);
    if (r.code !== 0) throw new Error(`manifest publish: exit ${r.code}: ${r.stderr}`);
  }

  /** The host as GET /api/v1/hosts/:id shows it, or null before it enrolls. */
  async host(id = HOST_ID): Promise<HostDetail | null> {
    const r = await this.api<HostDetail>('GET', `/api/v1/hosts/${id}`);
    return r.status === 200 ? r.body : null;
  }

  /** Stored reports (scans and events; heartbeats are not stored), newest first as the API lists them. */
  async reports(id = HOST_ID): Promise<StoredReport[]> {
    const r = await this.api<{ reports: StoredReport[] }>('GET', `/api/v1/hosts/${id}/reports?limit=500`);
    if (r.status !== 200) throw new Error(`reports: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.reports;
  }
}

export interface HostDetail {
  host: { id: string; state: string; lastSeq: number; deviationCount: number };
  deviations: { collector: string; key: string; change: string; action: string; actual: unknown }[];
  timeline: { transitions: { from: string | null; to: string; cause: string; at: string }[] };
}

export interface StoredReport {
  reportId: string;
  seq: number;
  kind: string;
  receivedAt: string;
  deviationCount: number;
}

export interface AgentOptions {
  manifest: string;
  controllerUrl: string;
  enrollToken: string;
  scan?: string;
  heartbeat?: string;
  watch?: string[] | null;
  spoolMaxBytes?: number;
  trustedKeys?: string[];
  /** More agent.yaml `controller` keys (undeliveredAfter, allowInsecure, certFile, ...). */
  controllerKeys?: Record<string, unknown>;
}

/** One host: a copy of the fixture root, a state directory, an enrollment token file and agent.yaml. */
export class AgentHost {
  readonly dir: string;
  readonly root: string;
  readonly stateDir: string;
  readonly configFile: string;
  readonly tokenFile: string;
  proc: ChildProcess | null = null;
  log = '';
  exits: { code: number | null; signal: NodeJS.Signals | null }[] = [];

  constructor(private opts: AgentOptions) {
    this.dir = tempDir('dw-agent-');
    this.root = copyFixture(join(FIXTURES, 'hosts/web'));
    this.stateDir = join(this.dir, 'state');
    this.configFile = join(this.dir, 'agent.yaml');
    this.tokenFile = join(this.dir, 'enrollment-token');
    writeFileSync(this.tokenFile, opts.enrollToken + '\n', { mode: 0o600 });
    this.writeConfig();
  }

  configObject(over: Partial<AgentOptions> = {}): Record<string, unknown> {
    const o = { ...this.opts, ...over };
    return {
      controller: { url: o.controllerUrl, enrollmentTokenFile: this.tokenFile, ...o.controllerKeys },
      manifest: o.manifest,
      ...(o.trustedKeys ? { trustedKeys: o.trustedKeys } : {}),
      root: this.root,
      stateDir: this.stateDir,
      // The default scan schedule is far off unless a test asks for one; the first scan runs at start.
      schedule: { scan: o.scan ?? '0 0 1 1 *', fullRehash: '0 0 1 1 *', heartbeat: o.heartbeat ?? '1s' },
      ...(o.watch === null
        ? { watch: { paths: [] } }
        : { watch: { paths: o.watch ?? ['/etc', '/opt', '/usr/local/bin'] } }),
      ...(o.spoolMaxBytes !== undefined ? { spool: { maxBytes: o.spoolMaxBytes } } : {}),
    };
  }

  writeConfig(over: Partial<AgentOptions> = {}): void {
    this.opts = { ...this.opts, ...over };
    writeFileSync(this.configFile, stringify(this.configObject()));
  }

  private logStart = 0;

  /** Start `driftwarden agent --config agent.yaml` as a child process. */
  start(extra: string[] = []): ChildProcess {
    this.logStart = this.log.length;
    const child = spawn(process.execPath, [BIN, 'agent', '--config', this.configFile, ...extra], {
      env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    child.stdout!.on('data', (b: Buffer) => (this.log += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.log += b.toString()));
    child.on('exit', (code, signal) => {
      children.delete(child);
      this.exits.push({ code, signal });
    });
    this.proc = child;
    return child;
  }

  /** Run the agent once (`--once`) to completion. */
  once(): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return dwAsync(['agent', '--config', this.configFile, '--once'], { DRIFTWARDEN_LOG_LEVEL: 'warn' });
  }

  /** The agent started last has finished starting: its signal handlers are in place. */
  get running(): boolean {
    return this.log.slice(this.logStart).includes('"msg":"agent running"');
  }

  /**
   * Send a signal once the agent is running: before that (during the first scan) SIGHUP and SIGTERM
   * still have their default action and end the process.
   */
  async signal(sig: NodeJS.Signals): Promise<void> {
    await until(
      () => this.running,
      () => `agent running before ${sig}\n${this.log.slice(-2000)}`,
    );
    this.proc!.kill(sig);
  }

  /** Resolves with the exit once the running agent has exited. */
  exited(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.proc!;
    if (child.exitCode !== null || child.signalCode !== null)
      return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`agent did not exit within ${timeoutMs} ms\n${this.log.slice(-3000)}`)),
        timeoutMs,
      );
      child.once('exit', (code, signal) => {
        clearTimeout(t);
        resolve({ code, signal });
      });
    });
  }

  async status(): Promise<Record<string, any>> {
    const r = await dwAsync(['agent', 'status', '--config', this.configFile]);
    if (r.code !== 0) throw new Error(`agent status: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, any>;
  }

  get spoolDir(): string {
    return join(this.stateDir, 'spool');
  }

  /** Reports waiting in the spool, parsed from their file names (seq, kind). */
  spooled(): SpooledReport[] {
    return spooledReports(this.spoolDir);
  }

  rejectedDir(): string {
    const d = join(this.spoolDir, 'rejected');
    mkdirSync(d, { recursive: true });
    return d;
  }

  /** How many times the agent's log has a line with this msg. */
  count(msg: string): number {
    return this.log.split('\n').filter((l) => l.includes(`"msg":"${msg}`)).length;
  }
}

const children = new Set<ChildProcess>();

/** SIGKILL every child still running and wait for them to go. */
export interface SpooledReport {
  seq: number;
  kind: string;
  name: string;
}

/** Reports waiting in an agent's spool directory, parsed from their file names, oldest first; none when it does not exist yet. */
export function spooledReports(spoolDir: string): SpooledReport[] {
  let names: string[] = [];
  try {
    names = readdirSync(spoolDir);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, m: /^(\d{12})-(scan|heartbeat|event)-.*\.json$/.exec(name) }))
    .filter((x) => x.m)
    .map((x) => ({ seq: Number(x.m![1]), kind: x.m![2]!, name: x.name }))
    .sort((a, b) => a.seq - b.seq);
}

/**
 * A Controller in a temp dir trusting `baked`'s key, started, with `baked`'s manifest published. It joins
 * `track` before it starts, so the test's afterEach stops it even when the start fails.
 */
export async function publishedController(
  baked: Baked,
  track: Controller[],
  port = 0,
  extra: Record<string, unknown> = {},
): Promise<Controller> {
  const c = new Controller(tempDir('dw-ctl-'), baked.pub, extra);
  c.port = port;
  track.push(c);
  await c.start();
  await c.publish(baked.manifest);
  return c;
}

/** An agent on `baked`'s manifest that reports to, and enrolls with, controller `c`. */
export function agentFor(baked: Baked, c: Controller, opts: Partial<AgentOptions> = {}): AgentHost {
  return new AgentHost({ manifest: baked.manifest, controllerUrl: c.url, enrollToken: c.enrollToken, ...opts });
}

export async function killAll(): Promise<void> {
  const waits = [...children].map(
    (c) =>
      new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      }),
  );
  await Promise.all(waits);
  children.clear();
}

/** Re-exported from ./wait.js, where every test's waiting lives. */
export { until };
