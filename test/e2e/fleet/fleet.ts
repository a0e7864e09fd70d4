/**
 * @module Setting up a fleet for one test file: a baked image (keys, signed manifest), stores (a SQLite
 * file, or a schema of its own on the shared PostgreSQL server, dropped afterwards), the first
 * controller with its tokens, and hosts. Tests stop everything with teardown() in afterEach.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll } from 'vitest';
import { bake, type Baked } from '../../helpers/agent-host.js';
import { PG_URL } from '../../helpers/postgres.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  Api,
  FleetController,
  FleetHost,
  killFleet,
  type ControllerOptions,
  type HostOptions,
  type StoreSpec,
} from './harness.js';

let baked: Baked | null = null;
export function image(): Baked {
  baked ??= bake();
  return baked;
}

const schemas: { url: string; schema: string }[] = [];
afterAll(async () => {
  for (const s of schemas.splice(0)) {
    const c = new pg.Client({ connectionString: s.url });
    await c.connect();
    try {
      await c.query(`drop schema if exists "${s.schema}" cascade`);
    } finally {
      await c.end();
    }
  }
});

/** A fresh store: a SQLite file, or an empty schema on a PostgreSQL server (the shared one by default). */
export async function freshStore(kind: 'sqlite' | 'postgres', url = PG_URL): Promise<StoreSpec> {
  if (kind === 'sqlite') return { kind, file: join(tempDir('dw-fleet-db-'), 'controller.db') };
  const schema = `dwfleet_${process.pid}_${randomBytes(3).toString('hex')}`;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`create schema "${schema}"`);
  } finally {
    await c.end();
  }
  // A private cluster is removed whole by its test; only schemas on a shared server are dropped.
  if (url === PG_URL) schemas.push({ url, schema });
  return { kind, url, schema };
}

export class Fleet {
  readonly controllers: FleetController[] = [];
  readonly hosts: FleetHost[] = [];
  api!: Api;
  enrollToken = '';

  /** The first controller: started, with an admin and an enrollment token, the image's manifest published. */
  async controller(opts: Omit<ControllerOptions, 'trustedKey'>): Promise<FleetController> {
    const c = new FleetController({ ...opts, trustedKey: image().pub });
    this.controllers.push(c);
    if (!this.api) {
      // Tokens are written to the store directly, before the server runs: that creates the schema too.
      const admin = await c.token('admin');
      this.enrollToken = await c.token('agent');
      await c.start();
      this.api = new Api(() => this.controllers.find((x) => x.alive)?.url ?? c.url, admin);
      await this.api.publish(image().manifest);
    } else await c.start();
    return c;
  }

  host(opts: Omit<HostOptions, 'manifest' | 'enrollToken'>): FleetHost {
    const h = new FleetHost(`fleet-${String(this.hosts.length).padStart(3, '0')}`, {
      manifest: image().manifest,
      enrollToken: this.enrollToken,
      ...opts,
    });
    this.hosts.push(h);
    return h;
  }

  async teardown(): Promise<void> {
    await killFleet();
    for (const h of this.hosts) await h.proxy?.stop();
  }
}
