/** @module The host state machine against its documented table, its causes, and sticky taint. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultPolicy, evaluateAll } from '../../controller/policy.js';
import {
  columnOf,
  IllegalTransitionError,
  next,
  TRANSITIONS,
  type HostEvent,
  type TableColumn,
} from '../../controller/states.js';
import { HOST_STATES, type HostState } from '../../controller/store/types.js';
import { ERRORS, isDwError } from '../../shared/errors.js';

/** One event of each column, so that every cell can be driven through next(). */
const EVENTS: Record<TableColumn, HostEvent> = {
  none: { type: 'report', worst: 'none' },
  report: {
    type: 'report',
    worst: 'report',
    culprit: { collector: 'files', key: '/srv/x', change: 'added', decidedBy: 'rule:r', rule: 'r' },
  },
  taint: {
    type: 'report',
    worst: 'taint',
    culprit: {
      collector: 'packages',
      key: 'openssl:amd64',
      change: 'modified',
      decidedBy: 'rule:packages',
      rule: 'packages',
    },
  },
  beat: { type: 'heartbeat' },
  silent: { type: 'silent', after: '10m' },
  long: { type: 'long-silence', after: '1h' },
  sched: { type: 'replacement-scheduled', detail: 'aws-asg web-asg' },
  start: { type: 'replacement-started' },
  done: { type: 'replacement-completed' },
  fail: { type: 'replacement-failed', error: 'TerminateInstanceInAutoScalingGroup: throttled' },
  cancel: { type: 'replacement-cancelled', actor: 'alice', reason: 'freeze week' },
};

/** The table as written in the comment at the top of controller/states.ts. */
function documentedTable(): { columns: string[]; rows: Map<string, string[]> } {
  const source = readFileSync(join(import.meta.dirname, '../../controller/states.ts'), 'utf8');
  const lines = source.split('\n').map((l) => l.replace(/^\s*\*\s?/, '').trim());
  const header = lines.findIndex((l) => l.startsWith('state \\ event'));
  expect(header, 'table header in the comment').toBeGreaterThan(0);
  const columns = lines[header]!.split(/\s+/).slice(3);
  const rows = new Map<string, string[]>();
  for (const line of lines.slice(header + 1)) {
    if (line === '') break;
    const [state, ...cells] = line.split(/\s+/);
    rows.set(state!, cells);
  }
  return { columns, rows };
}

describe('transition table', () => {
  const doc = documentedTable();

  it('documents every state and every event column', () => {
    expect(doc.columns).toEqual(Object.keys(EVENTS));
    expect([...doc.rows.keys()].sort()).toEqual([...HOST_STATES].sort());
    for (const cells of doc.rows.values()) expect(cells).toHaveLength(doc.columns.length);
  });

  it('routes each event type to its column', () => {
    for (const [column, event] of Object.entries(EVENTS)) expect(columnOf(event)).toBe(column);
    expect(columnOf({ type: 'report', worst: 'exempt' })).toBe('none');
    expect(columnOf({ type: 'report', worst: 'ignore' })).toBe('none');
  });

  const pairs = HOST_STATES.flatMap((state) =>
    (Object.keys(EVENTS) as TableColumn[]).map((column) => [state, column] as const),
  );
  it.each(pairs)('%s on %s does what the table says', (state, column) => {
    const cell = doc.rows.get(state)![doc.columns.indexOf(column)]!;
    expect(TRANSITIONS[state][column]).toBe(cell);
    if (cell === '!') {
      expect(() => next(state, EVENTS[column])).toThrow(IllegalTransitionError);
      return;
    }
    const t = next(state, EVENTS[column]);
    const expected: HostState = cell === '=' ? state : (cell as HostState);
    expect(HOST_STATES).toContain(expected);
    expect(t.state).toBe(expected);
    expect(t.changed).toBe(expected !== state);
    expect(t.cause.length).toBeGreaterThan(0);
  });
});

describe('taint is sticky', () => {
  const clean: HostEvent = { type: 'report', worst: 'none' };

  it('a reverted change does not clean a tainted host', () => {
    expect(next('tainted', clean)).toEqual({
      state: 'tainted',
      changed: false,
      cause: 'report: still tainted (taint is sticky; only replacement ends it)',
    });
  });

  it('a host tainted before going silent stays tainted through silence and its return', () => {
    let s: HostState = 'tainted';
    for (const e of [EVENTS.silent, EVENTS.long, EVENTS.beat, clean]) s = next(s, e).state;
    expect(s).toBe('tainted');
  });

  it('only a completed replacement ends it; a failed or cancelled one goes back to tainted', () => {
    expect(next('replacement-scheduled', EVENTS.fail)).toEqual({
      state: 'tainted',
      changed: true,
      cause: 'replacement failed: TerminateInstanceInAutoScalingGroup: throttled; back to tainted',
    });
    expect(next('replacing', EVENTS.cancel).cause).toBe('replacement cancelled by alice: freeze week; back to tainted');
    let s: HostState = 'tainted';
    for (const e of [EVENTS.sched, EVENTS.start, clean, EVENTS.done]) s = next(s, e).state;
    expect(s).toBe('replaced');
  });
});

