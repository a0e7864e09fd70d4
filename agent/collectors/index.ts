/** @module The collector registry: one line per collector; its order is the order of sections and output. */
import type { CollectorName } from '../../shared/schema/common.js';
import { cron } from './cron.js';
import { files } from './files.js';
import { packages } from './packages.js';
import { sysctl } from './sysctl.js';
import type { Collector } from './types.js';

export const COLLECTORS: { [N in CollectorName]?: Collector<N> } = {
  packages,
  sysctl,
  cron,
  files,
};
