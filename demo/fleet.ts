/**
 * @module The demo's fleet: each host is its own copy of the image root with its own machine-id and
 * hostname, and runs the real agent as a child process (`driftwarden agent --config …`), which enrolls
 * with the enrollment token and reports to the controller over HTTP, as on a real host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { DEFAULT_WATCH_PATHS } from '../agent/daemon/agent.js';
import type { AgentConfigInput } from '../shared/schema/config.js';
import type { DriftName } from './drifts.js';

export interface HostSpec {
  name: string;
  group: string;
  /** The drift done to this host in the story; none leaves it clean. */
  drift?: DriftName;
}

/**
 * IMPORTANT: the numbers carry the story. The same hand patch on 2 of the 3 web hosts is a fleet-wide
 * manual change (67% of the group, past the breaker's 30%): the breaker pauses `web` rather than replace
 * most of it at once. In `api`, 2 of 7 hosts (29%) drift for unrelated reasons: under the breaker, so the
 * budget (one replacement at a time per group) decides which goes first.
 */
export const FLEET: readonly HostSpec[] = [
  { name: 'web-1', group: 'web', drift: 'openssl-patched' },
  { name: 'web-2', group: 'web', drift: 'openssl-patched' },
  { name: 'web-3', group: 'web' },
  { name: 'api-1', group: 'api', drift: 'sysctl-tuned' },
  { name: 'api-2', group: 'api', drift: 'debug-session' },
  { name: 'api-3', group: 'api' },
  { name: 'api-4', group: 'api' },
  { name: 'api-5', group: 'api' },
  { name: 'api-6', group: 'api' },
  { name: 'api-7', group: 'api' },
];

/**
 * The agents also watch the package database and /usr/bin, so every drift in the story arrives as an
 * event report within a second; on a real host those are left to the scheduled scans (watching all of
 * /usr costs inotify watches), which the demo runs every minute.
 */
export const DEMO_WATCH_PATHS = [...DEFAULT_WATCH_PATHS, '/var/lib/dpkg', '/usr/bin'];

export interface FleetHost extends HostSpec {
  /** The machine-id, which is the host's id at the controller. */
  id: string;
  dir: string;
  root: string;
  configFile: string;
  logFile: string;
}

/** A host booted from the image: a copy of the root that now has its own identity, and an agent config. */
export function prepareHost(
  work: string,
  spec: HostSpec,
  image: { root: string; manifest: string },
  controller: { url: string; enrollmentTokenFile: string },
): FleetHost {
  const dir = join(work, 'hosts', spec.name);
  const root = join(dir, 'root');
  cpSync(image.root, root, { recursive: true, verbatimSymlinks: true });
  const id = randomBytes(16).toString('hex');
  writeFileSync(join(root, 'etc/machine-id'), `${id}\n`);
  writeFileSync(join(root, 'etc/hostname'), `${spec.name}\n`);
  const config: AgentConfigInput = {
    controller: { url: controller.url, enrollmentTokenFile: controller.enrollmentTokenFile },
    manifest: image.manifest,
    root,
    stateDir: join(dir, 'state'),
    group: spec.group,
    schedule: { scan: '* * * * *', fullRehash: '0 3 * * 0', heartbeat: '30s' },
    watch: { paths: DEMO_WATCH_PATHS },
  };
  const configFile = join(dir, 'agent.yaml');
  writeFileSync(configFile, stringify(config));
  return { ...spec, id, dir, root, configFile, logFile: join(dir, 'agent.log') };
}

/** Set in the agents' environment: a demo's agent that started another demo would start another fleet. */
export const DEMO_AGENT_ENV = 'DRIFTWARDEN_DEMO_AGENT';

/** How to run `driftwarden agent`: the CLI this demo is part of, whichever way it was built. */
export function agentCommand(): { command: string; args: string[] } {
  try {
    // Built with tsc: this file is dist/demo/fleet.js, the CLI dist/cli.js.
    const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
    if (existsSync(cli)) return { command: process.execPath, args: [cli] };
  } catch {
    // no import.meta.url in a CommonJS bundle: the cases below
  }
  const script = process.argv[1];
  // A single executable runs its bundled program with no script argument (argv[1] is the executable itself);
  // a one-file bundle is the script node was given.
  return { command: process.execPath, args: script && resolve(script) !== process.execPath ? [resolve(script)] : [] };
}

export class AgentProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  /** Set when the agent ended without being asked to. */
  onUnexpectedExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | null = null;
  private stopping = false;

  constructor(readonly host: FleetHost) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    mkdirSync(this.host.dir, { recursive: true });
    // The agent's pino log goes to its own file: the terminal is for the story.
    const log = openSync(this.host.logFile, 'a');
    const { command, args } = agentCommand();
    try {
      const child = spawn(command, [...args, 'agent', '--config', this.host.configFile], {
        stdio: ['ignore', log, log],
        env: { ...process.env, DRIFTWARDEN_LOG_LEVEL: 'info', [DEMO_AGENT_ENV]: '1' },
      });
      this.child = child;
      this.exited = new Promise((done) => {
        child.once('exit', (code, signal) => {
          if (!this.stopping) this.onUnexpectedExit?.(code, signal);
          done(code);
        });
        child.once('error', () => done(null));
      });
    } finally {
      closeSync(log);
    }
  }

  /** SIGTERM: the agent finishes its current scan and send, then exits; one that does not within the grace period is killed. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((done) => (timer = setTimeout(() => done('late'), graceMs)));
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome === 'late' && this.running) {
      this.child!.kill('SIGKILL');
      await this.exited;
    }
  }

  /** Last resort when the demo itself is going down and cannot wait. */
  kill(): void {
    this.stopping = true;
    if (this.running) this.child!.kill('SIGKILL');
  }

  /** The last lines of the agent's log, for when the story did not go as expected. */
  logTail(lines = 5): string[] {
    try {
      return readFileSync(this.host.logFile, 'utf8').trimEnd().split('\n').slice(-lines);
    } catch {
      return [];
    }
  }
}
