/** @module Parse the output of `rpm -qa --queryformat RPM_QUERY_FORMAT` into package items. */
import { DwParseError } from '../../shared/errors.js';
import type { PackageItem } from '../../shared/schema/items.js';
import { byKey, isToken, packageKey } from './package-items.js';
import { lines } from './lines.js';

/**
 * The query the collector runs and this parser reads: one line per installed header, fields
 * tab-separated (rpm forbids whitespace in all five). `%{EPOCH}` prints `(none)` when unset.
 */
export const RPM_QUERY_FORMAT = '%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n';

const NONE = '(none)';

/**
 * `version` is `[EPOCH:]VERSION-RELEASE`, as rpm and dnf print an EVR.
 *
 * IMPORTANT: unlike dpkg and apk, rpm may hold several headers with one name and arch: install-only
 * packages (every `kernel-core` kept for fallback) and `gpg-pubkey`, one header per imported
 * signing key. They become one item whose version lists every installed EVR, sorted and joined
 * with ", ", so the key stays name:arch and removing an old kernel or importing a key is a change
 * to that item. gpg-pubkey headers (arch `(none)`, keyed `gpg-pubkey`) are kept, not skipped: a
 * newly trusted signing key is exactly the drift a security team wants to see.
 */
export function parseRpmQuery(text: string, source: string): PackageItem[] {
  const byName = new Map<string, { name: string; arch: string; versions: string[] }>();
  for (const [line, lineNo] of lines(text)) {
    if (line === '') continue;

    const f = line.split('\t');
    if (f.length !== 5)
      throw new DwParseError(
        source,
        lineNo,
        `expected 5 tab-separated fields (name, epoch, version, release, arch), got ${f.length}`,
      );
    const [name, epoch, version, release, rawArch] = f as [string, string, string, string, string];
    if (!isToken(name) || name === NONE)
      throw new DwParseError(source, lineNo, `malformed package name ${JSON.stringify(name)}`);
    if (epoch !== NONE && !isDigits(epoch))
      throw new DwParseError(source, lineNo, `malformed epoch ${JSON.stringify(epoch)} for ${name}`);
    if (!isToken(version) || version === NONE)
      throw new DwParseError(source, lineNo, `malformed version ${JSON.stringify(version)} for ${name}`);
    if (!isToken(release))
      throw new DwParseError(source, lineNo, `malformed release ${JSON.stringify(release)} for ${name}`);
    if (!isToken(rawArch))
      throw new DwParseError(source, lineNo, `malformed architecture ${JSON.stringify(rawArch)} for ${name}`);

    const arch = rawArch === NONE ? '' : rawArch;
    const evr = `${epoch === NONE ? '' : `${epoch}:`}${version}${release === NONE ? '' : `-${release}`}`;
    const key = packageKey(name, arch);
    const entry = byName.get(key);
    if (entry === undefined) byName.set(key, { name, arch, versions: [evr] });
    else entry.versions.push(evr);
  }

  const items: PackageItem[] = [];
  for (const [key, { name, arch, versions }] of byName) {
    versions.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    items.push({ key, manager: 'rpm', name, arch, version: versions.join(', '), state: 'installed' });
  }
  return items.sort(byKey);
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
