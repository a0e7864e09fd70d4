/** @module Attribution: the package-manager transaction that explains a package or file deviation, where the host keeps one. */
import { createHash } from 'node:crypto';
import { createReadStream, type Dirent } from 'node:fs';
import { posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describeError, type DwParseError } from '../shared/errors.js';
import type { Attribution, Deviation } from '../shared/schema/deviation.js';
import { attributeFromAuthLog } from './attribution-auth.js';
import type { ExecFn } from './exec.js';
import { instantToIso, isAfter, localToIso, localToUtcMs, readHostZone, type HostZone } from './host-time.js';
import type { Logger } from './log.js';
import { parseAptHistory, type AptHistoryPackage, type AptHistoryStanza } from './parsers/apt-history.js';
import {
  parseDpkgConffiles,
  parseDpkgDiversions,
  parseDpkgList,
  parseDpkgMd5sums,
  type Diversion,
} from './parsers/dpkg-info.js';
import { parseDpkgLog } from './parsers/dpkg-log.js';
import { shiftLocalTime, type LocalTime } from './parsers/local-time.js';
import { packageKey } from './parsers/package-items.js';
import { RPM_INSTALLTIME_FORMAT, parseRpmInstallTimes, type RpmInstallTime } from './parsers/rpm-installtime.js';
import { parseDnfHistory, type DnfItem, type DnfTransaction } from './parsers/dnf-history.js';
import type { HostRoot } from './root.js';

/*
 * What attribution reads, all under the root: /var/log/dpkg.log (and .N, .N.gz rotations),
 * /var/log/apt/history.log (and rotations), /var/lib/dpkg/info/*.list and *.md5sums,
 * /var/lib/dpkg/diversions, the Conffiles of /var/lib/dpkg/status, /etc/localtime and /etc/timezone,
 * the rpm database (usr/lib/sysimage/rpm or var/lib/rpm) through the rpm program, dnf's history
 * database /var/lib/dnf/history.sqlite, and /etc/passwd (to name the uid that ran dnf).
 */

export interface AttributionContext {
  root: HostRoot;
  exec: ExecFn;
  log: Logger;
  /**
   * When the baseline was taken (the manifest's createdAt). A transaction explains a change only if
   * it ran after this; without it, only changes the transaction itself proves (a new version, file
   * content equal to what the package shipped) are attributed.
   */
  since?: string;
}

/** Bounds on what one call reads and hashes, so a huge or hostile root costs a check little. */
export const LIMITS = {
  /** A log's text, after decompression. */
  logBytes: 64 * 1024 * 1024,
  /** A compressed rotation on disk. */
  gzBytes: 16 * 1024 * 1024,
  /** One `.list`, `.md5sums`, `diversions` or `status` file. */
  infoBytes: 64 * 1024 * 1024,
  /** Files hashed to check their content against the package's own hash. */
  hashFiles: 2000,
  hashBytes: 2 * 1024 * 1024 * 1024,
  /** Files read at once from var/lib/dpkg/info. */
  concurrency: 16,
};

/** dpkg actions that write a package's files, and those that take them away. */
const UNPACKS: ReadonlySet<string> = new Set(['install', 'upgrade', 'downgrade', 'reinstall']);
const REMOVES: ReadonlySet<string> = new Set(['remove', 'purge']);

/**
 * A ctime this close after the transaction's end still counts as written by it: dpkg unpacks every
 * file first and maintainer scripts (chmod, dpkg-statoverride) run after, within the same apt run.
 */
const CTIME_SLACK_MS = 10 * 60_000;

/** How long an apt run without an End-Date (the last in the log) is taken to have lasted. */
const UNFINISHED_RUN_MS = 6 * 3600_000;

/**
 * Sets `attribution` on the deviations a package-manager transaction explains, and returns the
 * same array. In place on purpose: a check may hold 100k+ deviations, and copying them all to
 * annotate a handful is waste; the caller owns the array it just computed.
 *
 * IMPORTANT: this never fails the check. A missing, unreadable, oversized or malformed log or
 * database costs only attributions: each source is read on its own, a malformed line is skipped,
 * and whatever else goes wrong is logged at debug and the deviations go back as they came.
 */
export async function attributeDeviations(ctx: AttributionContext, deviations: Deviation[]): Promise<Deviation[]> {
  const log = ctx.log.child({ part: 'attribution' });
  try {
    await new Attributor({ ...ctx, log }).run(deviations);
  } catch (err) {
    log.debug({ err: describeError(err) }, 'attribution stopped early');
  }
  try {
    await attributeFromAuthLog({ ...ctx, log }, deviations);
  } catch (err) {
    log.debug({ err: describeError(err) }, 'auth-log attribution stopped early');
  }
  return deviations;
}

