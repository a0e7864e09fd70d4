/**
 * @module Migration 0009_cloud_identity: where a host runs, pinned at enrollment like its hostname.
 * `cloud_identity` is the identity the host enrolled with (JSON: AWS instance, Kubernetes node or plain
 * host); `instance_id` is its AWS instance id, unique, so a second host cannot claim an instance that
 * is already enrolled; `reported_cloud_identity` holds a different identity a later report claimed
 * (refused, like a rename; null while they agree).
 */
import type { Kysely } from 'kysely';

export async function migrateCloudIdentity(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').addColumn('cloud_identity', 'text').execute();
  await db.schema.alterTable('hosts').addColumn('instance_id', 'text').execute();
  await db.schema.alterTable('hosts').addColumn('reported_cloud_identity', 'text').execute();
  // NULLs are distinct in a unique index on both SQLite and PostgreSQL: hosts without an instance id do not collide.
  await db.schema.createIndex('hosts_instance_id').unique().on('hosts').column('instance_id').execute();
}
