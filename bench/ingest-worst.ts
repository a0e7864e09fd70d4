/**
 * Worst report the limits allow, ingested in-process (app.inject, real store) on SQLite and PostgreSQL,
 * timed step by step; /healthz is polled over real HTTP meanwhile to show how long the event loop stalls.
 *
 *   npx tsx bench/ingest-worst.ts [--store sqlite,postgres] [--shape removed,modified,deep]
 *
 * Shapes: `removed` as many minimal deviations as the body limit holds (the 80,000-deviation
 * case), `modified` file deviations with full expected/actual items, `deep` values nested to the limit.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openStore } from '../controller/store/index.js';
import { digestOf } from '../shared/canonical.js';
import { applyDeviations } from '../shared/diff.js';
import { sectionDigests } from '../shared/manifest.js';
import type { Deviation } from '../shared/schema/deviation.js';
import type { AnyItem, FileItem } from '../shared/schema/items.js';
import { Harness, bakeManifest, file, imageSections } from '../test/controller/harness.js';

// @ts-expect-error: a plain .mjs helper shared by the bench scripts, without type declarations
import { mustMeasure, parseCli } from './lib/cli.mjs';

const args = parseCli(import.meta.url, { store: 'value', shape: 'value' }) as Record<string, string>;
const stores = (args.store ?? 'sqlite,postgres').split(',');
const shapes = (args.shape ?? 'removed,modified').split(',');
const PG = process.env.DRIFTWARDEN_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function deviationsFor(shape: string, budgetBytes: number, manifestFiles: FileItem[]): Deviation[] {
  const out: Deviation[] = [];
  let bytes = 2000;
  for (let i = 0; ; i++) {
    let d: Deviation;
    if (shape === 'removed')
      d = {
        collector: 'files',
        key: `/x/${i.toString(36).padStart(6, '0')}`,
        change: 'removed',
        expected: null,
        actual: null,
        severity: 'low',
      };
    else {
      const e = manifestFiles[i % manifestFiles.length]!;
      const { key, ...body } = e;
      d = {
        collector: 'files',
        key: i < manifestFiles.length ? key : `/etc/new/${i}`,
        change: i < manifestFiles.length ? 'modified' : 'added',
        expected: i < manifestFiles.length ? body : null,
        actual: { ...body, sha256: 'f'.repeat(64), size: 7 },
        fields: ['sha256', 'size'],
        severity: 'high',
      };
    }
    const n = JSON.stringify(d).length + 1;
    if (bytes + n > budgetBytes) break;
    bytes += n;
    out.push(d);
  }
  return out;
}

async function run(storeKind: string, shape: string) {
  const store =
    storeKind === 'sqlite'
      ? await openStore('sqlite::memory:')
      : await openStore(PG, { schema: `bench_ingest_${process.pid}_${shape}` });
  const files: FileItem[] = [];
  for (let i = 0; i < 20_000; i++) files.push(file(`/etc/f/${String(i).padStart(6, '0')}`, `c${i}`));
  const sections = {
    ...imageSections(),
    files: { items: [...imageSections().files!.items, ...files].sort((a, b) => (a.key < b.key ? -1 : 1)) },
  };
  const h = await Harness.start(store, { publish: false });
  h.manifest = bakeManifest('ami-web-1', h.key.privateKey, sections as never);
  const pub = await h.publish(h.manifest);
  if (pub.status !== 201) throw new Error(pub.text);
  const host = await h.enroll('big-1');
  const limit = h.config.bodyLimit;
  const devs = deviationsFor(shape, limit, files);
  mustMeasure(devs.length > 0, `shape ${shape}: no deviation fits the body limit`);
  const report = host.report({ deviations: devs });
  const t0 = performance.now();
  const applied = applyDeviations('files', h.manifest.sections.files!.items as AnyItem[], devs);
  report.digests = { ...sectionDigests(host.actual), files: digestOf(applied) };
  const body = JSON.stringify(report);
  const prep = performance.now() - t0;

  // /healthz over real HTTP while the report is ingested through inject (same event loop).
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (h.app.server.address() as { port: number }).port;
  let worstGap = 0;
  let healthzErrors = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const s = performance.now();
      await fetch(`http://127.0.0.1:${port}/healthz`)
        .then((r) => r.text())
        .catch(() => healthzErrors++);
      worstGap = Math.max(worstGap, performance.now() - s);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const s = performance.now();
  const r = await h.req('POST', '/api/v1/reports', { token: host.credential, payload: body });
  const took = performance.now() - s;
  polling = false;
  loop.disable();
  await poll;
  console.log(
    JSON.stringify({
      store: storeKind,
      shape,
      bytes: body.length,
      deviations: devs.length,
      status: r.status,
      answer: r.text.slice(0, 200),
      ingestMs: Math.round(took),
      worstHealthzMs: Math.round(worstGap),
      worstLoopStallMs: Math.round(loop.max / 1e6),
      healthzErrors,
      prepMs: Math.round(prep),
    }),
  );
  await h.app.close();
  if (storeKind === 'postgres') {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: PG });
    await c.connect();
    await c.query(`drop schema if exists "bench_ingest_${process.pid}_${shape}" cascade`);
    await c.end();
  }
  await store.close();
}

for (const st of stores) for (const sh of shapes) await run(st, sh);
