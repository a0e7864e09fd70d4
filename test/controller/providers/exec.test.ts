/** @module The exec provider: an argument vector (no shell), the host as JSON on stdin and DRIFTWARDEN_* variables, exit codes, a timeout. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execProvider } from '../../../controller/providers/exec.js';
import { ProviderError } from '../../../controller/providers/types.js';
import { FIXTURES, tempDir } from '../../helpers/tmp.js';
import { context, target } from './recorder.js';

const SCRIPT = join(FIXTURES, 'providers', 'exec-replace.mjs');

describe('exec provider', () => {
  it('runs the argument vector as is (no shell), with the host on stdin and in the environment; exit 0 accepts', async () => {
    const dir = tempDir();
    const out = join(dir, 'call.json');
    const canary = join(dir, 'pwned');
    const p = execProvider({
      command: [process.execPath, SCRIPT, out, 'ok', `; touch ${canary}`, '$(id)'],
      timeout: '10s',
    });
    const r = await p.replace(target(), context());
    expect(r).toEqual({ ref: 'op-7781', detail: `${process.execPath} accepted (op-7781)` });
    const call = JSON.parse(readFileSync(out, 'utf8'));
    expect(call.rest).toEqual([`; touch ${canary}`, '$(id)']);
    expect(existsSync(canary)).toBe(false);
    expect(call.env).toMatchObject({
      DRIFTWARDEN_ACTION: 'replace',
      DRIFTWARDEN_HOST_ID: '4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e',
      DRIFTWARDEN_HOSTNAME: 'i-0abc123def4567890.eu-west-1.compute.internal',
      DRIFTWARDEN_GROUP: 'web-asg',
      DRIFTWARDEN_REPLACEMENT_ID: 'r-1',
      DRIFTWARDEN_ATTEMPT: '1',
    });
    expect(call.stdin).toMatchObject({
      action: 'replace',
      replacementId: 'r-1',
      host: { id: '4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e', imageId: 'ami-web-1', addresses: ['10.0.1.7'] },
    });
  });

  it('a non-zero exit is a retryable failure with the end of stderr', async () => {
    const out = join(tempDir(), 'call.json');
    const err = (await execProvider({ command: [process.execPath, SCRIPT, out, 'fail'], timeout: '10s' })
      .replace(target(), context())
      .catch((e: unknown) => e)) as ProviderError;
    expect(err).toBeInstanceOf(ProviderError);
    expect(err.retryable).toBe(true);
    expect(err.message).toBe(`exec: ${process.execPath} exited 1: asg refused: instance protected from scale-in`);
  });

  it('kills a command that outlives its timeout', async () => {
    const out = join(tempDir(), 'call.json');
    const started = Date.now();
    const err = (await execProvider({ command: [process.execPath, SCRIPT, out, 'hang'], timeout: '300ms' })
      .replace(target(), context())
      .catch((e: unknown) => e)) as ProviderError;
    expect(err.message).toMatch(/timed out after 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a command that does not exist fails permanently', async () => {
    const err = (await execProvider({ command: ['/nonexistent/replace-host'], timeout: '1s' })
      .replace(target(), context())
      .catch((e: unknown) => e)) as ProviderError;
    expect(err.retryable).toBe(false);
    expect(err.message).toBe('exec: cannot run /nonexistent/replace-host: ENOENT');
  });

  it('status: done at once without a status command; with one, 0 is done and 3 still running', async () => {
    const out = join(tempDir(), 'call.json');
    expect((await execProvider({ command: ['true'], timeout: '1s' }).status(target(), context())).state).toBe('done');
    const pending = execProvider({
      command: ['true'],
      statusCommand: [process.execPath, SCRIPT, out, 'pending'],
      timeout: '10s',
    });
    expect((await pending.status(target({ ref: 'op-7781' }), context())).state).toBe('pending');
    expect(JSON.parse(readFileSync(out, 'utf8')).env).toMatchObject({
      DRIFTWARDEN_ACTION: 'status',
      DRIFTWARDEN_REF: 'op-7781',
    });
    const done = execProvider({
      command: ['true'],
      statusCommand: [process.execPath, SCRIPT, out, 'ok'],
      timeout: '10s',
    });
    expect((await done.status(target(), context())).state).toBe('done');
  });
});
