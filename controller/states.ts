/** @module The host state machine: a pure function from (state, event) to the next state and the cause to record. */
import { DwError } from '../shared/errors.js';
import type { HostState, PolicyAction } from './store/types.js';

/*
 * Transition table (a test reads this comment and checks next() against every cell).
 *
 *   columns   none / report / taint   a report whose worst action is that (exempt and ignore count as none)
 *             beat                    heartbeat: the agent is alive, nothing else is known
 *             silent / long           the silent grace period / the longer one passed without contact
 *             sched / start / done    replacement scheduled / started / completed (provider confirmed)
 *             fail / cancel           replacement failed / cancelled by an operator
 *   cells     a state: the host moves there      =  legal, no change      !  illegal: IllegalTransitionError (DW_ERR_STATE, 409)
 *
 *   state \ event          none     report   taint    beat  silent  long     sched                  start      done      fail     cancel
 *   pending                clean    drifted  tainted  =     silent  tainted  replacement-scheduled  !          !         !        !
 *   clean                  =        drifted  tainted  =     silent  tainted  replacement-scheduled  !          !         !        !
 *   drifted                clean    =        tainted  =     silent  tainted  replacement-scheduled  !          !         !        !
 *   silent                 clean    drifted  tainted  =     =       tainted  replacement-scheduled  !          !         !        !
 *   tainted                =        =        =        =     =       =        replacement-scheduled  !          !         !        !
 *   replacement-scheduled  =        =        =        =     =       =        !                      replacing  !         tainted  tainted
 *   replacing              =        =        =        =     =       =        !                      !          replaced  tainted  tainted
 *   replaced               !        !        !        !     =       =        !                      !          =         !        !
 *
 * Why it is shaped so:
 * - Taint is sticky: no report moves a tainted host (or one on its way out) anywhere; only a
 *   completed replacement ends it, and a failed or cancelled one puts it back to tainted.
 * - A host that is not tainted is scheduled only because an operator asked (the automatic queue
 *   holds tainted hosts only). That request is not drift: the host is never tainted for it, and
 *   when its replacement fails or is cancelled the scheduler puts it back where its deviations say
 *   (scheduler/steps/runtime.ts `transition`), not to the table's `tainted`.
 * - Silence is entered only from pending, clean and drifted. A tainted host stays tainted while
 *   silent (it is due for replacement either way), and replacing and replaced hosts are expected
 *   to fall silent. So `silent` never has to remember a taint, and a report from a silent host can
 *   simply say where it goes, as from a clean host.
 * - A heartbeat does not end silence: it shows the agent runs, not that the host is unchanged, and
 *   silence is what stopping an agent to tamper with a host looks like. The next full report does.
 * - The long silence also applies to pending/clean/drifted directly, so a silence loop that ran
 *   late (or skipped the first step) still taints.
 * - A scan that is overdue (heartbeats, but no full scan within scanMaxAge) is the long column too:
 *   an agent that only heartbeats could be hiding anything, so it is treated as gone dark.
 * - Scheduling and its steps are only legal in order: a conflict here means two actors raced for
 *   one host, which must fail loudly (409) rather than be papered over. The exceptions are no-ops
 *   a retry produces: a second `done` on a replaced host (the instance is already gone), and
 *   silence on a replaced host.
 * - A replaced host that reports or heartbeats again is an anomaly (a replacement that did not
 *   happen, or a copied credential): refused, for the caller to reject and alert on.
 */

export type StateEventType =
  | 'report'
  | 'heartbeat'
  | 'silent'
  | 'long-silence'
  | 'scan-overdue'
  | 'replacement-scheduled'
  | 'replacement-started'
  | 'replacement-completed'
  | 'replacement-failed'
  | 'replacement-cancelled';

/** Structurally what controller/policy.ts's evaluateAll returns, so its result can be spread in. */
export interface ReportOutcome {
  worst: PolicyAction | 'none';
  culprit?: { collector: string; key: string; change: string; decidedBy: string; rule?: string | null } | null;
  counts?: Partial<Record<PolicyAction, number>>;
}

