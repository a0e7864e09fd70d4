/** @module The pinned-identity suite on PostgreSQL. */
import { describe } from 'vitest';
import { SKIP_PG, pgStores, requirePostgres } from '../helpers/postgres.js';
import { runIdentitySuite } from './identity.suite.js';

await requirePostgres();

// PostgreSQL is skipped only with DRIFTWARDEN_SKIP_PG=1, for machines without it (requirePostgres fails the run otherwise); SQLite never is.
describe.skipIf(SKIP_PG)('postgres', () => {
  runIdentitySuite('postgres', pgStores('dw_ident'));
});
