/** @module The agent's version, read once from package.json so reports and manifests say what built them. */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'driftwarden' && pkg.version) return pkg.version;
    } catch {
      // try the next layout: source tree or dist/
    }
  }
  return '0.0.0-unknown';
}

export const AGENT_VERSION = readVersion();