export type HostEvent =
  | ({ type: 'report' } & ReportOutcome)
  | { type: 'heartbeat' }
  /** `after`: the period that passed, for the cause ("10m"). */
  | { type: 'silent'; after?: string }
  | { type: 'long-silence'; after?: string }
  /** Heartbeats came, but no full scan for longer than `scanMaxAge` (`after`): the long column, for another reason. */
  | { type: 'scan-overdue'; after?: string }
  | { type: 'replacement-scheduled'; detail?: string }
  | { type: 'replacement-started'; detail?: string }
  | { type: 'replacement-completed'; detail?: string }
  | { type: 'replacement-failed'; error: string }
  | { type: 'replacement-cancelled'; actor: string; reason?: string };

export interface Transition {
  state: HostState;
  changed: boolean;
  /** Human-readable, recorded with the transition (also for no-change events, for logs). */
  cause: string;
}

/** The table's columns: a report splits three ways by its worst action. */
export type TableColumn =
  | 'none'
  | 'report'
  | 'taint'
  | 'beat'
  | 'silent'
  | 'long'
  | 'sched'
  | 'start'
  | 'done'
  | 'fail'
  | 'cancel';
type Cell = HostState | '=' | '!';

const I = '!' as const;
const S = '=' as const;

/** The table above as data; keep the two in step (the test compares them). */
export const TRANSITIONS: Readonly<Record<HostState, Readonly<Record<TableColumn, Cell>>>> = {
  pending: {
    none: 'clean',
    report: 'drifted',
    taint: 'tainted',
    beat: S,
    silent: 'silent',
    long: 'tainted',
    sched: 'replacement-scheduled',
    start: I,
    done: I,
    fail: I,
    cancel: I,
  },
  clean: {
    none: S,
    report: 'drifted',
    taint: 'tainted',
    beat: S,
    silent: 'silent',
    long: 'tainted',
    sched: 'replacement-scheduled',
    start: I,
    done: I,
    fail: I,
    cancel: I,
  },
  drifted: {
    none: 'clean',
    report: S,
    taint: 'tainted',
    beat: S,
    silent: 'silent',
    long: 'tainted',
    sched: 'replacement-scheduled',
    start: I,
    done: I,
    fail: I,
    cancel: I,
  },
  silent: {
    none: 'clean',
    report: 'drifted',
    taint: 'tainted',
    beat: S,
    silent: S,
    long: 'tainted',
    sched: 'replacement-scheduled',
    start: I,
    done: I,
    fail: I,
    cancel: I,
  },
  tainted: {
    none: S,
    report: S,
    taint: S,
    beat: S,
    silent: S,
    long: S,
    sched: 'replacement-scheduled',
    start: I,
    done: I,
    fail: I,
    cancel: I,
  },
  'replacement-scheduled': {
    none: S,
    report: S,
    taint: S,
    beat: S,
    silent: S,
    long: S,
    sched: I,
    start: 'replacing',
    done: I,
    fail: 'tainted',
    cancel: 'tainted',
  },
  replacing: {
    none: S,
    report: S,
    taint: S,
    beat: S,
    silent: S,
    long: S,
    sched: I,
    start: I,
    done: 'replaced',
    fail: 'tainted',
    cancel: 'tainted',
  },
  replaced: {
    none: I,
    report: I,
    taint: I,
    beat: I,
    silent: S,
    long: S,
    sched: I,
    start: I,
    done: S,
    fail: I,
    cancel: I,
  },
};

/** An event the host's current state does not allow; the API answers 409, the CLI exits 2. */
export class IllegalTransitionError extends DwError {
  readonly from: HostState;
  readonly event: StateEventType;
  constructor(from: HostState, event: StateEventType) {
    super('DW_ERR_STATE', `cannot apply ${event} to a host that is ${from}`, { from, event });
    this.name = 'IllegalTransitionError';
    this.from = from;
    this.event = event;
  }
}

