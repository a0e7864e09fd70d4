/** The one severity order: ranks in the order of SEVERITIES, and the SQL CASE agrees with them. */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SEVERITIES } from '../../shared/schema/deviation.js';
import { SEVERITY_RANK, severityRank, severityRankSql } from '../../shared/severity.js';

describe('severity order', () => {
  it('ranks low 1 to critical 4, none and unknown words 0', () => {
    expect(SEVERITY_RANK).toEqual({ low: 1, medium: 2, high: 3, critical: 4 });
    expect(SEVERITIES.map(severityRank)).toEqual([1, 2, 3, 4]);
    expect([severityRank(null), severityRank(undefined), severityRank('urgent')]).toEqual([0, 0, 0]);
  });

  it('gives the same ranks in SQL, with the fallback for anything else', () => {
    const db = new Database(':memory:');
    const rank = (v: string | null, otherwise?: number) =>
      (db.prepare(`select ${severityRankSql('s', otherwise)} as r from (select ? as s)`).get(v) as { r: number }).r;
    expect(SEVERITIES.map((s) => rank(s))).toEqual([1, 2, 3, 4]);
    expect([rank(null), rank('urgent'), rank('urgent', 1)]).toEqual([0, 0, 1]);
    db.close();
  });

  it('refuses anything but a column name in the SQL', () => {
    expect(() => severityRankSql("s'); drop table x; --")).toThrow(/not a column name/);
  });
});
