/** @module Kernel modules: the ones loaded now (proc/modules) beside the ones declared to load at boot and the ones blacklisted. */
import type { KernelModuleItem } from '../../shared/schema/items.js';
import { parseModprobeConf, parseModulesList, parseProcModules, sizeClass } from '../parsers/kernel-modules.js';
import type { HostRoot } from '../root.js';
import type { Collector } from './types.js';

const PROC_MODULES = '/proc/modules';
/** Debian's list, read by systemd-modules-load through a compatibility link. */
const ETC_MODULES = '/etc/modules';
/** modules-load.d(5) and modprobe.d(5) search paths, highest priority first: a file name found earlier masks the same name later. */
const MODULES_LOAD_DIRS = [
  '/etc/modules-load.d',
  '/run/modules-load.d',
  '/usr/local/lib/modules-load.d',
  '/usr/lib/modules-load.d',
  '/lib/modules-load.d',
];
const MODPROBE_DIRS = [
  '/etc/modprobe.d',
  '/run/modprobe.d',
  '/usr/local/lib/modprobe.d',
  '/usr/lib/modprobe.d',
  '/lib/modprobe.d',
];

/** The `.conf` files of a search path, each name once (the first directory wins), sorted by name as systemd and kmod apply them; a directory reached twice (merged /usr) is read once. */
async function confFiles(root: HostRoot, dirs: readonly string[]): Promise<string[]> {
  const byName = new Map<string, string>();
  const seen = new Set<string>();
  for (const dir of dirs) {
    const real = await root.resolveInside(dir);
    if (real === null || seen.has(real)) continue;
    seen.add(real);
    for (const e of await root.readdir(dir)) {
      if (e.name.endsWith('.conf') && !byName.has(e.name)) byName.set(e.name, `${dir}/${e.name}`);
    }
  }
  return [...byName.keys()].sort().map((n) => byName.get(n)!);
}

export const kernelModules: Collector<'kernel-modules'> = {
  name: 'kernel-modules',
  async collect(ctx) {
    const { root } = ctx;
    const warnings: string[] = [];
    const items = new Map<string, KernelModuleItem>();
    const item = (name: string): KernelModuleItem => {
      let it = items.get(name);
      if (!it)
        items.set(
          name,
          (it = {
            key: name,
            name,
            loaded: false,
            sizeClass: null,
            taint: null,
            declared: [],
            blacklisted: [],
            installCommand: null,
          }),
        );
      return it;
    };
    // Absent: a kernel built without module support, or an offline image. Present but unreadable
    // is a failure (it throws), never an empty list.
    const proc = await root.readTextIfExists(PROC_MODULES);
    if (proc === null) {
      // On `/` that is the kernel's answer (no module support, or a sandbox without them); under another root, an image without /proc.
      if (root.dir === '/') ctx.log.debug({ path: PROC_MODULES }, 'no proc/modules: this kernel loads no modules');
      else warnings.push(`${PROC_MODULES} not found under the root: loaded modules not collected`);
    } else {
      for (const m of parseProcModules(proc))
        Object.assign(item(m.name), { loaded: true, sizeClass: sizeClass(m.size), taint: m.taint });
    }
    for (const file of [ETC_MODULES, ...(await confFiles(root, MODULES_LOAD_DIRS))]) {
      // A same-name link to /dev/null masks a vendor file; it reads as empty.
      const text = await root.readTextIfExists(file);
      if (text === null) continue;
      for (const name of parseModulesList(text))
        if (!item(name).declared.includes(file)) item(name).declared.push(file);
    }
    for (const file of await confFiles(root, MODPROBE_DIRS)) {
      const text = await root.readTextIfExists(file);
      if (text === null) continue;
      const conf = parseModprobeConf(text);
      for (const name of conf.blacklist) if (!item(name).blacklisted.includes(file)) item(name).blacklisted.push(file);
      // kmod uses the first install command it finds for a module.
      for (const [name, command] of conf.install)
        if (item(name).installCommand === null) item(name).installCommand = command;
    }
    return { items: [...items.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)), warnings };
  },
};
