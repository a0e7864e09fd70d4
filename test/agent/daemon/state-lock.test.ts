import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockStateDir } from '../../../agent/daemon/state-lock.js';
import { tempDir } from '../../helpers/tmp.js';

describe('the state directory lock', () => {
  it('refuses a second agent while the first runs, naming its pid', async () => {
    const dir = tempDir();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      writeFileSync(join(dir, 'agent.pid'), `${other.pid}\n`);
      expect(() => lockStateDir(dir)).toThrow(
        new RegExp(`another agent \\(pid ${other.pid}\\) is running with state directory`),
      );
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('takes over a stale lock whose process is gone, and releases it', async () => {
    const dir = tempDir();
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => gone.on('exit', r));
    writeFileSync(join(dir, 'agent.pid'), `${gone.pid}\n`);
    const release = lockStateDir(dir);
    expect(existsSync(join(dir, 'agent.pid'))).toBe(true);
    release();
    expect(existsSync(join(dir, 'agent.pid'))).toBe(false);
  });
});
