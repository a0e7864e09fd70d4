import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACT_PATHS, redactUrl } from '../../shared/logger.js';

function capture(service?: string) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: createLogger({ level: 'info', service, destination }), lines };
}

describe('one logger set-up for every process', () => {
  it('redacts every secret field, at the top level and one level down', () => {
    const { log, lines } = capture('driftwarden-controller');
    const top = Object.fromEntries(REDACT_PATHS.filter((p) => !p.includes('.')).map((p) => [p, `s3cret-${p}`]));
    const nested = { inner: Object.fromEntries(Object.keys(top).map((k) => [k, `s3cret-nested-${k}`])) };
    log.info({ ...top, ...nested, req: { headers: { authorization: 'Bearer s3cret-header' } } }, 'hello');
    const line = lines.join('');
    expect(line).toContain('"service":"driftwarden-controller"');
    expect(line).not.toContain('s3cret');
    expect(line).toContain('[redacted]');
  });

  it('stamps no service when none is given (the agent CLI stays terse)', () => {
    const { log, lines } = capture();
    log.info('x');
    expect(lines.join('')).not.toContain('service');
  });

  it('takes DRIFTWARDEN_LOG_LEVEL when no level is passed', () => {
    const old = process.env.DRIFTWARDEN_LOG_LEVEL;
    process.env.DRIFTWARDEN_LOG_LEVEL = 'error';
    try {
      expect(createLogger({ fallbackLevel: 'info' }).level).toBe('error');
    } finally {
      if (old === undefined) delete process.env.DRIFTWARDEN_LOG_LEVEL;
      else process.env.DRIFTWARDEN_LOG_LEVEL = old;
    }
  });
});

describe('redactUrl', () => {
  it('masks credentials and drops the query and fragment', () => {
    expect(redactUrl('postgres://app:hunter2@db:5432/fleet?sslmode=require')).toBe('postgres://***:***@db:5432/fleet');
    expect(redactUrl('https://hooks.example/notify?token=abc#frag')).toBe('https://hooks.example/notify');
    expect(redactUrl('https://tok123@hooks.example/x')).toBe('https://***@hooks.example/x');
  });

  it('never echoes a string it cannot parse', () => {
    expect(redactUrl('not a url with secret')).toBe('(unparseable URL)');
  });
});
