/** @module `driftwarden agent status`: the last scan, the spool, enrollment and whether the controller answers. */
import type { AgentConfig } from '../../shared/schema/config.js';
import { Spool } from './spool.js';
import { StateDir } from './state-dir.js';
import { Transport } from './transport.js';

export async function agentStatus(config: AgentConfig): Promise<Record<string, unknown>> {
  const state = new StateDir(config.stateDir);
  const spool = new Spool(state.spoolDir);
  let controller: Record<string, unknown> = { configured: false };
  if (config.controller) {
    const t = new Transport({ url: config.controller.url, caFile: config.controller.caFile, timeoutMs: 5000 });
    const r = await t.get('/healthz');
    await t.close();
    controller = { url: config.controller.url, reachable: r.ok, ...(r.ok ? {} : { reason: r.reason }) };
  }
  return {
    enrolled: state.readCredential() !== null,
    lastScan: state.readJson(state.lastScanFile),
    spool: { ...spool.depth(), rejected: spool.rejected() },
    controller,
  };
}
