/**
 * @module Attribution of account, service, kernel-module and firewall deviations from the host's auth
 * log: "user:mallory added by useradd at ..." or "rsync.service: systemctl enable rsync, run by alice".
 * Like the package attribution it never fails a check: an unreadable log costs only attributions.
 */
import { describeError } from '../shared/errors.js';
import type { Deviation } from '../shared/schema/deviation.js';
import type { Logger } from './log.js';
import { parseAuthLog, type AuthAction } from './parsers/auth-log.js';
import type { HostRoot } from './root.js';

/** Debian/Ubuntu (rsyslog), then RHEL; the first rotation too, as a change from last night is often there. */
const LOGS = ['/var/log/auth.log.1', '/var/log/auth.log', '/var/log/secure.1', '/var/log/secure'];
const MAX_LOG_BYTES = 64 * 1024 * 1024;
const KINDS: ReadonlySet<string> = new Set(['accounts', 'services', 'kernel-modules', 'firewall']);

function matches(target: string, d: Deviation): boolean {
  const space = target.indexOf(' ');
  const collector = target.slice(0, space);
  const key = target.slice(space + 1);
  if (collector !== d.collector) return false;
  if (key === '*') return true;
  if (key.endsWith(':*')) return d.key.startsWith(key.slice(0, -1));
  return key === d.key;
}

export async function attributeFromAuthLog(
  ctx: { root: HostRoot; log: Logger; since?: string },
  deviations: Deviation[],
): Promise<void> {
  if (!deviations.some((d) => KINDS.has(d.collector) && !d.attribution)) return;
  const sinceMs = ctx.since ? Date.parse(ctx.since) : undefined;
  const year = new Date().getUTCFullYear();
  const actions: AuthAction[] = [];
  for (const file of LOGS) {
    try {
      const st = await ctx.root.statInside(file);
      if (!st?.isFile() || st.size > MAX_LOG_BYTES) continue;
      actions.push(...parseAuthLog(await ctx.root.readText(file), year));
    } catch (err) {
      ctx.log.debug({ path: file, err: describeError(err) }, 'auth log unreadable: no attribution from it');
    }
  }
  // Only what happened after the baseline; the latest action that names the item explains it.
  const recent = actions.filter((a) => sinceMs === undefined || (a.atMs !== undefined && a.atMs >= sinceMs));
  for (const d of deviations) {
    if (!KINDS.has(d.collector) || d.attribution) continue;
    let best: AuthAction | undefined;
    for (const a of recent)
      if (a.targets.some((t) => matches(t, d)) && (!best || (a.atMs ?? 0) >= (best.atMs ?? 0))) best = a;
    if (!best) continue;
    d.attribution = {
      source: 'auth-log',
      at: best.at,
      action: best.action,
      ...(best.commandLine !== undefined ? { commandLine: best.commandLine } : {}),
      ...(best.user !== undefined ? { user: best.user } : {}),
    };
  }
}
