/**
 * @module One agent per state directory. Two agents sharing one would reuse sequence numbers (the
 * controller refuses one of each pair) and race on the spool. The lock is a pid file: a stale one
 * (its process is gone, e.g. after a SIGKILL) is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DwError } from '../../shared/errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take the lock for `owner` (the agent's pid: its prepare task takes it for the daemon, before it writes
 * anything there) or throw naming the other agent; returns the release function.
 */
export function lockStateDir(dir: string, owner: number = process.pid): () => void {
  const file = join(dir, 'agent.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${owner}\n`);
      closeSync(fd);
      return () => unlockStateDir(dir, owner);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const other = Number(readFileSync(file, 'utf8').trim());
      if (other === owner) return () => unlockStateDir(dir, owner);
      if (Number.isInteger(other) && other > 0 && other !== process.pid && alive(other)) {
        throw new DwError(
          'DW_ERR_CONFIG',
          `another agent (pid ${other}) is running with state directory ${dir}; one agent per state directory`,
          { pid: other },
        );
      }
      unlinkSync(file); // stale: its process is gone
    }
  }
  throw new DwError('DW_ERR_IO', `cannot take the lock ${file}`);
}

/** Release the lock if `owner` holds it. */
export function unlockStateDir(dir: string, owner: number = process.pid): void {
  const file = join(dir, 'agent.pid');
  try {
    if (readFileSync(file, 'utf8').trim() === String(owner)) unlinkSync(file);
  } catch {
    // already gone
  }
}
