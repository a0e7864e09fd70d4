/**
 * @module Hosts on a network of their own: one network namespace per host, each joined by a veth pair
 * to a bridge on a private /24 (10.231.N.0/24) where the controller listens on .1. Cutting a host off
 * is taking its end of the link down on the bridge side; the host keeps its address and its routes,
 * as a host behind a failed switch port would.
 *
 * Needs root (CAP_NET_ADMIN) and iproute2. netnsUnavailable() says why it cannot run here, so the
 * tests that need it skip with that reason. Names carry a per-run id; everything made is removed by
 * destroy(), and by a process exit hook if a run dies before that.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

function ip(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) return { ok: false, err: String(r.error.message) };
  return { ok: r.status === 0, err: (r.stderr || '').trim() };
}

function must(args: string[]): void {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(' ')}: ${r.err}`);
}

let probed: string | null | undefined;

/** Why network namespaces cannot be used on this machine, or null when they can. */
export function netnsUnavailable(): string | null {
  if (probed !== undefined) return probed;
  probed = probe();
  return probed;
}

function probe(): string | null {
  if (process.platform !== 'linux') return `network namespaces are Linux-only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (CAP_NET_ADMIN); this run is not root';
  const version = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (version.error) return 'the `ip` command (iproute2) is not installed';
  const id = randomBytes(2).toString('hex');
  const ns = `dwprobe${id}`;
  const br = `dwpb${id}`;
  try {
    const add = ip(['netns', 'add', ns]);
    if (!add.ok) return `cannot create a network namespace: ${add.err}`;
    const bridge = ip(['link', 'add', 'name', br, 'type', 'bridge']);
    if (!bridge.ok) return `cannot create a bridge: ${bridge.err}`;
    const veth = ip(['link', 'add', `${br}a`, 'type', 'veth', 'peer', 'name', `${br}b`, 'netns', ns]);
    if (!veth.ok) return `cannot create a veth pair: ${veth.err}`;
    return null;
  } finally {
    ip(['link', 'del', `${br}a`]);
    ip(['link', 'del', br]);
    ip(['netns', 'del', ns]);
  }
}

export interface NetHost {
  ns: string;
  /** The host's address inside its namespace. */
  address: string;
  /** Bridge-side end of its link (what cut() takes down). */
  link: string;
}

export class NetLab {
  readonly id = randomBytes(2).toString('hex');
  /** Third octet of 10.231.N.0/24, random so parallel runs on one machine do not clash. */
  readonly subnet = 1 + (randomBytes(1)[0]! % 250);
  readonly bridge = `dwbr${this.id}`;
  readonly hosts: NetHost[] = [];
  private readonly onExit = () => this.destroy();

  /** Where the controller listens for the namespaced hosts. */
  get controllerAddress(): string {
    return `10.231.${this.subnet}.1`;
  }

  create(): void {
    process.once('exit', this.onExit);
    must(['link', 'add', 'name', this.bridge, 'type', 'bridge']);
    must(['addr', 'add', `${this.controllerAddress}/24`, 'dev', this.bridge]);
    must(['link', 'set', this.bridge, 'up']);
  }

  addHost(): NetHost {
    const i = this.hosts.length;
    const ns = `dw${this.id}h${i}`;
    const link = `dw${this.id}v${i}`;
    const inner = `dw${this.id}i${i}`;
    const host = { ns, address: `10.231.${this.subnet}.${10 + i}`, link };
    this.hosts.push(host);
    must(['netns', 'add', ns]);
    must(['link', 'add', link, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
    must(['-n', ns, 'addr', 'add', `${host.address}/24`, 'dev', inner]);
    must(['-n', ns, 'link', 'set', inner, 'up']);
    must(['-n', ns, 'link', 'set', 'lo', 'up']);
    must(['link', 'set', link, 'master', this.bridge]);
    must(['link', 'set', link, 'up']);
    return host;
  }

  /** The command prefix that runs a program inside the host's namespace. */
  exec(host: NetHost): string[] {
    return ['ip', 'netns', 'exec', host.ns];
  }

  cut(host: NetHost): void {
    must(['link', 'set', host.link, 'down']);
  }

  restore(host: NetHost): void {
    must(['link', 'set', host.link, 'up']);
  }

  /** Remove every namespace and link of this run; safe to call twice. */
  destroy(): void {
    process.removeListener('exit', this.onExit);
    for (const h of this.hosts.splice(0)) {
      ip(['link', 'del', h.link]);
      ip(['netns', 'del', h.ns]);
    }
    ip(['link', 'del', this.bridge]);
  }
}
