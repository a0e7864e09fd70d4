/**
 * @module `driftwarden demo`: the whole story with no setup. It generates a sample image root, bakes and
 * signs its manifest, starts a controller on SQLite, boots a fleet of hosts from the image (each its own
 * copy of the root, running the real agent as a child process), drifts some of them the classic ways, and
 * shows the hosts becoming tainted and the replacement scheduler (in dry-run) deciding about them: the
 * breaker pausing one group, the budget ordering the other. Then it serves the dashboard until Ctrl-C (or,
 * with --exit, ends with 0 when the hosts and the decisions are the expected ones). Everything lives in a
 * temporary directory that is removed on every way out. It lives outside agent/ and controller/ because
 * it drives both.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createLogger } from '../shared/logger.js';
import type { z } from 'zod';
import { api, type ApiTarget } from '../shared/api-client.js';
import { describeError, DwError, isDwError } from '../shared/errors.js';
import { keygen } from '../agent/commands/keygen.js';
import { buildManifest } from '../agent/commands/manifest.js';
import { silentLogger } from '../agent/log.js';
import { ControllerConfigSchema } from '../controller/config.js';
import { createToken } from '../controller/routes/tokens.js';
import { startController, type RunningController } from '../controller/server.js';
import { DRIFTS, OPENSSL_PATCHED } from './drifts.js';
import { AgentProcess, DEMO_AGENT_ENV, FLEET, prepareHost, type FleetHost } from './fleet.js';
import { FleetView } from './fleet-view.js';
import { checkDecisions, showReplacements, type ExpectedDecisions } from './replacements.js';
import { writeSampleRoot } from './sample-root.js';
import { Terminal } from './terminal.js';

export interface DemoOptions {
  /** Keep the temporary directory (the roots, keys, manifest, database and logs) and say where. */
  keep?: boolean;
  /** End after the story instead of serving until Ctrl-C. */
  exit?: boolean;
}

const IMAGE = { id: 'img-base-2026.11', name: 'debian-12-base', version: '2026.11' };

/** How long the fleet may take to enroll and report clean, and to show the drifts (generous: CI machines are slow). */
const BOOT_TIMEOUT_MS = 60_000;
const DETECT_TIMEOUT_MS = 30_000;
/** After the expected taints, a moment for late event reports: a host that should stay clean must still be clean after it. */
const SETTLE_MS = 1500;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Config input, not the parsed type: the other keys take their defaults. The story runs its own pass
 * once the taints have settled; the loop's short interval is for what happens after, while the demo
 * serves (drift a host yourself and the scheduler decides within seconds).
 */
const SCHEDULER: z.input<typeof ControllerConfigSchema>['scheduler'] = {
  mode: 'dry-run',
  interval: '10s',
  budgets: [{ group: '*', maxUnavailable: 1 }],
  breaker: { taintedShare: 0.3, window: '15m' },
};

/** See ExpectedDecisions: the breaker pauses web; api-2 (critical) goes before api-1 (high). */
const EXPECTED: ExpectedDecisions = { paused: ['web'], wouldReplace: ['api-2'], waiting: ['api-1'] };

interface Outcome {
  asExpected: boolean;
  differences: string[];
}

/** The temporary directory, the agents and the controller: everything the demo must take down again. */
class Session {
  readonly agents: AgentProcess[] = [];
  controller: RunningController | null = null;
  view: FleetView | null = null;
  /** The admin token printed for the dashboard and the CLI. */
  adminToken = '';
  readonly abort = new AbortController();
  private closed = false;

  constructor(
    readonly work: string,
    readonly keep: boolean,
  ) {}

  /** Orderly: agents first (they finish their send), then the controller, then the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.view?.stop();
    await Promise.all(this.agents.map((a) => a.stop()));
    await this.controller?.close();
    // Asynchronous: on a slow disk the removal takes seconds, and the terminal should not freeze meanwhile.
    if (!this.keep) await rm(this.work, { recursive: true, force: true });
  }

  /** When the process is going down and cannot wait: no agent outlives the demo, no files stay behind. */
  closeNow(): void {
    for (const a of this.agents) a.kill();
    if (!this.keep) rmSync(this.work, { recursive: true, force: true });
  }
}

