/** @module The severities, least to most severe, in a module without zod: the agent's long-lived daemon imports no schema library. */
export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
