/** @module Who a host is (machine-id, hostname, OS from os-release) and, on the live root, its inventory via systeminformation. */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Os } from '../shared/schema/manifest.js';
import { CONTROL_CHARS, HOSTNAME, LIMITS } from '../shared/schema/limits.js';
import type { Inventory } from '../shared/schema/report.js';
import type { HostRoot } from './root.js';

/** Parse os-release (KEY=value, optionally quoted): the image's own statement of what it is. */
export function parseOsRelease(text: string): Os | null {
  const vars: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))
      v = v.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    vars[m[1]!] = v;
  }
  if (!vars.ID && !vars.PRETTY_NAME) return null;
  return {
    id: vars.ID ?? 'linux',
    versionId: vars.VERSION_ID ?? '',
    prettyName: vars.PRETTY_NAME ?? vars.NAME ?? vars.ID ?? '',
  };
}

export async function readOs(root: HostRoot): Promise<Os | null> {
  const text = (await root.readTextIfExists('/etc/os-release')) ?? (await root.readTextIfExists('/usr/lib/os-release'));
  return text === null ? null : parseOsRelease(text);
}

export async function readHostname(root: HostRoot): Promise<string | null> {
  const text = await root.readTextIfExists('/etc/hostname');
  const name = text?.split('\n')[0]?.trim();
  return name ? name : null;
}

/**
 * The host id is the root's machine-id, so two roots are two hosts. Without one, an id is made once
 * and kept in the state directory; with no state directory either, there is no stable id to give.
 */
export async function readHostId(root: HostRoot, stateDir?: string): Promise<string | null> {
  const text = await root.readTextIfExists('/etc/machine-id');
  const id = text?.trim();
  if (id && /^[0-9a-f]{32}$/.test(id)) return id;
  if (!stateDir) return null;
  const file = join(stateDir, 'host-id');
  try {
    const kept = readFileSync(file, 'utf8').trim();
    if (kept) return kept;
  } catch {
    // first start: make one below
  }
  const made = randomUUID().replaceAll('-', '');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, made + '\n', { mode: 0o600 });
  return made;
}

/** Inventory of the live machine; for any other root only what its files say (systeminformation reads this machine). */
export async function readInventory(root: HostRoot, hostId: string | null): Promise<Inventory> {
  return boundInventory(await readInventoryAsIs(root, hostId));
}

/** A name the controller takes (see shared/schema/limits.ts), or null: one odd field must not cost the host its report. */
function boundName(s: string | null, max: number = LIMITS.maxName): string | null {
  if (s === null) return null;
  const clean = s.replace(new RegExp(CONTROL_CHARS.source, 'g'), ' ').trim().slice(0, max);
  return clean === '' ? null : clean;
}

/**
 * The inventory as the controller's InventorySchema bounds it: a hostname that is not an RFC 1123 name
 * is sent as null (the host is still known by its id), other names lose their control characters.
 */
export function boundInventory(inv: Inventory): Inventory {
  return {
    hostId: inv.hostId,
    hostname: inv.hostname !== null && HOSTNAME.test(inv.hostname) ? inv.hostname : null,
    os: boundName(inv.os),
    kernel: boundName(inv.kernel),
    addresses: inv.addresses
      .map((a) => boundName(a, 64))
      .filter((a): a is string => a !== null)
      .slice(0, LIMITS.maxAddresses),
  };
}

async function readInventoryAsIs(root: HostRoot, hostId: string | null): Promise<Inventory> {
  const hostname = await readHostname(root);
  const os = await readOs(root);
  if (root.dir !== '/') {
    return { hostId: hostId ?? 'unknown', hostname, os: os?.prettyName ?? null, kernel: null, addresses: [] };
  }
  // Loaded only here, for the live root: it is the largest import the agent has (about 11 MB resident).
  const { default: si } = await import('systeminformation');
  const [info, nets] = await Promise.all([si.osInfo().catch(() => null), si.networkInterfaces().catch(() => [])]);
  const list = Array.isArray(nets) ? nets : [nets];
  const addresses = list
    .filter((n) => !n.internal)
    .flatMap((n) => [n.ip4, n.ip6].filter((a): a is string => Boolean(a)));
  return {
    hostId: hostId ?? 'unknown',
    hostname: hostname ?? info?.hostname ?? null,
    os: os?.prettyName ?? (info ? `${info.distro} ${info.release}`.trim() : null),
    kernel: info?.kernel ?? null,
    addresses,
  };
}
