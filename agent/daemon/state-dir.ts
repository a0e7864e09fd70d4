/**
 * @module The agent's state directory (0700): its host credential (0600), the report sequence counter,
 * the stat cache, the spool and the last scan's summary. Every write is atomic, so a kill at any
 * moment leaves the old or the new content, never half.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';

export class StateDir {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }

  get credentialFile(): string {
    return join(this.dir, 'credential');
  }
  get statCacheFile(): string {
    return join(this.dir, 'stat-cache');
  }
  get spoolDir(): string {
    return join(this.dir, 'spool');
  }
  get lastScanFile(): string {
    return join(this.dir, 'last-scan.json');
  }
  /** Present while the controller refuses the stored credential (401): since when, why, and what re-enrollment said. */
  get credentialRefusedFile(): string {
    return join(this.dir, 'credential-refused.json');
  }

  /** Present while a scan could not be delivered (see UndeliveredScan in shared/schema/report.ts). */
  get undeliveredScanFile(): string {
    return join(this.dir, 'undelivered-scan.json');
  }

  clearUndeliveredScan(): void {
    rmSync(this.undeliveredScanFile, { force: true });
  }

  clearCredentialRefused(): void {
    rmSync(this.credentialRefusedFile, { force: true });
  }

  readCredential(): string | null {
    try {
      const text = readFileSync(this.credentialFile, 'utf8').trim();
      return text || null;
    } catch {
      return null;
    }
  }

  /** The host credential is a secret: 0600, written atomically. */
  writeCredential(secret: string): void {
    writeFileAtomic(this.credentialFile, secret + '\n', 0o600);
    chmodSync(this.credentialFile, 0o600);
  }

  /**
   * The next report sequence number. It is persisted before use, so it increases across restarts
   * and crashes: the controller refuses any seq it has seen, and a reused one would be lost.
   */
  nextSeq(): number {
    const file = join(this.dir, 'seq');
    let current = 0;
    try {
      current = Number(readFileSync(file, 'utf8').trim()) || 0;
    } catch {
      current = 0;
    }
    const next = current + 1;
    writeFileAtomic(file, `${next}\n`, 0o600);
    return next;
  }

  readJson<T>(file: string): T | null {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch {
      return null;
    }
  }

  writeJson(file: string, value: unknown): void {
    writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', 0o600);
  }
}
