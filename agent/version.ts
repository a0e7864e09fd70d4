/** @module The agent's version, read once from package.json so reports and manifests say what built them. */
import { readFileSync } from 'node:fs';

/** Set by the esbuild bundles (packaging/build.mjs): a bundle or single executable has no package.json beside it. */
declare const __DRIFTWARDEN_VERSION__: string | undefined;

function readVersion(): string {
  if (typeof __DRIFTWARDEN_VERSION__ === 'string') return __DRIFTWARDEN_VERSION__;
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'driftwarden' && pkg.version) return pkg.version;
    } catch {
      // try the next layout: source tree or dist/
    }
  }
  return '0.0.0-unknown';
}

export const AGENT_VERSION = readVersion();
