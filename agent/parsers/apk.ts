/** @module Parse apk's installed database (`lib/apk/db/installed`) into package items. */
import { DwParseError } from '../../shared/errors.js';
import type { PackageItem } from '../../shared/schema/items.js';
import { PackageStanzas, isToken, packageKey } from './package-items.js';
import { lines } from './lines.js';

interface Stanza {
  line: number;
  name?: { value: string; line: number };
  version?: { value: string; line: number };
  arch?: { value: string; line: number };
}

/**
 * Stanzas separated by blank lines, each line `K:value` with a one-letter key: `P` name, `V`
 * version, `A` arch; the many file lines (`F`, `R`, `Z`, `a`, ...) are skipped. apk refuses any
 * other line shape ("FDB format error"), and so does this parser. apk has no per-package state:
 * being listed means installed.
 */
export function parseApkInstalled(text: string, file: string): PackageItem[] {
  const out = new PackageStanzas(file);
  let stanza: Stanza | null = null;
  for (const [line, lineNo] of lines(text)) {
    if (line === '') {
      if (stanza !== null) finish(stanza, file, out);
      stanza = null;
      continue;
    }
    if (line.length < 2 || line.charCodeAt(1) !== 0x3a /* : */)
      throw new DwParseError(file, lineNo, 'expected "K:value" with a one-letter key');
    if (stanza === null) stanza = { line: lineNo };
    const k = line[0];
    if (k !== 'P' && k !== 'V' && k !== 'A') continue;
    const field = k === 'P' ? 'name' : k === 'V' ? 'version' : 'arch';
    if (stanza[field] !== undefined)
      throw new DwParseError(file, lineNo, `second ${k}: line in one package (a blank line must separate packages)`);
    stanza[field] = { value: line.slice(2), line: lineNo };
  }
  if (stanza !== null) finish(stanza, file, out);
  return out.items();
}

function finish(stanza: Stanza, file: string, out: PackageStanzas): void {
  const { name, version, arch } = stanza;
  if (name === undefined) throw new DwParseError(file, stanza.line, 'package has no P: (name) line');
  if (!isToken(name.value))
    throw new DwParseError(file, name.line, `malformed package name ${JSON.stringify(name.value)}`);
  if (version === undefined)
    throw new DwParseError(file, stanza.line, `package ${name.value} has no V: (version) line`);
  if (!isToken(version.value))
    throw new DwParseError(file, version.line, `malformed version ${JSON.stringify(version.value)} for ${name.value}`);
  // Databases written before apk recorded architectures have no A: line.
  const archValue = arch?.value ?? '';
  if (arch !== undefined && !isToken(archValue))
    throw new DwParseError(file, arch.line, `malformed architecture ${JSON.stringify(archValue)} for ${name.value}`);
  out.add(
    {
      key: packageKey(name.value, archValue),
      manager: 'apk',
      name: name.value,
      arch: archValue,
      version: version.value,
      state: 'installed',
    },
    stanza.line,
  );
}
