/**
 * Command-line options for the bench scripts, with nothing else imported so `--help` works without a
 * build: `-h`/`--help` prints the script's header comment and exits 0 without running anything; an
 * unknown option, or one without its value, is an error (exit 2) instead of a silently ignored typo.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * `spec` maps option names (without --) to 'value' or 'flag'; returns {name: string | true} for those
 * given. `file` is the script (import.meta.url), whose first comment block is its help.
 */
export function parseCli(url, spec, argv = process.argv.slice(2)) {
  const file = url.startsWith('file:') ? fileURLToPath(url) : url;
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      const text = readFileSync(file, 'utf8');
      const start = text.indexOf('/**');
      process.stdout.write(`${text.slice(start, text.indexOf('*/', start) + 2)}\n`);
      process.exit(0);
    }
    const name = a.startsWith('--') ? a.slice(2) : null;
    if (name === null || !(name in spec)) fail(`unknown option ${a} (see --help)`);
    if (spec[name] === 'flag') out[name] = true;
    else {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) fail(`${a} needs a value`);
      out[name] = argv[++i];
    }
  }
  return out;
}

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** A measurement that is empty or smaller than asked is not reported: stop with exit 2. */
export function mustMeasure(ok, what) {
  if (!ok) fail(`refusing to report: ${what}`);
}