export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  if (process.env[DEMO_AGENT_ENV])
    throw new DwError('DW_ERR_USAGE', 'the demo does not run inside one of its own agents');
  const term = new Terminal();
  const session = new Session(mkdtempSync(join(tmpdir(), 'driftwarden-demo-')), Boolean(opts.keep));
  const onSignal = (signal: NodeJS.Signals) => {
    if (session.abort.signal.aborted) {
      // A second Ctrl-C: stop waiting for the orderly shutdown.
      session.closeNow();
      process.exit(130);
    }
    session.abort.abort(signal);
  };
  const onExit = () => session.closeNow();
  // SIGHUP too: a closed terminal must not leave ten agents behind (they take SIGHUP as "reload").
  for (const signal of SIGNALS) process.on(signal, onSignal);
  process.on('exit', onExit);
  let code = 2;
  try {
    term.say(term.bold(`driftwarden demo: one image, a fleet of ${FLEET.length} hosts, the classic drifts`));
    term.say(
      term.dim(`working in ${session.work} (${opts.keep ? 'kept afterwards' : 'removed afterwards; --keep keeps it'})`),
    );
    const outcome = await story(session, term);
    code = outcome.asExpected ? 0 : 1;
    if (!opts.exit) {
      await serve(session, term);
      term.say('\nstopping the agents and the controller…');
    }
  } catch (err) {
    if (session.abort.signal.aborted) {
      term.say(`\n${String(session.abort.signal.reason)}: stopping the agents and the controller…`);
      code = 130;
    } else {
      process.stderr.write(`driftwarden demo: ${isDwError(err) ? err.message : describeError(err)}\n`);
      code = isDwError(err) ? err.exitCode : 2;
    }
  } finally {
    await session.close();
    for (const signal of SIGNALS) process.off(signal, onSignal);
    process.off('exit', onExit);
  }
  term.say(opts.keep ? `kept the demo files in ${session.work}` : `removed ${session.work}`);
  return code;
}

