/** @module Every host read goes through a root prefix, so collectors run on `/`, a mounted image or a fixture tree alike. */
import { promises as fsp, type Dirent, type Stats } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { DwError } from '../shared/errors.js';
import { hostText } from './host-text.js';

/** Turn any host path into the normal absolute form: "/etc//cron.d/" → "/etc/cron.d". */
export function normalizeHostPath(hostPath: string): string {
  if (!hostPath.startsWith('/'))
    throw new DwError('DW_ERR_USAGE', `host path must be absolute: ${hostPath}`, { hostPath });
  const norm = posix.normalize(hostPath);
  if (norm.split('/').includes('..'))
    throw new DwError('DW_ERR_USAGE', `host path must not leave the root: ${hostPath}`, { hostPath });
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class HostRoot {
  /** Absolute directory on this machine that stands for the host's "/". */
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  /** Check the root is a readable directory before anything collects from it. */
  static async open(dir: string): Promise<HostRoot> {
    const root = new HostRoot(dir);
    let st: Stats;
    try {
      st = await fsp.stat(root.dir);
    } catch (err) {
      throw new DwError(
        'DW_ERR_ROOT',
        `root ${root.dir} cannot be read: ${(err as NodeJS.ErrnoException).code ?? err}`,
        { root: root.dir },
      );
    }
    if (!st.isDirectory()) throw new DwError('DW_ERR_ROOT', `root ${root.dir} is not a directory`, { root: root.dir });
    try {
      await fsp.readdir(root.dir);
    } catch (err) {
      throw new DwError(
        'DW_ERR_ROOT',
        `root ${root.dir} cannot be listed: ${(err as NodeJS.ErrnoException).code ?? err}`,
        { root: root.dir },
      );
    }
    return root;
  }

  /** The real path on this machine of a host path. */
  path(hostPath: string): string {
    const norm = normalizeHostPath(hostPath);
    return this.dir === '/' ? norm : join(this.dir, norm);
  }

  /** The host path of a real path under this root. */
  toHost(realPath: string): string {
    if (this.dir === '/') return realPath;
    const rel = realPath.slice(this.dir.length);
    return rel === '' ? '/' : rel;
  }

  async readFile(hostPath: string): Promise<Buffer> {
    return fsp.readFile(this.path(hostPath));
  }

  async readText(hostPath: string): Promise<string> {
    return hostText(await fsp.readFile(this.path(hostPath)));
  }

  /** The file's text, or null when it (or a parent) does not exist. Other errors propagate. */
  async readTextIfExists(hostPath: string): Promise<string | null> {
    try {
      return await this.readText(hostPath);
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** Directory entries sorted by name; an absent directory has none. */
  async readdir(hostPath: string): Promise<Dirent[]> {
    try {
      const entries = await fsp.readdir(this.path(hostPath), { withFileTypes: true });
      return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  }

  async lstat(hostPath: string): Promise<Stats | null> {
    try {
      return await fsp.lstat(this.path(hostPath));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** stat() that follows symlinks, but only to targets inside the root (absolute targets are re-rooted). */
  async statInside(hostPath: string): Promise<Stats | null> {
    const real = await this.resolveInside(hostPath);
    if (real === null) return null;
    try {
      return await fsp.lstat(this.path(real));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /**
   * Resolve symlinks the way a chroot would: an absolute target means the root's "/", and ".."
   * never climbs above it. Returns the resolved host path, or null when it does not exist or loops.
   */
  async resolveInside(hostPath: string): Promise<string | null> {
    const pending = normalizeHostPath(hostPath).split('/').filter(Boolean);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '.') continue;
      if (part === '..') {
        done.pop();
        continue;
      }
      const candidate = '/' + [...done, part].join('/');
      let st: Stats;
      try {
        st = await fsp.lstat(this.path(candidate));
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
      if (st.isSymbolicLink()) {
        if (++hops > 40) return null;
        const target = await fsp.readlink(this.path(candidate));
        if (target.startsWith('/')) done.length = 0;
        pending.unshift(...target.split('/').filter(Boolean));
      } else {
        done.push(part);
      }
    }
    return '/' + done.join('/');
  }
}
