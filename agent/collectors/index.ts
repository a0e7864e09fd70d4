/** @module The collector registry: one line per collector; its order is the order of sections and output. */
import type { CollectorName } from '../../shared/schema/common.js';
import type { Collector } from './types.js';

// Filled in as collectors land: packages, sysctl, cron, files.
export const COLLECTORS: { [N in CollectorName]?: Collector<N> } = {};
