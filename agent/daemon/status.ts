/** @module `driftwarden agent status`: the last scan, the spool, enrollment (and a refused credential) and whether the controller answers. */
import type { AgentConfig } from '../../shared/schema/config.js';
import { Spool } from './spool.js';
import { StateDir } from './state-dir.js';
import { transportFor } from './transport.js';

export async function agentStatus(config: AgentConfig): Promise<Record<string, unknown>> {
  const state = new StateDir(config.stateDir);
  const spool = new Spool(state.spoolDir);
  let controller: Record<string, unknown> = { configured: false };
  if (config.controller) {
    const t = transportFor(config.controller, 5000);
    const r = await t.get('/healthz');
    await t.close();
    controller = { url: config.controller.url, reachable: r.ok, ...(r.ok ? {} : { reason: r.reason }) };
  }
  const refused = state.readJson(state.credentialRefusedFile);
  return {
    enrolled: state.readCredential() !== null,
    // Only while the controller answers 401 to the stored credential: since when, its reason, re-enrollment's outcome.
    ...(refused ? { credentialRefused: refused } : {}),
    lastScan: state.readJson(state.lastScanFile),
    // Only while a scan could not be delivered: heartbeats announce it to the controller until one is.
    ...(state.readJson(state.undeliveredScanFile)
      ? { undeliveredScan: state.readJson(state.undeliveredScanFile) }
      : {}),
    spool: { ...spool.depth(), rejected: spool.rejected() },
    controller,
  };
}