interface PackageFields {
  manager: string;
  name: string;
  arch: string;
  version: string;
  state: string;
}

function packageFields(item: Record<string, unknown> | null): PackageFields | null {
  if (item === null) return null;
  const { manager, name, arch, version, state } = item;
  if (
    typeof manager !== 'string' ||
    typeof name !== 'string' ||
    typeof arch !== 'string' ||
    typeof version !== 'string' ||
    typeof state !== 'string'
  )
    return null;
  return { manager, name, arch, version, state };
}

/** One package's part in one transaction, from dpkg's log, enriched by (or, before dpkg's log begins, taken from) apt's history. */
export interface Transaction {
  source: 'dpkg-log' | 'apt-history';
  at: LocalTime;
  /** Position across all logs read, oldest first: breaks ties between equal times. */
  order: number;
  action: string;
  name: string;
  arch: string;
  fromVersion?: string;
  toVersion?: string;
  commandLine?: string;
  user?: string;
  /** End of the apt run, when known: file changes made by maintainer scripts fall before it. */
  until?: LocalTime;
}

/** apt writes arch:all packages under the native architecture, dpkg under `all`; old dpkg wrote none. */
function archMatches(a: string, b: string): boolean {
  return a === b || a === '' || b === '' || a === 'all' || b === 'all';
}

function later(a: Transaction, b: Transaction): boolean {
  return a.at > b.at || (a.at === b.at && a.order > b.order);
}

/** Every package transaction the Debian logs under the root record, by package name. */
export class DebianHistory {
  private readonly byName = new Map<string, Transaction[]>();

  add(tx: Transaction): void {
    const list = this.byName.get(tx.name);
    if (list) list.push(tx);
    else this.byName.set(tx.name, [tx]);
  }

  /** The most recent transaction of a package; `arch` empty matches any architecture. */
  latest(name: string, arch: string): Transaction | undefined {
    let best: Transaction | undefined;
    for (const tx of this.byName.get(name) ?? [])
      if (archMatches(tx.arch, arch) && (best === undefined || later(tx, best))) best = tx;
    return best;
  }

  get size(): number {
    let n = 0;
    for (const l of this.byName.values()) n += l.length;
    return n;
  }
}

/**
 * dpkg's log says what happened to each package and when; apt's history says which command did
 * it and who ran it. An apt run is matched to a dpkg line when it lists the package and the line
 * falls between its Start-Date and End-Date (dpkg runs inside apt's run, on the same clock).
 * An apt entry with no dpkg line counts on its own only from before dpkg's log begins (rotated
 * away): within the log's span, no dpkg line means dpkg never did it (apt failed first).
 */
export function correlate(
  dpkg: Transaction[],
  dpkgFrom: LocalTime | undefined,
  stanzas: readonly AptHistoryStanza[],
): DebianHistory {
  type Entry = { stanza: AptHistoryStanza; end: LocalTime; pkg: AptHistoryPackage; seq: number; used: boolean };
  const index = new Map<string, Entry[]>();
  stanzas.forEach((stanza, seq) => {
    // A run apt did not finish (killed, crashed) has no End-Date: it ended before the next began,
    // and the last one within hours, so a much later `dpkg -i` is not pinned on it.
    const end = stanza.end ?? stanzas[seq + 1]?.start ?? shiftLocalTime(stanza.start, UNFINISHED_RUN_MS);
    for (const pkg of stanza.packages) {
      const list = index.get(pkg.name) ?? [];
      list.push({ stanza, end, pkg, seq, used: false });
      index.set(pkg.name, list);
    }
  });
  const history = new DebianHistory();
  for (const tx of dpkg) {
    let match: Entry | undefined;
    for (const c of index.get(tx.name) ?? []) {
      if (!archMatches(c.pkg.arch, tx.arch) || c.stanza.start > tx.at || c.end < tx.at) continue;
      if (match === undefined || c.seq > match.seq) match = c;
    }
    if (match) {
      match.used = true;
      history.add({
        ...tx,
        source: 'apt-history',
        // apt's word is the more precise: dpkg logs a downgrade or a reinstall as "upgrade".
        action: match.pkg.action,
        ...(match.stanza.commandLine !== undefined ? { commandLine: match.stanza.commandLine } : {}),
        ...(match.stanza.requestedBy !== undefined ? { user: match.stanza.requestedBy } : {}),
        until: match.end,
      });
    } else {
      history.add(tx);
    }
  }
  let order = dpkg.length;
  for (const list of index.values()) {
    for (const c of list) {
      if (c.used || c.stanza.error !== undefined) continue;
      if (dpkgFrom !== undefined && c.stanza.start >= dpkgFrom) continue;
      history.add({
        source: 'apt-history',
        at: c.stanza.start,
        order: order + c.seq,
        action: c.pkg.action,
        name: c.pkg.name,
        arch: c.pkg.arch,
        ...(c.pkg.fromVersion !== undefined ? { fromVersion: c.pkg.fromVersion } : {}),
        ...(c.pkg.toVersion !== undefined ? { toVersion: c.pkg.toVersion } : {}),
        ...(c.stanza.commandLine !== undefined ? { commandLine: c.stanza.commandLine } : {}),
        ...(c.stanza.requestedBy !== undefined ? { user: c.stanza.requestedBy } : {}),
        until: c.end,
      });
    }
  }
  return history;
}

