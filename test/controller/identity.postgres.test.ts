/** @module The pinned-identity suite on PostgreSQL. */
import { describe } from 'vitest';
import { SKIP_PG, pgStores, requirePostgres } from '../helpers/postgres.js';
import { runIdentitySuite } from './identity.suite.js';

await requirePostgres();

describe.skipIf(SKIP_PG)('postgres', () => {
  runIdentitySuite('postgres', pgStores('dw_ident'));
});