async function story(session: Session, term: Terminal): Promise<Outcome> {
  const { work, abort } = session;
  const started = Date.now();

  term.heading('1. Bake: a sample Debian 12 image, its manifest signed by the build');
  const imageRoot = join(work, 'image');
  const sample = writeSampleRoot(imageRoot);
  term.say(
    `  image root with ${sample.packages} packages, ${sample.files} files, ${sample.parameters} kernel parameters, cron jobs and a systemd timer`,
  );
  const keys = keygen({ out: join(work, 'keys'), name: 'bake' });
  term.say(`  key pair ${keys.keyId}: bake.key stays with the build system, bake.pub goes to the controller`);
  const manifestFile = join(work, 'manifest.json');
  const built = await buildManifest({
    root: imageRoot,
    imageId: IMAGE.id,
    name: IMAGE.name,
    version: IMAGE.version,
    signKey: keys.privateKeyFile,
    out: manifestFile,
    log: silentLogger,
  });
  term.say(
    term.dim(
      `  $ driftwarden manifest build --root image --image-id ${IMAGE.id} --sign-key keys/bake.key --out manifest.json`,
    ),
  );
  const counts = Object.entries(built.manifest.sections).map(([k, s]) => `${k} ${s?.items.length ?? 0}`);
  term.say(
    `  recorded ${built.items} items (${counts.join(', ')}), digest ${built.manifest.digests.overall.slice(0, 23)}…, signed`,
  );

  term.heading('2. A controller on SQLite, the replacement scheduler in dry-run');
  const ctlDir = join(work, 'controller');
  const config = ControllerConfigSchema.parse({
    listen: '127.0.0.1:0',
    store: `sqlite:${join(ctlDir, 'controller.db')}`,
    trustedKeys: [keys.publicKeyFile],
    scheduler: SCHEDULER,
    // The whole demo fleet enrolls from 127.0.0.1 within a second, like hosts behind one NAT.
    rateLimit: { enroll: { max: 100, per: '1m' } },
  });
  // The controller's own log goes to a file: the terminal is for the story.
  const log = createLogger({
    level: 'info',
    service: 'driftwarden-controller',
    destination: pino.destination({ dest: join(ctlDir, 'controller.log'), sync: true, mkdir: true }),
  });
  const ctl = await startController(config, { log });
  session.controller = ctl;
  const now = new Date();
  const admin = await ctl.store.transaction((tx) =>
    createToken(tx, { name: 'demo-admin', role: 'admin' }, 'demo', now),
  );
  const enrollment = await ctl.store.transaction((tx) =>
    createToken(tx, { name: 'demo-enrollment', role: 'agent', maxUses: 'unlimited' }, 'demo', now),
  );
  const enrollmentTokenFile = join(work, 'enrollment-token');
  writeFileSync(enrollmentTokenFile, enrollment.secret + '\n', { mode: 0o600 });
  session.adminToken = admin.secret;
  const asAdmin: ApiTarget = { url: ctl.url, token: admin.secret };
  term.say(`  listening on ${ctl.url}, store ${config.store}`);
  term.say(term.dim(`  its log: ${join(ctlDir, 'controller.log')}`));
  const manifestJson = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
  const published = await api<{ signedBy: string }>(asAdmin, 'POST', '/api/v1/manifests', { manifest: manifestJson });
  term.say(`  manifest of ${IMAGE.id} published: signature by ${published.signedBy} checked`);
  term.say(`  a copy that blesses a hand-patched openssl is ${await tamperedRefused(asAdmin, manifestJson)}`);
  abort.signal.throwIfAborted();

  term.heading(`3. ${FLEET.length} hosts boot from the image, each running its own agent`);
  const hosts: FleetHost[] = FLEET.map((spec) =>
    prepareHost(work, spec, { root: imageRoot, manifest: manifestFile }, { url: ctl.url, enrollmentTokenFile }),
  );
  const names = new Map(hosts.map((h) => [h.id, h.name]));
  const groups = [...new Set(hosts.map((h) => h.group))].map(
    (g) =>
      `${g} (${hosts
        .filter((h) => h.group === g)
        .map((h) => h.name)
        .join(', ')})`,
  );
  term.say(`  groups: ${groups.join('; ')}`);
  term.say(
    '  each agent enrolls with the enrollment token, scans its root and reports over HTTP; the controller records every state change:',
  );
  const dead: string[] = [];
  for (const h of hosts) {
    const agent = new AgentProcess(h);
    agent.onUnexpectedExit = (exitCode, signal) => {
      // A Ctrl-C at the terminal reaches the agents too, and they stop on it: that is the way out, not a failure.
      if (abort.signal.aborted) return;
      dead.push(h.name);
      term.say(term.red(`  ${h.name}: its agent exited (${signal ?? `code ${exitCode}`}); log ${h.logFile}`));
    };
    session.agents.push(agent);
    agent.start();
  }
  const view = new FleetView(asAdmin, names, term);
  session.view = view;
  view.start();
  const bootStart = Date.now();
  const booted = await waitFleet(
    view,
    () => hosts.every((h) => view.state(h.id) === 'clean'),
    BOOT_TIMEOUT_MS,
    abort.signal,
    dead,
  );
  if (!booted)
    return fail(
      term,
      session,
      hosts,
      view,
      `not every host enrolled and reported clean within ${BOOT_TIMEOUT_MS / 1000} s`,
    );
  term.say(`  all ${hosts.length} hosts clean, ${term.elapsed(bootStart)} after their agents started`);

  term.heading('4. Weeks later: the hosts drift, the way servers do');
  const drifted = hosts.filter((h) => h.drift);
  for (const h of drifted) {
    DRIFTS[h.drift!].apply(h.root);
    term.say(`  ${term.bold(h.name.padEnd(6))} ${DRIFTS[h.drift!].story}`);
  }
  term.say(
    `  untouched: ${hosts
      .filter((h) => !h.drift)
      .map((h) => h.name)
      .join(', ')}`,
  );

  term.heading("5. The agents see the changes at once; the controller's policy decides");
  const driftStart = Date.now();
  const expected = (h: FleetHost) => (h.drift ? 'tainted' : 'clean');
  const detected = await waitFleet(
    view,
    () => drifted.every((h) => view.state(h.id) === 'tainted'),
    DETECT_TIMEOUT_MS,
    abort.signal,
    dead,
  );
  if (detected)
    term.say(
      `  ${drifted.length} hosts tainted, ${term.elapsed(driftStart)} after the drifts (taint is sticky: only a replacement ends it)`,
    );
  await sleep(SETTLE_MS, abort.signal);
  await view.poll();

  term.heading('6. The replacement scheduler decides: the breaker, then the budgets');
  const decisions = await showReplacements({ term, target: asAdmin, scheduler: config.scheduler, names });
  abort.signal.throwIfAborted();

  term.heading('7. The fleet');
  term.say(`  ${'HOST'.padEnd(6)} ${'GROUP'.padEnd(5)} ${'STATE'.padEnd(8)} DEVIATIONS`);
  for (const h of hosts) {
    const s = view.all.find((x) => x.id === h.id);
    term.say(
      `  ${h.name.padEnd(6)} ${h.group.padEnd(5)} ${term.state(s?.state ?? '(none)', 8)} ${s?.deviationCount ?? '-'}`,
    );
  }
  const differences = [
    ...hosts
      .filter((h) => view.state(h.id) !== expected(h))
      .map((h) => `${h.name} is ${view.state(h.id) ?? 'unknown'}, expected ${expected(h)}`),
    ...checkDecisions(decisions, EXPECTED, names),
  ];
  if (differences.length > 0) return fail(term, session, hosts, view, null, differences);
  const list = (xs: FleetHost[]) => xs.map((h) => h.name).join(', ');
  term.say(
    term.green(
      `  As expected: ${list(drifted)} are tainted (openssl ${OPENSSL_PATCHED} by hand, a kernel parameter, a debugging session); ${list(hosts.filter((h) => !h.drift))} are clean.`,
    ),
  );
  term.say(
    term.green(
      `  As expected: the breaker paused ${EXPECTED.paused.join(', ')} (nothing scheduled there); ${EXPECTED.wouldReplace.join(', ')} would be replaced (dry-run), ${EXPECTED.waiting.join(', ')} waits for budget.`,
    ),
  );
  term.say(term.dim(`  the story took ${term.elapsed(started)}`));
  return { asExpected: true, differences: [] };
}

