/** `npm run demo` is the first thing a new user runs: it must tell the whole story and succeed. */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/driftwarden.js', import.meta.url));

describe('driftwarden demo', () => {
  it('bakes, checks, drifts, refuses a tampered manifest, and shows a controller tainting the drifted host', () => {
    const r = spawnSync(process.execPath, [BIN, 'demo'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('CLEAN: the host matches its manifest');
    expect(r.stdout).toMatch(/DRIFT: 9 deviations/);
    expect(r.stdout).toMatch(/section "files" does not match its digest/);
    expect(r.stdout).toMatch(/web-2 +tainted/);
    expect(r.stdout).toContain('in the fleet, 1 host tainted, 1 drifted, 1 clean');
    expect(r.stdout).toContain('removed the demo files.');
    expect(r.status).toBe(0);
  });
});