export function columnOf(event: HostEvent): TableColumn {
  switch (event.type) {
    case 'report':
      return event.worst === 'taint' ? 'taint' : event.worst === 'report' ? 'report' : 'none';
    case 'heartbeat':
      return 'beat';
    case 'silent':
      return 'silent';
    case 'long-silence':
    case 'scan-overdue':
      return 'long';
    case 'replacement-scheduled':
      return 'sched';
    case 'replacement-started':
      return 'start';
    case 'replacement-completed':
      return 'done';
    case 'replacement-failed':
      return 'fail';
    case 'replacement-cancelled':
      return 'cancel';
  }
}

/** `packages openssl:amd64 modified (rule "default/packages") and 2 more` */
function describeReport(event: ReportOutcome, action: 'taint' | 'report'): string {
  const c = event.culprit;
  if (!c) return action === 'taint' ? 'a deviation the policy taints on' : 'deviations the policy reports';
  const by = c.rule ? `rule ${JSON.stringify(c.rule)}` : c.decidedBy === 'no-rule' ? 'no rule matched' : c.decidedBy;
  const more = (event.counts?.[action] ?? 1) - 1;
  return `${c.collector} ${c.key} ${c.change} (${by})${more > 0 ? ` and ${more} more` : ''}`;
}

function suffix(text: string | undefined): string {
  return text ? `: ${text}` : '';
}

function causeOf(from: HostState, to: HostState, changed: boolean, event: HostEvent): string {
  switch (event.type) {
    case 'report': {
      const col = columnOf(event);
      if (!changed) {
        if (from === 'tainted') return `report: still tainted (taint is sticky; only replacement ends it)`;
        if (from === 'replacement-scheduled' || from === 'replacing') return `report: ${from}, replacement under way`;
        return col === 'none' ? 'report: still clean' : `report: still drifted: ${describeReport(event, 'report')}`;
      }
      if (col === 'taint') return `taint: ${describeReport(event, 'taint')}`;
      if (col === 'report') return `drift: ${describeReport(event, 'report')}`;
      if (from === 'pending') return 'clean: first report matches the manifest';
      if (from === 'silent') return 'clean: reporting again, nothing the policy reports';
      return 'clean: no reported deviations remain';
    }
    case 'heartbeat':
      return from === 'silent' ? 'heartbeat: still silent until a full report arrives' : 'heartbeat';
    case 'silent':
      return changed
        ? `silent: no contact for more than ${event.after ?? 'the grace period'}`
        : `silent: no change while ${from}`;
    case 'long-silence':
      return changed
        ? `taint: silent for more than ${event.after ?? 'the long grace period'}, nothing vouches for the host any more`
        : `long silence: no change while ${from}`;
    case 'scan-overdue':
      return changed
        ? `taint: no full scan received for more than ${event.after ?? 'the longest interval allowed'}; heartbeats alone do not vouch for the host`
        : `scan overdue: no change while ${from}`;
    case 'replacement-scheduled':
      return `replacement scheduled${suffix(event.detail)}`;
    case 'replacement-started':
      return `replacement started${suffix(event.detail)}`;
    case 'replacement-completed':
      return changed ? `replacement completed${suffix(event.detail)}` : 'replacement completed (already recorded)';
    case 'replacement-failed':
      return `replacement failed: ${event.error}; back to ${to}`;
    case 'replacement-cancelled':
      return `replacement cancelled by ${event.actor}${suffix(event.reason)}; back to ${to}`;
  }
}

/** The next state of a host in `current` on `event`; throws IllegalTransitionError when the table says `!`. */
export function next(current: HostState, event: HostEvent): Transition {
  const cell = TRANSITIONS[current]?.[columnOf(event)];
  if (cell === undefined || cell === '!') throw new IllegalTransitionError(current, event.type);
  const state = cell === '=' ? current : cell;
  const changed = state !== current;
  return { state, changed, cause: causeOf(current, state, changed, event) };
}