/** The controller must refuse a manifest whose content no longer matches what the build signed. */
async function tamperedRefused(target: ApiTarget, manifest: Record<string, unknown>): Promise<string> {
  const tampered = structuredClone(manifest) as {
    image: { id: string };
    sections: { files: { items: { key: string; sha256?: string }[] } };
  };
  tampered.image.id = `${tampered.image.id}-hotfix`;
  const item = tampered.sections.files.items.find((i) => i.key === '/usr/bin/openssl');
  if (!item) throw new DwError('DW_ERR_INTERNAL', 'the sample manifest has no /usr/bin/openssl');
  item.sha256 = 'f'.repeat(64);
  try {
    await api(target, 'POST', '/api/v1/manifests', { manifest: tampered });
  } catch (err) {
    if (isDwError(err) && typeof err.context.status === 'number' && err.context.status < 500)
      return `refused: ${err.message.replace(/^controller refused [^:]+: /, '')}`;
    throw err;
  }
  throw new DwError('DW_ERR_INTERNAL', 'the controller accepted a tampered manifest');
}

async function waitFleet(
  view: FleetView,
  done: () => boolean,
  timeoutMs: number,
  signal: AbortSignal,
  dead: string[],
): Promise<boolean> {
  return view.waitFor(() => done() || dead.length > 0, timeoutMs, signal).then((ok) => ok && dead.length === 0);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}

function fail(
  term: Terminal,
  session: Session,
  hosts: FleetHost[],
  view: FleetView,
  why: string | null,
  differences: string[] = [],
): Outcome {
  term.say(term.red(`  NOT as expected${why ? `: ${why}` : ''}`));
  const wrong =
    differences.length > 0
      ? differences
      : hosts
          .filter((h) => view.state(h.id) !== 'clean')
          .map((h) => `${h.name} is ${view.state(h.id) ?? 'not enrolled'}`);
  for (const d of wrong) term.say(term.red(`    ${d}`));
  // What the agents of those hosts said last, since their logs go with the temporary directory.
  for (const agent of session.agents) {
    if (!wrong.some((w) => w.startsWith(`${agent.host.name} `))) continue;
    term.say(
      term.dim(
        `  ${agent.host.name}'s agent log (${agent.host.logFile}${session.keep ? '' : '; --keep keeps it'}), last lines:`,
      ),
    );
    for (const line of agent.logTail()) term.say(term.dim(`    ${line}`));
  }
  return { asExpected: false, differences: wrong };
}

/** The end of the story: the controller stays up for the dashboard and the CLI until Ctrl-C. */
async function serve(session: Session, term: Terminal): Promise<void> {
  const ctl = session.controller!;
  const untouched = session.agents.find((a) => !a.host.drift)?.host;
  term.heading('The controller keeps serving');
  term.say(`  dashboard:   ${term.bold(`${ctl.url}/`)}  (sign in with the admin token)`);
  term.say(`  admin token: ${term.bold(session.adminToken)}`);
  term.say(`  the CLI:     DRIFTWARDEN_URL=${ctl.url} DRIFTWARDEN_TOKEN=${session.adminToken} npx driftwarden hosts`);
  term.say(`               the same with \`replacements list\`, \`replacements groups\`, \`replacements resume web\``);
  if (untouched)
    term.say(
      `  drift a host yourself and watch it here: echo 'PermitRootLogin yes' >> ${join(untouched.root, 'etc/ssh/sshd_config')}`,
    );
  term.say(
    `  Ctrl-C stops the agents and the controller${session.keep ? ` (the files stay in ${session.work})` : ' and removes the demo files'}`,
  );
  await new Promise<void>((resolve) => {
    if (session.abort.signal.aborted) resolve();
    session.abort.signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
