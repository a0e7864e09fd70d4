/** @module How a stat() becomes the type and mode a file item records; shared by the walk and the watcher. */
import type { Stats } from 'node:fs';
import type { FileItem } from '../../shared/schema/items.js';

export function fileTypeOf(st: Stats): FileItem['type'] {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** Permission bits including setuid, setgid and sticky, as four octal digits. */
export function modeOf(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}
