/** @module The host-actions suite on PostgreSQL. */
import { describe } from 'vitest';
import { SKIP_PG, pgStores, requirePostgres } from '../helpers/postgres.js';
import { runHostActionSuite } from './host-actions.suite.js';

await requirePostgres();

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
describe.skipIf(SKIP_PG)('postgres', () => {
  runHostActionSuite('postgres', pgStores('dw_hostact'));
});
