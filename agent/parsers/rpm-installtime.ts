/** @module Parse `rpm -q --queryformat RPM_INSTALLTIME_FORMAT NAME.ARCH...`: when each installed header was installed. */
import { DwParseError } from '../../shared/errors.js';
import { isToken } from './package-items.js';
import { lines } from './lines.js';

/**
 * One line per installed header. INSTALLTIME is seconds since the epoch, so unlike dpkg's log it is
 * an instant, not a wall-clock time in some zone. Tab-separated: rpm forbids whitespace in all six.
 */
export const RPM_INSTALLTIME_FORMAT = '%{NAME}\\t%{ARCH}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{INSTALLTIME}\\n';

export interface RpmInstallTime {
  name: string;
  /** Empty for gpg-pubkey headers, which have none (`(none)`), as the packages collector keys them. */
  arch: string;
  /** `[EPOCH:]VERSION-RELEASE`, spelled as the packages collector spells versions. */
  evr: string;
  /** Seconds since the epoch. */
  installTime: number;
}

const NONE = '(none)';
/** rpm answers a query for a name it does not have on stdout, among the results, not on stderr. */
const NOT_INSTALLED = /^package .* is not installed$/;

/** Never throws: a line it cannot read is an error in `errors`, and the other headers still count. */
export function parseRpmInstallTimes(
  text: string,
  source: string,
): { entries: RpmInstallTime[]; errors: DwParseError[] } {
  const entries: RpmInstallTime[] = [];
  const errors: DwParseError[] = [];
  for (const [line, lineNo] of lines(text)) {
    if (line === '' || NOT_INSTALLED.test(line)) continue;
    const f = line.split('\t');
    if (f.length !== 6 || !f.every(isToken)) {
      errors.push(
        new DwParseError(
          source,
          lineNo,
          'expected 6 tab-separated fields (name, arch, epoch, version, release, installtime)',
        ),
      );
      continue;
    }
    const [name, arch, epoch, version, release, time] = f as [string, string, string, string, string, string];
    if (name === NONE || version === NONE || (epoch !== NONE && !/^\d+$/.test(epoch)) || !/^\d{1,12}$/.test(time)) {
      errors.push(new DwParseError(source, lineNo, `malformed header ${JSON.stringify(line.slice(0, 120))}`));
      continue;
    }
    entries.push({
      name,
      arch: arch === NONE ? '' : arch,
      evr: `${epoch === NONE ? '' : `${epoch}:`}${version}${release === NONE ? '' : `-${release}`}`,
      installTime: Number(time),
    });
  }
  return { entries, errors };
}
