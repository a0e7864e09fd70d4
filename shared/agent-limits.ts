/** @module The scan limits' defaults, in a module without zod: the config schema fills them in, and the agent's daemon starts its first task process with them. */

/**
 * One core, 256 MB for the scan process (a first scan of 100,000 files peaks near 150 MB; see the README's
 * footprint section), an hour.
 */
export const DEFAULT_LIMITS = { cpuShare: 1, memoryMb: 256, maxScanDuration: '1h' } as const;