describe('silence', () => {
  it('a silent host that reports again goes where its report says', () => {
    expect(next('silent', { type: 'report', worst: 'none' })).toMatchObject({
      state: 'clean',
      cause: 'clean: reporting again, nothing the policy reports',
    });
    expect(next('silent', EVENTS.report).state).toBe('drifted');
    expect(next('silent', EVENTS.taint).state).toBe('tainted');
  });

  it('a heartbeat alone does not end silence: only a full report vouches for the host', () => {
    expect(next('silent', EVENTS.beat)).toEqual({
      state: 'silent',
      changed: false,
      cause: 'heartbeat: still silent until a full report arrives',
    });
  });

  it('a long silence taints, also when the first grace period was never recorded', () => {
    expect(next('silent', EVENTS.long)).toEqual({
      state: 'tainted',
      changed: true,
      cause: 'taint: silent for more than 1h, nothing vouches for the host any more',
    });
    expect(next('clean', EVENTS.long).state).toBe('tainted');
  });

  it('an overdue full scan taints like a long silence, with its own cause', () => {
    for (const from of ['pending', 'clean', 'drifted', 'silent'] as const) {
      expect(next(from, { type: 'scan-overdue', after: '1500m' })).toEqual({
        state: 'tainted',
        changed: true,
        cause: 'taint: no full scan received for more than 1500m; heartbeats alone do not vouch for the host',
      });
    }
    expect(next('tainted', { type: 'scan-overdue' }).changed).toBe(false);
    expect(next('replaced', { type: 'scan-overdue' }).changed).toBe(false);
  });

  it('says how long the host was silent', () => {
    expect(next('drifted', EVENTS.silent).cause).toBe('silent: no contact for more than 10m');
    expect(next('drifted', { type: 'silent' }).cause).toBe('silent: no contact for more than the grace period');
  });
});

describe('causes', () => {
  it('cite the deviation and rule that tainted the host', () => {
    expect(next('clean', EVENTS.taint).cause).toBe('taint: packages openssl:amd64 modified (rule "packages")');
  });

  it('count the other deviations of the same kind', () => {
    expect(next('drifted', { ...EVENTS.taint, counts: { taint: 3 } } as HostEvent).cause).toBe(
      'taint: packages openssl:amd64 modified (rule "packages") and 2 more',
    );
  });

  it('take the policy evaluation of a report as it is', () => {
    const evaluation = evaluateAll(
      defaultPolicy(),
      [
        { collector: 'files', key: '/var/log/syslog', change: 'modified', severity: 'medium' },
        { collector: 'sysctl', key: 'net.ipv4.ip_forward', change: 'modified', severity: 'high' },
        { collector: 'files', key: '/home/alice/x', change: 'added', severity: 'medium' },
      ],
      { hostId: 'h', imageId: 'i', now: 0, exemptions: [] },
    );
    expect(next('pending', { type: 'report', ...evaluation })).toEqual({
      state: 'tainted',
      changed: true,
      cause: 'taint: sysctl net.ipv4.ip_forward modified (rule "default/sysctl")',
    });
    expect(
      next('clean', {
        type: 'report',
        worst: 'report',
        culprit: { collector: 'files', key: '/x', change: 'added', decidedBy: 'no-rule', rule: null },
      }).cause,
    ).toBe('drift: files /x added (no rule matched)');
  });

  it('describe the first report and a return to clean', () => {
    expect(next('pending', { type: 'report', worst: 'none' }).cause).toBe('clean: first report matches the manifest');
    expect(next('drifted', { type: 'report', worst: 'exempt' })).toEqual({
      state: 'clean',
      changed: true,
      cause: 'clean: no reported deviations remain',
    });
    expect(next('replacing', EVENTS.done).cause).toBe('replacement completed');
    expect(next('replaced', EVENTS.done)).toEqual({
      state: 'replaced',
      changed: false,
      cause: 'replacement completed (already recorded)',
    });
  });
});

describe('illegal events', () => {
  it('are refused with a typed error that maps to 409 and exit 2', () => {
    let err: unknown;
    try {
      next('clean', EVENTS.start);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IllegalTransitionError);
    expect(isDwError(err)).toBe(true);
    const e = err as IllegalTransitionError;
    expect(e.code).toBe('DW_ERR_STATE');
    expect(e.status).toBe(409);
    expect(e.exitCode).toBe(2);
    expect(ERRORS.DW_ERR_STATE.status).toBe(409);
    expect(e.from).toBe('clean');
    expect(e.event).toBe('replacement-started');
    expect(e.message).toBe('cannot apply replacement-started to a host that is clean');
  });

  it('include a replaced host that reports again', () => {
    expect(() => next('replaced', EVENTS.beat)).toThrow('cannot apply heartbeat to a host that is replaced');
  });

  it('include scheduling a host twice, which means two actors raced', () => {
    expect(() => next('replacement-scheduled', EVENTS.sched)).toThrow(IllegalTransitionError);
  });
});
