/**
 * @module Migration 0006: enrollment tokens get a use count, an optional use limit and an optional
 * group allow-list; dashboard sessions get a server-side row, so logging out ends a session on the
 * controller and not only in the browser.
 */
import { sql, type Kysely } from 'kysely';
import type { Dialect } from './migrations.js';

/**
 * Enrollment tokens made before this migration were reusable and never expired. They keep working
 * (hosts may be launching from images that carry one), marked `legacy`, with unlimited uses, but one
 * without an expiry now expires this long after the upgrade: long enough to bake a new token into the
 * images, short enough that a leaked one stops working without anyone having to remember it.
 */
export const LEGACY_ENROLLMENT_GRACE_MS = 14 * 24 * 60 * 60 * 1000;

export async function migrateTokenLimits(db: Kysely<any>, dialect: Dialect, now: Date = new Date()): Promise<void> {
  const pg = dialect === 'postgres';
  const time = pg ? sql`text collate "C"` : ('text' as const);
  await db.schema
    .alterTable('tokens')
    .addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // Null: unlimited (only when asked for explicitly, or a legacy token).
  await db.schema.alterTable('tokens').addColumn('max_uses', 'integer').execute();
  // JSON array of globs; null: any group, or none.
  await db.schema.alterTable('tokens').addColumn('groups', 'text').execute();
  await db.schema
    .alterTable('tokens')
    .addColumn('legacy', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();

  const graceEnd = new Date(now.getTime() + LEGACY_ENROLLMENT_GRACE_MS).toISOString();
  await db.updateTable('tokens').set({ legacy: 1 }).where('role', '=', 'agent').execute();
  await db
    .updateTable('tokens')
    .set({ expires_at: graceEnd })
    .where('role', '=', 'agent')
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', graceEnd)]))
    .execute();

  await db.schema
    .createTable('sessions')
    // sha256 of the cookie's nonce: the table alone does not let anyone make a cookie.
    .addColumn('id', time, (c) => c.primaryKey())
    .addColumn('token_id', time, (c) => c.notNull())
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('expires_at', time, (c) => c.notNull())
    .addColumn('ended_at', time)
    .execute();
  await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();
}
