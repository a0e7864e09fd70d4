/** @module The `retention` config keys: defaults an operator expects, the older `reports: 30d` form, `forever`, and errors that name the key. */
import { describe, expect, it } from 'vitest';
import { ControllerConfigSchema, retentionPolicy } from '../../controller/config.js';
import { parseConfigText } from '../../shared/config-load.js';

const DAY = 86_400_000;
const parse = (yaml: string) => parseConfigText(ControllerConfigSchema, yaml, 'controller.yaml');

describe('retention config', () => {
  it('defaults to reports 30 days and 2,000 per host, events and resolved findings 90 days, audit 365 days, hourly', () => {
    const c = parse('listen: 127.0.0.1:8443\n');
    expect(c.retention.every).toBe('1h');
    expect(retentionPolicy(c)).toEqual({
      reports: { maxAgeMs: 30 * DAY, maxPerHost: 2_000 },
      events: { maxAgeMs: 90 * DAY },
      audit: { maxAgeMs: 365 * DAY },
      resolvedFindings: { maxAgeMs: 90 * DAY },
    });
  });

  it('keeps the older `reports: 30d` form, and takes `forever` and no count limit', () => {
    expect(retentionPolicy(parse('retention: { reports: 7d }\n')).reports).toEqual({
      maxAgeMs: 7 * DAY,
      maxPerHost: 2_000,
    });
    const c = parse('retention:\n  reports: { maxAge: forever, maxPerHost: null }\n  audit: { maxAge: forever }\n');
    expect(retentionPolicy(c)).toMatchObject({
      reports: { maxAgeMs: null, maxPerHost: null },
      audit: { maxAgeMs: null },
      events: { maxAgeMs: 90 * DAY },
    });
  });

  it('refuses a bad value naming its key', () => {
    expect(() => parse('retention: { events: { maxAge: soon } }\n')).toThrow(
      /retention\.events\.maxAge: expected a duration such as 30d or 12h, or forever/,
    );
    expect(() => parse('retention: { reports: { maxPerHost: 0 } }\n')).toThrow(/retention\.reports/);
    expect(() => parse('retention: { every: 10s }\n')).toThrow(/retention\.every: at least 1m/);
    expect(() => parse('retention: { logs: 1d }\n')).toThrow(/retention\.logs: unknown key/);
  });
});
