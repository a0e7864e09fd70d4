/** @module passwd, group, shadow (only the state of a password), sudoers and authorized_keys, parsed without keeping a secret. */
import { createHash } from 'node:crypto';
import { lines } from './lines.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

const isId = (s: string | undefined) => s !== undefined && /^\d+$/.test(s);

/** passwd(5); NIS `+`/`-` lines and lines without seven fields are skipped (they name no local user). */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const [line] of lines(text)) {
    const f = line.split(':');
    if (f.length < 7 || f[0] === '' || f[0]!.startsWith('+') || f[0]!.startsWith('-') || !isId(f[2]) || !isId(f[3]))
      continue;
    out.push({
      name: f[0]!,
      uid: Number(f[2]),
      gid: Number(f[3]),
      gecos: f[4]!,
      home: f[5]!,
      shell: f.slice(6).join(':'),
    });
  }
  return out;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const [line] of lines(text)) {
    const f = line.split(':');
    if (f.length < 4 || f[0] === '' || f[0]!.startsWith('+') || f[0]!.startsWith('-') || !isId(f[2])) continue;
    out.push({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean).sort() });
  }
  return out;
}

export type PasswordState = 'set' | 'none' | 'locked' | 'disabled';

export interface ShadowEntry {
  password: PasswordState;
  /** Days since 1970-01-01 as written, `''` when empty. */
  changed: string;
}

/**
 * What a shadow password field means, never the field itself: empty = no password needed, `!` or
 * `!!` or `*` or `!*` = no password login, `!` + a hash = locked (`passwd -l`), else a hash = set.
 */
export function passwordState(field: string): PasswordState {
  if (field === '') return 'none';
  if (field.startsWith('!')) return field.length > 1 && field[1] !== '!' && field[1] !== '*' ? 'locked' : 'disabled';
  if (field.startsWith('*')) return 'disabled';
  return 'set';
}

/** shadow(5) reduced to what may be stored: the hash is dropped at once. */
export function parseShadow(text: string): Map<string, ShadowEntry> {
  const out = new Map<string, ShadowEntry>();
  for (const [line] of lines(text)) {
    const f = line.split(':');
    if (f.length < 3 || f[0] === '') continue;
    out.set(f[0]!, { password: passwordState(f[1]!), changed: f[2]! });
  }
  return out;
}

/**
 * sudoers(5) as rules: continuation lines joined, blanks squeezed, comments and empty lines dropped.
 * `#include`/`#includedir` look like comments but are directives, so they stay; so does a line
 * starting `#<digits>` after a user list (`%admin ALL=(#0) ALL` never starts a line with `#`).
 */
export function sudoersRules(text: string): string[] {
  const out: string[] = [];
  let pending = '';
  for (const [raw] of lines(text)) {
    if (raw.endsWith('\\')) {
      pending += raw.slice(0, -1) + ' ';
      continue;
    }
    const line = (pending + raw).replace(/\s+/g, ' ').trim();
    pending = '';
    if (line === '') continue;
    if (line.startsWith('#') && !/^#include(dir)?\s/.test(line)) continue;
    out.push(line);
  }
  return out;
}

export interface AuthorizedKey {
  type: string;
  /** `SHA256:<base64 without padding>` of the key blob, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  options: string;
}

const KEY_TYPE =
  /^(ssh-(rsa|dss|ed25519|ed448)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com|ssh-(rsa|ed25519)-cert-v01@openssh\.com|ecdsa-sha2-nistp\d+-cert-v01@openssh\.com)$/;

export function fingerprint(blobBase64: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(blobBase64, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** Split off the options field: up to the first blank outside double quotes (sshd(8), AUTHORIZED_KEYS FILE FORMAT). */
function splitOptions(line: string): [string, string] {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '\t')) return [line.slice(0, i), line.slice(i).trim()];
  }
  return [line, ''];
}

/** authorized_keys: each key by fingerprint with its type and options; comments (often an e-mail) and the key text are not kept. Lines that hold no key are returned as `bad` counts. */
export function parseAuthorizedKeys(text: string): { keys: AuthorizedKey[]; bad: number } {
  const keys: AuthorizedKey[] = [];
  let bad = 0;
  for (const [raw] of lines(text)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let options = '';
    let rest = line;
    if (!KEY_TYPE.test(line.split(/\s+/)[0]!)) [options, rest] = splitOptions(line);
    const [type, blob] = rest.split(/\s+/);
    if (!type || !blob || !KEY_TYPE.test(type) || !/^[A-Za-z0-9+/]+=*$/.test(blob)) {
      bad++;
      continue;
    }
    keys.push({ type, fingerprint: fingerprint(blob), options });
  }
  return { keys, bad };
}