/** Who may own one deviated path, and under which path its package lists it. */
interface OwnerCandidate {
  /** The `.list` file's name without `.list`: `bash`, or `libc6:amd64` for a Multi-Arch: same package. */
  owner: string;
  listed: string;
}

function ownerName(owner: string): { name: string; arch: string } {
  const colon = owner.indexOf(':');
  return colon < 0 ? { name: owner, arch: '' } : { name: owner.slice(0, colon), arch: owner.slice(colon + 1) };
}

/**
 * Directories that /usr-merge (or Fedora's sbin merge) turned into links: a package may list a
 * file as /bin/x while it lives at /usr/bin/x. Only links the root really has count, so a root
 * that is not merged keeps /bin/x and /usr/bin/x apart.
 */
const MERGED_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/libo32', '/usr/sbin'];

class Attributor {
  private zone: HostZone | undefined;
  private readonly sinceMs: number | undefined;
  private history: Promise<DebianHistory> | undefined;
  private readonly md5sums = new Map<string, Promise<Map<string, string>>>();
  private conffiles: Promise<Map<string, Map<string, string>>> | undefined;
  private readonly conffileOwners = new Set<string>();
  private readonly hashed = { files: 0, bytes: 0, spent: false };

  constructor(private readonly ctx: AttributionContext) {
    const ms = ctx.since === undefined ? NaN : Date.parse(ctx.since);
    this.sinceMs = Number.isNaN(ms) ? undefined : ms;
  }

  async run(deviations: Deviation[]): Promise<void> {
    const dpkgPackages: [Deviation, PackageFields][] = [];
    const rpmPackages: [Deviation, PackageFields][] = [];
    const files: Deviation[] = [];
    for (const d of deviations) {
      if (d.collector === 'packages') {
        const item = packageFields(d.actual) ?? packageFields(d.expected);
        if (item?.manager === 'dpkg') dpkgPackages.push([d, item]);
        else if (item?.manager === 'rpm') rpmPackages.push([d, item]);
      } else if (d.collector === 'files' && d.change !== 'removed') {
        // A removed file is not attributed: once a package drops a file its .list no longer names
        // it, and a file still listed but gone was deleted by hand.
        files.push(d);
      }
    }
    if (dpkgPackages.length + rpmPackages.length + files.length === 0) return;
    this.zone = await readHostZone(this.ctx.root).catch(() => ({ kind: 'unknown' }) as const);

    await this.step('dpkg packages', async () => {
      if (dpkgPackages.length === 0) return;
      const history = await this.loadHistory();
      for (const [d, item] of dpkgPackages) {
        const a = this.explainPackage(d, item, history);
        if (a) d.attribution = a;
      }
    });
    await this.step('files', () => this.attributeFiles(files));
    await this.step('rpm packages', () => this.attributeRpm(rpmPackages));
  }

