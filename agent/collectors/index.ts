/** @module The agent's collector implementations, one per registered collector (shared/collectors.ts); the mapped type makes a missing one a compile error. */
import type { CollectorName } from '../../shared/schema/common.js';
import { accounts } from './accounts.js';
import { cron } from './cron.js';
import { files } from './files.js';
import { firewall } from './firewall.js';
import { kernelModules } from './kernel-modules.js';
import { packages } from './packages.js';
import { services } from './services.js';
import { sysctl } from './sysctl.js';
import type { Collector } from './types.js';

const IMPLEMENTATIONS: { [N in CollectorName]: Collector<N> } = {
  packages,
  sysctl,
  cron,
  files,
  'kernel-modules': kernelModules,
  services,
  accounts,
  firewall,
};

/** In the registry's order, which is the order of sections and output. */
export const COLLECTORS: { [N in CollectorName]?: Collector<N> } = IMPLEMENTATIONS;
