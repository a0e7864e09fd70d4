/**
 * @module The durable spool: every report is on disk (written, fsynced, renamed, directory fsynced)
 * before it is sent, and removed only when the controller acknowledges it. It is bounded: past the
 * bound the oldest reports go first (never the newest scan), and the count of what was dropped is
 * kept and sent with the next report, so the loss itself is visible.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { Report } from '../../shared/schema/report.js';

export interface SpoolEntry {
  file: string;
  seq: number;
  kind: Report['kind'];
  bytes: number;
}

const NAME = /^(\d{12})-(scan|heartbeat|event)-[0-9a-f-]{36}\.json$/;

/** Refused reports kept in spool/rejected (the newest ones). */
const MAX_REJECTED = 200;

export class Spool {
  readonly rejectedDir: string;
  private readonly droppedFile: string;

  constructor(
    readonly dir: string,
    readonly maxBytes = 64 * 1024 * 1024,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.rejectedDir = join(dir, 'rejected');
    mkdirSync(this.rejectedDir, { recursive: true, mode: 0o700 });
    this.droppedFile = join(dir, 'dropped');
  }

  /** Oldest first (by seq, which the file name carries). Leftover temp files from a crash are removed. */
  list(): SpoolEntry[] {
    const out: SpoolEntry[] = [];
    for (const name of readdirSync(this.dir)) {
      if (name.endsWith('.tmp')) {
        // Only a dead writer's: `agent status` (another process) lists the spool while the daemon writes.
        if (!writerAlive(name)) rmSync(join(this.dir, name), { force: true });
        continue;
      }
      const m = NAME.exec(name);
      if (!m) continue;
      const file = join(this.dir, name);
      out.push({ file, seq: Number(m[1]), kind: m[2] as Report['kind'], bytes: statSync(file).size });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Durably store a report; returns its entry. Heartbeats waiting to be sent are superseded by a newer one. */
  add(report: Report): SpoolEntry {
    const name = `${String(report.seq).padStart(12, '0')}-${report.kind}-${report.reportId}.json`;
    const file = join(this.dir, name);
    const body = JSON.stringify(report);
    writeFileAtomic(file, body, 0o600);
    this.syncDir();
    const entries = this.list();
    if (report.kind === 'heartbeat') {
      // A heartbeat only says "alive, unchanged"; only the newest one waiting matters.
      for (const e of entries) if (e.kind === 'heartbeat' && e.seq < report.seq) this.remove(e);
    }
    this.enforceBound();
    return { file, seq: report.seq, kind: report.kind, bytes: Buffer.byteLength(body) };
  }

  /** The report, or null when it is gone since it was listed (superseded by a newer heartbeat, or dropped for space). */
  read(entry: SpoolEntry): Report | null {
    let text: string;
    try {
      text = readFileSync(entry.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return JSON.parse(text) as Report;
  }

  /** The same report, rewritten in place (cut to fit the controller's limits): same seq, same id. */
  replace(entry: SpoolEntry, report: Report): SpoolEntry {
    const body = JSON.stringify(report);
    writeFileAtomic(entry.file, body, 0o600);
    this.syncDir();
    return { ...entry, bytes: Buffer.byteLength(body) };
  }

  /** The controller acknowledged it. */
  ack(entry: SpoolEntry): void {
    this.remove(entry);
    this.syncDir();
  }

  /** The controller refused it for good (a 4xx no retry can fix): kept aside for a person to read. */
  reject(entry: SpoolEntry, reason: string): void {
    const base = entry.file.slice(this.dir.length + 1);
    renameSync(entry.file, join(this.rejectedDir, base));
    writeFileAtomic(join(this.rejectedDir, `${base}.reason`), reason + '\n', 0o600);
    this.syncDir();
    // Kept for a person to read, not forever: a misconfigured host refused every minute would fill the disk.
    const kept = readdirSync(this.rejectedDir)
      .filter((n) => n.endsWith('.json'))
      .sort();
    for (const name of kept.slice(0, Math.max(0, kept.length - MAX_REJECTED))) {
      for (const f of [name, `${name}.reason`]) {
        try {
          unlinkSync(join(this.rejectedDir, f));
        } catch {
          // already gone
        }
      }
    }
  }

  depth(): { reports: number; bytes: number; dropped: number } {
    const entries = this.list();
    return { reports: entries.length, bytes: entries.reduce((n, e) => n + e.bytes, 0), dropped: this.dropped() };
  }

  /** Reports the controller refused for good, kept for a person to read. */
  rejected(): number {
    return readdirSync(this.rejectedDir).filter((n) => n.endsWith('.json')).length;
  }

  /** Reports dropped for space and not yet announced to the controller. */
  dropped(): number {
    try {
      return Number(readFileSync(this.droppedFile, 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  }

  /** Called once a report that announced `count` drops was acknowledged. */
  clearDropped(count: number): void {
    const left = Math.max(0, this.dropped() - count);
    writeFileAtomic(this.droppedFile, `${left}\n`, 0o600);
  }

  private enforceBound(): void {
    const entries = this.list();
    let total = entries.reduce((n, e) => n + e.bytes, 0);
    if (total <= this.maxBytes) return;
    const newestScan = [...entries].reverse().find((e) => e.kind === 'scan');
    let dropped = 0;
    for (const e of entries) {
      if (total <= this.maxBytes) break;
      if (e === newestScan) continue;
      this.remove(e);
      total -= e.bytes;
      dropped++;
    }
    if (dropped > 0) writeFileAtomic(this.droppedFile, `${this.dropped() + dropped}\n`, 0o600);
    this.syncDir();
  }

  private remove(e: SpoolEntry): void {
    try {
      unlinkSync(e.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** A rename is durable only once the directory itself is synced. */
  private syncDir(): void {
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** Whether the process that is writing a temp file (`.NAME.PID.tmp`, see writeFileAtomic) still runs. */
function writerAlive(tempName: string): boolean {
  const pid = Number(/\.(\d+)\.tmp$/.exec(tempName)?.[1]);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
