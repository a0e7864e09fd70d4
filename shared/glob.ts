/**
 * @module The one glob compiler: policy rules, exemptions, the catch-all guard, default severities and
 * the agent's ignore globs and sysctl excludes all match keys through it, so they cannot disagree.
 *
 * Every character of a key is an ordinary character: newline, CR, U+2028/U+2029, NUL and the U+FFFD
 * that stands for an invalid UTF-8 byte in a file name. picomatch compiles `**` (and negations) to
 * `.`, and without the `s` flag `.` stops at line terminators, so `/usr/**` did not match
 * `/usr/bin/sshd\nbackdoor`: a name with a newline escaped every rule. Here the regex is always
 * built with `s`, and picomatch's optional trailing slash after a `*` is dropped (a host path never
 * ends in `/`, and `dir/*` must not match `dir/x/`).
 */
import picomatch from 'picomatch';

/**
 * How `/` is treated:
 *   path  `*` and `?` stay inside one segment, `**` crosses segments (host paths);
 *   name  the whole key is one segment, so `*` also crosses `/` (package names, dotted sysctl names,
 *         where a `/` stands for a dot inside one component: `net.ipv4.conf.eth0/100.rp_filter`).
 */
export type GlobStyle = 'path' | 'name';

export interface GlobOptions {
  /**
   * Unbalanced `[`, `{` or `(` and regexes picomatch cannot build are errors rather than literals
   * that quietly match nothing. On for the controller's policy and exemptions (refused at load);
   * off for the agent, whose globs are baked into signed manifests that must keep scanning.
   */
  strict?: boolean;
}

/** What picomatch makes of `?` (and the body of `*`): any character but the separator. */
const NOT_SLASH = '[^/]';
/** picomatch's "maybe a trailing slash" after a star or a bracket, always last in its output. */
const MAYBE_SLASH = '\\/?';

/** The regex for one glob: anchored, `s` flag, no trailing-slash allowance. Throws on a bad glob when strict. */
export function globRegex(glob: string, style: GlobStyle, opts: GlobOptions = {}): RegExp {
  if (opts.strict && /(?:^|[^\\])(?:\\\\)*\\$/.test(glob)) throw new SyntaxError('a trailing "\\" escapes nothing');
  // fastpaths off: picomatch's shortcuts for `*`, `**`, `*.ext` produce their own sources; the
  // general parser's output is the one whose shape is known here.
  const options: picomatch.PicomatchOptions = {
    dot: true,
    windows: false,
    fastpaths: false,
    strictBrackets: opts.strict === true,
  };
  // The typings give parse() only maxLength; it takes (and needs) the compile options.
  const parse = picomatch.parse as (
    glob: string,
    options: picomatch.PicomatchOptions,
  ) => { output: string; negated: boolean };
  let parsed: { output: string; negated: boolean };
  try {
    parsed = parse(glob, options);
  } catch (err) {
    // Lenient callers (the agent's baked ignores) get a glob that matches nothing: an ignore that
    // fails only reports more, and a scan must not stop on it.
    if (opts.strict) throw err;
    return /(?!)/;
  }
  let source = parsed.output;
  if (source.endsWith(MAYBE_SLASH) && !source.endsWith(`\\${MAYBE_SLASH}`))
    source = source.slice(0, -MAYBE_SLASH.length);
  // In a name nothing is a separator. (Swapping `/` for NUL, as this code once did, fails:
  // picomatch drops NUL from a pattern, so `eth0/100.*` became `eth0100.*`.)
  if (style === 'name') source = source.replaceAll(NOT_SLASH, '[^]');
  const wrapped = parsed.negated ? `^(?!^(?:${source})$).*$` : `^(?:${source})$`;
  try {
    return new RegExp(wrapped, 's');
  } catch (err) {
    if (opts.strict) throw err;
    return /(?!)/;
  }
}

/** Whether a glob is a plain string (no glob syntax, nothing escaped): it then matches only itself. */
export function isLiteralGlob(glob: string): boolean {
  return !picomatch.scan(glob).isGlob && !glob.includes('\\');
}

/**
 * One test for a list of globs (true when any matches): literal globs by set lookup, the rest
 * through one regex joining every glob's. A key equal to a glob always matches it, as in picomatch.
 */
export function globMatcher(
  globs: readonly string[],
  style: GlobStyle,
  opts: GlobOptions = {},
): (key: string) => boolean {
  if (globs.length === 0) return () => false;
  const exact = new Set<string>(globs);
  const sources: string[] = [];
  for (const g of globs) if (!isLiteralGlob(g)) sources.push(globRegex(g, style, opts).source);
  const re = sources.length > 0 ? new RegExp(sources.join('|'), 's') : null;
  if (re === null) return (key) => exact.has(key);
  return (key) => exact.has(key) || re.test(key);
}