  /** Each source on its own: one failing costs its own attributions only. */
  private async step(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.ctx.log.debug({ step: what, err: describeError(err) }, 'attribution step skipped');
    }
  }

  private after(tx: Transaction): boolean | undefined {
    return this.sinceMs === undefined ? undefined : isAfter(tx.at, this.zone!, this.sinceMs);
  }

  private attribution(tx: Transaction, ownedBy?: string): Attribution {
    const a: Attribution = {
      source: tx.source,
      at: localToIso(tx.at, this.zone!),
      action: tx.action,
      package: packageKey(tx.name, tx.arch),
    };
    if (tx.fromVersion !== undefined) a.fromVersion = tx.fromVersion;
    if (tx.toVersion !== undefined) a.toVersion = tx.toVersion;
    if (tx.commandLine !== undefined) a.commandLine = tx.commandLine;
    if (tx.user !== undefined) a.user = tx.user;
    if (ownedBy !== undefined) a.ownedBy = ownedBy;
    return a;
  }

  /**
   * The package's latest transaction, if it accounts for the state the host is in now: a removal
   * for a package gone (or left as config-files), an install or upgrade to exactly the version
   * installed. A latest transaction that does not agree with the host (the status file edited by
   * hand, a hold placed, logs from another life of the disk) explains nothing.
   */
  private explainPackage(d: Deviation, item: PackageFields, history: DebianHistory): Attribution | undefined {
    const tx = history.latest(item.name, item.arch);
    if (tx === undefined) return undefined;
    const actual = packageFields(d.actual);
    const configFiles = actual?.state.startsWith('config-files') ?? false;
    let agrees: boolean;
    if (actual === null) agrees = REMOVES.has(tx.action);
    else if (configFiles) agrees = tx.action === 'remove';
    else agrees = UNPACKS.has(tx.action) && tx.toVersion === actual.version;
    if (!agrees) return undefined;
    if (this.sinceMs !== undefined) {
      if (this.after(tx) !== true) return undefined;
    } else if (d.change === 'modified' && !configFiles && !(d.fields ?? []).includes('version')) {
      // A state-only change (a hold, a selection) is never logged by dpkg: without a baseline time
      // the old install would look like its cause.
      return undefined;
    }
    return this.attribution(tx);
  }

  private loadHistory(): Promise<DebianHistory> {
    this.history ??= this.readHistory();
    return this.history;
  }

  private async readHistory(): Promise<DebianHistory> {
    const dpkg: Transaction[] = [];
    let dpkgFrom: LocalTime | undefined;
    let order = 0;
    for (const file of await this.rotations('/var/log', 'dpkg.log')) {
      const text = await this.readLog(file);
      if (text === null) continue;
      const { entries, errors } = parseDpkgLog(text, file);
      this.logErrors(file, errors);
      for (const e of entries) {
        if (dpkgFrom === undefined || e.at < dpkgFrom) dpkgFrom = e.at;
        if (e.kind !== 'action' || !(UNPACKS.has(e.action) || REMOVES.has(e.action))) continue;
        const tx: Transaction = {
          source: 'dpkg-log',
          at: e.at,
          order: order++,
          action: e.action,
          name: e.name,
          arch: e.arch,
        };
        if (e.fromVersion !== undefined) tx.fromVersion = e.fromVersion;
        if (e.toVersion !== undefined) tx.toVersion = e.toVersion;
        dpkg.push(tx);
      }
    }
    const stanzas: AptHistoryStanza[] = [];
    for (const file of await this.rotations('/var/log/apt', 'history.log')) {
      const text = await this.readLog(file);
      if (text === null) continue;
      const parsed = parseAptHistory(text, file);
      this.logErrors(file, parsed.errors);
      for (const s of parsed.stanzas) stanzas.push(s);
    }
    const history = correlate(dpkg, dpkgFrom, stanzas);
    this.ctx.log.debug(
      { dpkgLines: dpkg.length, aptRuns: stanzas.length, transactions: history.size },
      'package history read',
    );
    return history;
  }

  private logErrors(file: string, errors: readonly DwParseError[]): void {
    if (errors.length > 0)
      this.ctx.log.debug({ file, skipped: errors.length, first: errors[0]!.message }, 'skipped malformed lines');
  }

  /**
   * A log and its rotations (`dpkg.log.1`, `dpkg.log.2.gz`, ...), oldest first: logrotate numbers
   * them by age, the highest the oldest. Other names (`.old`, editor backups) are not the log.
   */
  private async rotations(dir: string, base: string): Promise<string[]> {
    const pattern = new RegExp(`^${base.replace(/\./g, '\\.')}(?:\\.(\\d{1,4}))?(\\.gz)?$`);
    const found: { path: string; n: number; gz: boolean }[] = [];
    let entries: Dirent[];
    try {
      const real = await this.ctx.root.resolveInside(dir);
      entries = real === null ? [] : await this.ctx.root.readdir(real);
    } catch (err) {
      this.ctx.log.debug({ dir, err: describeError(err) }, 'log directory unreadable');
      return [];
    }
    for (const e of entries) {
      const m = pattern.exec(e.name);
      if (m)
        found.push({ path: posix.join(dir, e.name), n: m[1] === undefined ? 0 : Number(m[1]), gz: m[2] !== undefined });
    }
    return found.sort((a, b) => b.n - a.n || Number(a.gz) - Number(b.gz)).map((f) => f.path);
  }

  /** A regular file's text (gunzipped when named .gz), or null when absent, not a file, too large or corrupt. */
  private async readLog(hostPath: string): Promise<string | null> {
    try {
      const buf = await this.readBounded(hostPath, hostPath.endsWith('.gz') ? LIMITS.gzBytes : LIMITS.logBytes);
      if (buf === null) return null;
      // maxOutputLength makes a gzip bomb a RangeError, not an exhausted heap.
      const data = hostPath.endsWith('.gz') ? gunzipSync(buf, { maxOutputLength: LIMITS.logBytes }) : buf;
      return data.toString('utf8');
    } catch (err) {
      this.ctx.log.debug({ file: hostPath, err: describeError(err) }, 'log skipped');
      return null;
    }
  }

  /** Follows links inside the root only; null when absent, not a regular file, or over `limit` bytes. */
  private async readBounded(hostPath: string, limit: number): Promise<Buffer | null> {
    const real = await this.ctx.root.resolveInside(hostPath);
    if (real === null) return null;
    const st = await this.ctx.root.lstat(real);
    if (st === null || !st.isFile()) return null;
    if (st.size > limit) {
      this.ctx.log.debug({ file: hostPath, size: st.size, limit }, 'file too large; skipped');
      return null;
    }
    return this.ctx.root.readFile(real);
  }

  private async readInfoText(hostPath: string): Promise<string | null> {
    try {
      return (await this.readBounded(hostPath, LIMITS.infoBytes))?.toString('utf8') ?? null;
    } catch (err) {
      this.ctx.log.debug({ file: hostPath, err: describeError(err) }, 'file skipped');
      return null;
    }
  }

  private async mergedDirs(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const dir of MERGED_DIRS) {
      const real = await this.ctx.root.resolveInside(dir).catch(() => null);
      if (real !== null && real !== dir) out.set(dir, real);
    }
    return out;
  }

  /** The names a package could list a path under: itself and its /usr-merge aliases. */
  private static aliases(path: string, merged: ReadonlyMap<string, string>): string[] {
    const out = new Set([path]);
    for (const [alias, target] of merged) {
      if (path.startsWith(target + '/')) out.add(alias + path.slice(target.length));
      if (path.startsWith(alias + '/')) out.add(target + path.slice(alias.length));
    }
    return [...out];
  }

  /**
   * Owners of the deviated paths, in one pass over var/lib/dpkg/info: only the deviated paths (and
   * their aliases and diversion sources) are looked for, and each .list is read once.
   *
   * Diversions decide who owns what (dpkg-divert): at a diverted path `from` lies the diverting
   * package's own file (a local diversion, by `:`, means the administrator's), and every other
   * package's copy of `from` lies at `to`.
   */
  private async findOwners(paths: readonly string[]): Promise<Map<string, OwnerCandidate[]>> {
    const result = new Map<string, OwnerCandidate[]>();
    const infoDir = await this.ctx.root.resolveInside('/var/lib/dpkg/info');
    if (infoDir === null || paths.length === 0) return result;

    const merged = await this.mergedDirs();
    const divFrom = new Map<string, Diversion>();
    const divTo = new Map<string, Diversion>();
    const divText = await this.readInfoText('/var/lib/dpkg/diversions');
    if (divText !== null) {
      const { diversions, errors } = parseDpkgDiversions(divText, '/var/lib/dpkg/diversions');
      this.logErrors('/var/lib/dpkg/diversions', errors);
      for (const d of diversions) {
        divFrom.set(d.from, d);
        divTo.set(d.to, d);
      }
    }

    const names = new Map(paths.map((p) => [p, Attributor.aliases(p, merged)]));
    const wanted = new Set<string>();
    for (const list of names.values()) {
      for (const n of list) {
        wanted.add(n);
        const d = divTo.get(n);
        if (d) wanted.add(d.from);
      }
    }

    const listed = new Map<string, string[]>();
    const lists = (await this.ctx.root.readdir(infoDir)).filter((e) => e.name.endsWith('.list')).map((e) => e.name);
    await forEachLimited(lists, LIMITS.concurrency, async (name) => {
      const file = `/var/lib/dpkg/info/${name}`;
      const text = await this.readInfoText(file);
      if (text === null) return;
      const owner = name.slice(0, -'.list'.length);
      const { paths: listedPaths, errors } = parseDpkgList(text, file);
      this.logErrors(file, errors);
      for (const p of listedPaths) {
        if (!wanted.has(p)) continue;
        const owners = listed.get(p);
        if (owners) owners.push(owner);
        else listed.set(p, [owner]);
      }
    });

    for (const [path, aliases] of names) {
      const found: OwnerCandidate[] = [];
      for (const n of aliases) {
        const from = divFrom.get(n);
        for (const owner of listed.get(n) ?? []) {
          if (from && ownerName(owner).name !== from.by) continue; // their copy went to from.to
          found.push({ owner, listed: n });
        }
        const to = divTo.get(n);
        if (to)
          for (const owner of listed.get(to.from) ?? [])
            if (ownerName(owner).name !== to.by) found.push({ owner, listed: to.from });
      }
      if (found.length > 0)
        result.set(
          path,
          found.sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0)),
        );
    }
    return result;
  }

  /**
   * A file deviation gets its owning package's latest transaction only when that transaction is
   * shown to have made the change, so a hand edit is never dressed up as an upgrade:
   * - new content must be exactly what the package shipped (its md5sums, or the Conffiles hash in
   *   the status file), and the transaction must not predate the baseline;
   * - a change of metadata only (mode, owner, link target) must be after the baseline, and the
   *   file's ctime must fall within the transaction (a later chmod is someone else's).
   * A path several packages share (a directory such as /usr/bin) has no one owner and gets nothing.
   */
  private async attributeFiles(files: readonly Deviation[]): Promise<void> {
    if (files.length === 0) return;
    const owners = await this.findOwners(files.map((d) => d.key));
    if (owners.size === 0) return;
    const history = await this.loadHistory();
    for (const list of owners.values()) for (const c of list) this.conffileOwners.add(ownerName(c.owner).name);
    for (const d of files) {
      const candidates = owners.get(d.key);
      if (!candidates) continue;
      if (new Set(candidates.map((c) => ownerName(c.owner).name)).size !== 1) continue;
      let best: { c: OwnerCandidate; tx: Transaction } | undefined;
      for (const c of candidates) {
        const { name, arch } = ownerName(c.owner);
        const tx = history.latest(name, arch);
        if (tx && (best === undefined || later(tx, best.tx))) best = { c, tx };
      }
      if (!best || !UNPACKS.has(best.tx.action)) continue;
      try {
        if (await this.fileExplained(d, best.c, best.tx)) d.attribution = this.attribution(best.tx, best.c.owner);
      } catch (err) {
        this.ctx.log.debug({ path: d.key, err: describeError(err) }, 'file not attributed');
      }
    }
  }

  private async fileExplained(d: Deviation, c: OwnerCandidate, tx: Transaction): Promise<boolean> {
    const actualType = d.actual?.type;
    const fields = d.fields ?? [];
    const contentChanged =
      d.change === 'added'
        ? actualType === 'file'
        : fields.includes('sha256') || fields.includes('size') || (fields.includes('type') && actualType === 'file');
    const after = this.after(tx);
    if (contentChanged) {
      if (actualType !== 'file' || after === false) return false;
      const expected = await this.shippedMd5(c.owner, c.listed);
      if (expected === undefined) return false;
      return (await this.md5Of(d.key)) === expected;
    }
    if (after !== true) return false;
    return this.ctimeWithin(d.key, tx);
  }

  private async ctimeWithin(path: string, tx: Transaction): Promise<boolean> {
    const from = localToUtcMs(tx.at, this.zone!);
    const until = localToUtcMs(tx.until ?? tx.at, this.zone!);
    if (from === undefined || until === undefined) return false;
    const st = await this.ctx.root.lstat(path);
    if (st === null) return false;
    // Log times have whole seconds; ctime does not.
    return st.ctimeMs >= from - 1000 && st.ctimeMs <= until + 1000 + CTIME_SLACK_MS;
  }

  /** The MD5 the installed package shipped for a path: md5sums for ordinary files, the status file for conffiles. */
  private async shippedMd5(owner: string, listed: string): Promise<string | undefined> {
    let sums = this.md5sums.get(owner);
    if (sums === undefined) {
      sums = (async () => {
        const file = `/var/lib/dpkg/info/${owner}.md5sums`;
        const text = await this.readInfoText(file);
        if (text === null) return new Map<string, string>();
        const parsed = parseDpkgMd5sums(text, file);
        this.logErrors(file, parsed.errors);
        return parsed.sums;
      })();
      this.md5sums.set(owner, sums);
    }
    const fromSums = (await sums).get(listed);
    if (fromSums !== undefined) return fromSums;
    const conf = await this.conffilesOf(owner);
    return conf.get(listed);
  }

  /**
   * Conffiles of one owner, from a single read of the status file for every owner this call met
   * (attributeFiles fills `conffileOwners` before any file is checked).
   */
  private async conffilesOf(owner: string): Promise<Map<string, string>> {
    this.conffiles ??= this.readConffiles();
    const all = await this.conffiles;
    const { name, arch } = ownerName(owner);
    return all.get(`${name}:${arch}`) ?? all.get(`${name}:`) ?? new Map();
  }

  private async readConffiles(): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    const file = '/var/lib/dpkg/status';
    const text = await this.readInfoText(file);
    if (text === null) return out;
    const parsed = parseDpkgConffiles(text, file, this.conffileOwners);
    this.logErrors(file, parsed.errors);
    for (const p of parsed.packages) {
      out.set(`${p.name}:${p.arch}`, p.md5);
      // A package that is not Multi-Arch: same has a .list without its arch: found by name alone.
      if (!out.has(`${p.name}:`)) out.set(`${p.name}:`, p.md5);
    }
    return out;
  }

  private async md5Of(path: string): Promise<string | undefined> {
    const real = await this.ctx.root.resolveInside(path);
    if (real === null) return undefined;
    const st = await this.ctx.root.lstat(real);
    if (st === null || !st.isFile()) return undefined;
    if (this.hashed.files >= LIMITS.hashFiles || this.hashed.bytes + st.size > LIMITS.hashBytes) {
      if (!this.hashed.spent)
        this.ctx.log.debug(
          { path, ...LIMITS },
          'hash budget spent; further files are not checked against their packages',
        );
      this.hashed.spent = true;
      return undefined;
    }
    this.hashed.files++;
    this.hashed.bytes += st.size;
    const hash = createHash('md5');
    for await (const chunk of createReadStream(this.ctx.root.path(real))) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }

  /**
   * dnf's history first: it knows the command, the user, the version replaced and removals. What it
   * does not explain (a package installed with `rpm -i`, a host without dnf) falls back to the rpm
   * database, which keeps no history, only when each installed header was installed. That is enough
   * to say "this version was installed at T" for a package added or upgraded since the baseline; a
   * removal leaves no header, so it gets nothing there.
   */
  private async attributeRpm(all: readonly [Deviation, PackageFields][]): Promise<void> {
    if (all.length === 0) return;
    await this.step('dnf history', () => this.attributeDnf(all));
    const devs = all.filter(([d]) => d.attribution === undefined && d.actual !== null);
    if (devs.length === 0) return;
    const db = await this.findRpmDb();
    if (db === null) return;
    const specs = [...new Set(devs.map(([, i]) => (i.arch === '' ? i.name : `${i.name}.${i.arch}`)))].sort();
    const headers: RpmInstallTime[] = [];
    for (let i = 0; i < specs.length; i += 200) {
      const args = [
        '--dbpath',
        this.ctx.root.path(db),
        '-q',
        '--queryformat',
        RPM_INSTALLTIME_FORMAT,
        ...specs.slice(i, i + 200),
      ];
      // A non-zero exit only counts the names not installed; their lines are skipped by the parser.
      const res = await this.ctx.exec('rpm', args);
      const parsed = parseRpmInstallTimes(res.stdout, `rpm -q --dbpath ${db}`);
      this.logErrors(`rpm -q --dbpath ${db}`, parsed.errors);
      for (const h of parsed.entries) headers.push(h);
    }
    for (const [d, item] of devs) {
      const actual = packageFields(d.actual);
      if (actual === null) continue;
      const now = actual.version.split(', ');
      const before = new Set(packageFields(d.expected)?.version.split(', ') ?? []);
      // The header that explains the change is one that was not there before: the new kernel, not the old one kept.
      let best: RpmInstallTime | undefined;
      for (const h of headers) {
        if (h.name !== item.name || h.arch !== item.arch || !now.includes(h.evr) || before.has(h.evr)) continue;
        if (best === undefined || h.installTime > best.installTime) best = h;
      }
      if (best === undefined) continue;
      const ms = best.installTime * 1000;
      if (this.sinceMs !== undefined && ms <= this.sinceMs) continue;
      d.attribution = {
        source: 'rpm',
        at: instantToIso(ms, this.zone!),
        action: 'install',
        package: packageKey(best.name, best.arch),
        toVersion: best.evr,
      };
    }
  }

  private async attributeDnf(devs: readonly [Deviation, PackageFields][]): Promise<void> {
    const bytes = await this.readBounded(DNF_HISTORY, LIMITS.infoBytes);
    if (bytes === null) return;
    // dnf checkpoints its write-ahead log when it exits: a -wal file left means a dnf running now (or
    // killed), whose transaction is not in the main file yet. The next check sees it.
    if (((await this.ctx.root.lstat(this.ctx.root.path(`${DNF_HISTORY}-wal`)))?.size ?? 0) > 0) {
      this.ctx.log.debug(
        { file: `${DNF_HISTORY}-wal` },
        'dnf history has an unmerged write-ahead log; its newest transactions are not read',
      );
    }
    const parsed = parseDnfHistory(bytes, DNF_HISTORY);
    this.logErrors(DNF_HISTORY, parsed.errors);
    const latest = new Map<string, { tx: DnfTransaction; item: DnfItem }>();
    for (const tx of parsed.transactions) {
      if (tx.state === 'error') continue;
      for (const item of tx.items) {
        // An item that failed, or the old half of an upgrade, says nothing about what is installed now.
        if (item.state !== 'done' || !DNF_EXPLAINS.has(item.action)) continue;
        latest.set(packageKey(item.name, item.arch), { tx, item });
      }
    }
    const users = await this.passwd();
    for (const [d, pkg] of devs) {
      const found = latest.get(packageKey(pkg.name, pkg.arch));
      if (!found) continue;
      const { tx, item } = found;
      const ms = tx.begin * 1000;
      if (this.sinceMs !== undefined && ms <= this.sinceMs) continue;
      const actual = packageFields(d.actual);
      const removal = item.action === 'remove' || item.action === 'obsoleted';
      // The latest transaction must account for the host as it is now: gone after a removal, this very
      // version after an install. Anything else (an rpm -i since, a hand-edited database) explains nothing.
      if (removal ? actual !== null : actual === null || !actual.version.split(', ').some((v) => sameEvr(v, item.evr)))
        continue;
      const a: Attribution = {
        source: 'dnf-history',
        at: instantToIso(ms, this.zone!),
        action: item.action,
        package: packageKey(item.name, item.arch),
      };
      const replaced = tx.items.find(
        (o) =>
          o.name === item.name &&
          o.arch === item.arch &&
          (o.action === 'upgraded' || o.action === 'downgraded' || o.action === 'reinstalled'),
      );
      if (removal) a.fromVersion = item.evr;
      else {
        if (replaced) a.fromVersion = replaced.evr;
        a.toVersion = item.evr;
      }
      if (tx.commandLine !== undefined) a.commandLine = tx.commandLine;
      // 4294967295 is an unset loginuid (dnf started by a service, not a login): no one to name.
      if (tx.userId >= 0 && tx.userId < 4294967295)
        a.user = users.has(tx.userId) ? `${users.get(tx.userId)!} (${tx.userId})` : `(${tx.userId})`;
      d.attribution = a;
    }
  }

  /** uid to user name from the root's /etc/passwd (empty when unreadable). */
  private async passwd(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    const text = await this.readInfoText('/etc/passwd');
    for (const line of (text ?? '').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && f[0] && /^\d+$/.test(f[2]!) && !out.has(Number(f[2]))) out.set(Number(f[2]), f[0]);
    }
    return out;
  }

  /** Where the packages collector finds rpm's database (agent/collectors/packages.ts), current location first. */
  private async findRpmDb(): Promise<string | null> {
    for (const candidate of ['/usr/lib/sysimage/rpm', '/var/lib/rpm']) {
      const real = await this.ctx.root.resolveInside(candidate);
      if (real === null || !(await this.ctx.root.lstat(real))?.isDirectory()) continue;
      for (const f of ['rpmdb.sqlite', 'Packages', 'Packages.db'])
        if ((await this.ctx.root.lstat(posix.join(real, f)))?.isFile()) return real;
    }
    return null;
  }
}

/** dnf 4's history database (libdnf's swdb); dnf 5 keeps another schema elsewhere, not read yet. */
const DNF_HISTORY = '/var/lib/dnf/history.sqlite';

/** Item actions that leave the package in the state they name: installed at this version, or gone. */
const DNF_EXPLAINS: ReadonlySet<string> = new Set([
  'install',
  'upgrade',
  'downgrade',
  'reinstall',
  'remove',
  'obsoleted',
]);

/** An EVR with an explicit epoch 0 is the same as one without (rpm prints `(none)`, dnf stores 0). */
function sameEvr(a: string, b: string): boolean {
  return a.replace(/^0:/, '') === b.replace(/^0:/, '');
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
