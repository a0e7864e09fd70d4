import { describe, expect, it } from 'vitest';
import { sourceDateEpoch } from '../../agent/commands/manifest.js';

describe('SOURCE_DATE_EPOCH for manifest build', () => {
  it('is "now" when unset or empty', () => {
    expect(sourceDateEpoch({})).toBeUndefined();
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '' })).toBeUndefined();
  });

  it('takes whole seconds since 1970', () => {
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '1772409600' })?.toISOString()).toBe('2026-03-02T00:00:00.000Z');
  });

  it('refuses anything else with a usage error naming the value', () => {
    for (const bad of ['yesterday', '-1', '1.5', '2026-03-02']) {
      expect(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: bad })).toThrow(
        expect.objectContaining({ code: 'DW_ERR_USAGE', message: expect.stringContaining(JSON.stringify(bad)) }),
      );
    }
  });
});
