/**
 * @module Users and groups (passwd, group; from shadow only whether a password is set, locked or
 * disabled and when it changed, never the hash), sudoers rules, and every user's authorized ssh keys by
 * fingerprint. The hash and the key text are dropped as they are parsed: neither reaches an item, a
 * manifest, a report or a log.
 */
import { sha256Hex } from '../../shared/canonical.js';
import { DwError } from '../../shared/errors.js';
import type { AccountItem } from '../../shared/schema/items.js';
import { parseAuthorizedKeys, parseGroup, parsePasswd, parseShadow, sudoersRules } from '../parsers/accounts.js';
import { normalizeHostPath, type HostRoot } from '../root.js';
import type { Collector } from './types.js';

const PASSWD = '/etc/passwd';
const GROUP = '/etc/group';
const SHADOW = '/etc/shadow';
const SUDOERS = '/etc/sudoers';
const SUDOERS_D = '/etc/sudoers.d';
/** sshd's default AuthorizedKeysFile. */
const KEY_FILES = ['.ssh/authorized_keys', '.ssh/authorized_keys2'];

/** Every Linux host has passwd and group: without them the collector has nothing to stand on and fails. */
async function required(root: HostRoot, path: string): Promise<string> {
  const text = await root.readTextIfExists(path);
  if (text === null)
    throw new DwError('DW_ERR_ROOT', `${path} not found under the root: users and groups cannot be collected`, {
      path,
    });
  return text;
}

export const accounts: Collector<'accounts'> = {
  name: 'accounts',
  async collect(ctx) {
    const { root } = ctx;
    const warnings: string[] = [];
    const items: AccountItem[] = [];
    const users = parsePasswd(await required(root, PASSWD));
    const groups = parseGroup(await required(root, GROUP));
    // Absent on images without shadow passwords (some containers); unreadable (not root) throws: a failed collection.
    const shadowText = await root.readTextIfExists(SHADOW);
    if (shadowText === null) warnings.push(`${SHADOW} not found under the root: password states not collected`);
    const shadow = shadowText === null ? null : parseShadow(shadowText);
    const seenUser = new Set<string>();
    for (const u of users) {
      // The first entry of a name is the one the system uses.
      if (seenUser.has(u.name)) continue;
      seenUser.add(u.name);
      const s = shadow?.get(u.name);
      items.push({
        key: `user:${u.name}`,
        kind: 'user',
        uid: u.uid,
        gid: u.gid,
        home: u.home,
        shell: u.shell,
        gecos: u.gecos,
        ...(s ? { password: s.password, passwordChanged: s.changed } : {}),
      });
    }
    const seenGroup = new Set<string>();
    for (const g of groups) {
      if (seenGroup.has(g.name)) continue;
      seenGroup.add(g.name);
      items.push({ key: `group:${g.name}`, kind: 'group', gid: g.gid, members: g.members });
    }
    const sudoFiles = [
      SUDOERS,
      ...(await root.readdir(SUDOERS_D)).filter((e) => !e.isDirectory()).map((e) => `${SUDOERS_D}/${e.name}`),
    ];
    for (const path of sudoFiles) {
      const bytes = await root.readFile(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (bytes === null) continue;
      items.push({
        key: `sudoers:${path}`,
        kind: 'sudoers',
        sha256: sha256Hex(bytes),
        rules: sudoersRules(bytes.toString('utf8')),
      });
    }
    const keys = new Map<string, AccountItem>();
    for (const u of users) {
      let home: string;
      try {
        home = normalizeHostPath(u.home);
      } catch {
        continue;
      }
      if (home === '/') continue;
      for (const rel of KEY_FILES) {
        const file = `${home}/${rel}`;
        // A link could point anywhere on the host: authorized_keys is read only where it really is.
        const st = await root.lstat(file);
        if (st === null) continue;
        if (!st.isFile()) {
          warnings.push(`${file}: not a regular file, not read`);
          continue;
        }
        const { keys: found, bad } = parseAuthorizedKeys(await root.readText(file));
        if (bad > 0) warnings.push(`${file}: ${bad} line(s) that hold no key`);
        for (const k of found) {
          const key = `key:${u.name}:${k.fingerprint}`;
          if (!keys.has(key)) keys.set(key, { key, kind: 'key', type: k.type, file, options: k.options });
        }
      }
    }
    items.push(...keys.values());
    return { items: items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)), warnings };
  },
};
