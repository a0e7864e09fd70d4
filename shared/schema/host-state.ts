/** @module The states a host moves through (DESIGN.md "Host states"), for the controller and the API's query schemas. */
export const HOST_STATES = [
  'pending',
  'clean',
  'drifted',
  'tainted',
  'replacement-scheduled',
  'replacing',
  'replaced',
  'silent',
] as const;
export type HostState = (typeof HOST_STATES)[number];
