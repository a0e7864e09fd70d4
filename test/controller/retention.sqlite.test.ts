/** @module The retention suite on SQLite (a file, as in production; a second store on it is a second controller process). */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { describe } from 'vitest';
import { openStore } from '../../controller/store/index.js';
import { tempDir } from '../helpers/tmp.js';
import { runRetentionMigrationCase, runRetentionSuite } from './retention.suite.js';

const TRIGGERS = ['audit', 'events', 'chain_checkpoints'].flatMap((t) => [`${t}_no_update`, `${t}_no_delete`]);

runRetentionSuite('sqlite', async () => {
  const file = join(tempDir('dw-retention-'), 'controller.db');
  return {
    store: await openStore(`sqlite:${file}`),
    another: () => openStore(`sqlite:${file}`),
    backdoor: {
      async exec(sqlText) {
        const raw = new Database(file);
        raw.exec(TRIGGERS.map((t) => `drop trigger if exists ${t};`).join(' '));
        raw.exec(sqlText);
        raw.close();
      },
      async close() {},
    },
  };
});

describe('retention migration (sqlite)', () => {
  runRetentionMigrationCase('sqlite', async () => {
    const file = join(tempDir('dw-retention-'), 'old.db');
    return {
      db: new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(file) }) }),
      dialect: 'sqlite',
      open: () => openStore(`sqlite:${file}`),
    };
  });
});
