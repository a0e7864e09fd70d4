/** @module Write a file so that a reader sees the old or the new content, never half of either. */
import { closeSync, fsyncSync, openSync, renameSync, writeSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  writeFileAtomicWith(path, mode, (fd) => writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data));
}

/**
 * writeFileAtomic for content produced in pieces (a manifest of 100k+ files is tens of megabytes of
 * JSON): the pieces go to the file a megabyte at a time, never held whole in memory.
 */
export function writeFileAtomicPieces(
  path: string,
  produce: (write: (piece: string) => void) => void,
  mode = 0o644,
): void {
  writeFileAtomicWith(path, mode, (fd) => {
    let parts: string[] = [];
    let chars = 0;
    const flush = () => {
      writeSync(fd, Buffer.from(parts.join('')));
      parts = [];
      chars = 0;
    };
    produce((piece) => {
      parts.push(piece);
      if ((chars += piece.length) >= 1 << 20) flush();
    });
    flush();
  });
}

/** Temp file beside the target, written, fsynced, renamed over it; removed again if writing fails. */
function writeFileAtomicWith(path: string, mode: number, write: (fd: number) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', mode);
  try {
    write(fd);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
