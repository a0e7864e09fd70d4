/**
 * @module `driftwarden retention run --config FILE`: one retention pass now, on the store the config
 * names, with its `retention` settings (the controller runs the same pass every `retention.every`).
 * For after lowering a retention, or a cron job on a controller with the background pass switched off.
 */
import type { Command } from 'commander';
import { loadPrivateKey } from '../shared/sign.js';
import { loadControllerConfig, retentionPolicy } from './config.js';
import { pruneOnce } from './retention.js';
import { controllerLogger } from './server.js';
import { sinkNames } from './siem/forwarder.js';
import { openStore } from './store/index.js';

const out = (s: string): void => void process.stdout.write(s);

export function registerRetentionCommands(program: Command): void {
  const retention = program.command('retention').description('pruning of reports, findings, events and audit rows');
  retention
    .command('run')
    .description(
      'run one retention pass now (reports, resolved findings, then events and audit under signed checkpoints)',
    )
    .requiredOption('--config <file>', 'controller.yaml (for its store and retention settings)')
    .option('--json', 'print JSON')
    .action(async (o: { config: string; json?: boolean }) => {
      const config = loadControllerConfig(o.config);
      const keyFile = config.audit.anchors?.keyFile;
      const signingKey = keyFile ? loadPrivateKey(keyFile) : undefined;
      const log = controllerLogger(process.env.DRIFTWARDEN_LOG_LEVEL ?? 'warn');
      const store = await openStore(config.store, { log });
      try {
        const started = performance.now();
        const r = await pruneOnce({
          store,
          log,
          clock: () => new Date(),
          policy: retentionPolicy(config),
          signingKey,
          eventCursors: sinkNames(config),
        });
        const seconds = (performance.now() - started) / 1000;
        if (o.json) return out(JSON.stringify({ ...r, seconds }, null, 2) + '\n');
        out(
          `pruned ${r.reports} reports, ${r.findings} resolved deviations, ${r.events} events, ${r.audit} audit rows in ${seconds.toFixed(1)} s\n`,
        );
        for (const c of r.checkpoints)
          out(
            `checkpoint ${c.id} (${c.chain}): ids ${c.firstId}..${c.throughId}, ${c.rows} rows older than ${c.cutoff}, ${c.signature ? `signed by ${c.keyId}` : 'unsigned'}\n`,
          );
      } finally {
        await store.close();
      }
    });
}
