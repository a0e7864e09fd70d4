/**
 * @module Parse dnf's transaction history, `var/lib/dnf/history.sqlite` (libdnf's "swdb", dnf 4 on
 * RHEL/CentOS/Alma/Rocky 8-9 and Fedora up to 40): one record per package in each transaction, with
 * the time, the action, the version, the command line and the login uid that ran it.
 *
 * Why the database and not dnf's text logs: `dnf.rpm.log` has time, action and package but no command
 * or user; `dnf.log` adds the command line but never says who ran it, and is rotated away within weeks
 * (logrotate, 4 rotations). The database keeps every transaction since the image was built, with the
 * loginuid (`trans.user_id`, which survives sudo: the person, not root). It is read with a minimal
 * SQLite reader (sqlite-file.ts): the agent carries no native addon.
 *
 * Tables read (libdnf/transaction/sql/swdb_*.sql): trans (id, dt_begin, dt_end, user_id, cmdline,
 * state), trans_item (trans_id, item_id, action, state), rpm (item_id, name, epoch, version, release,
 * arch). Other item types (comps groups, environments) have no rpm row and are skipped.
 */
import { DwParseError } from '../../shared/errors.js';
import { SqliteFile, type SqlValue } from './sqlite-file.js';

/** libdnf's TransactionItemAction, in its numbering (libdnf/transaction/Types.hpp). */
const ACTIONS: Record<number, DnfAction> = {
  1: 'install',
  2: 'downgrade',
  3: 'downgraded',
  4: 'obsolete',
  5: 'obsoleted',
  6: 'upgrade',
  7: 'upgraded',
  8: 'remove',
  9: 'reinstall',
  10: 'reinstalled',
  11: 'reason-change',
};
export type DnfAction =
  | 'install'
  | 'downgrade'
  | 'downgraded'
  | 'obsolete'
  | 'obsoleted'
  | 'upgrade'
  | 'upgraded'
  | 'remove'
  | 'reinstall'
  | 'reinstalled'
  | 'reason-change';

/** libdnf's TransactionItemState / TransactionState: 1 done, 2 error, 0 unknown (dnf killed mid-run). */
export type DnfState = 'done' | 'error' | 'unknown';
const STATES: Record<number, DnfState> = { 0: 'unknown', 1: 'done', 2: 'error' };

export interface DnfTransaction {
  id: number;
  /** Seconds since the epoch (an instant, unlike dpkg's wall-clock times). */
  begin: number;
  end?: number;
  /** The login uid of whoever ran dnf (through sudo too); 4294967295 (unset) is kept as is. */
  userId: number;
  /** dnf's arguments as it recorded them, e.g. `install strace` (without the program name). */
  commandLine?: string;
  state: DnfState;
  items: DnfItem[];
}

export interface DnfItem {
  action: DnfAction;
  name: string;
  arch: string;
  /** `[EPOCH:]VERSION-RELEASE` as the packages collector spells rpm versions (no `0:` for epoch 0). */
  evr: string;
  state: DnfState;
}

export interface DnfHistoryParse {
  transactions: DnfTransaction[];
  /** A row it cannot read is skipped with an error; the rest still counts. */
  errors: DwParseError[];
}

/** A command line is kept whole up to this, as apt's (MAX_COMMAND_LINE there). */
export const MAX_DNF_COMMAND_LINE = 2000;

const num = (v: SqlValue | undefined): number | null =>
  typeof v === 'number' && Number.isInteger(v) ? v : typeof v === 'bigint' ? null : null;
const str = (v: SqlValue | undefined): string | null => (typeof v === 'string' ? v : null);

/**
 * Transactions oldest first, each with its rpm items. Throws a DwParseError only when the file is not
 * a readable SQLite database or lacks dnf's tables; a malformed row is an error in `errors`.
 */
export function parseDnfHistory(bytes: Uint8Array, file: string): DnfHistoryParse {
  const db = new SqliteFile(bytes, file);
  const need = (name: string) => {
    const rows = db.table(name);
    if (rows === null) throw new DwParseError(file, 0, `no table ${name}: not a dnf history database`);
    return rows;
  };
  const trans = need('trans');
  const transItems = need('trans_item');
  const rpms = need('rpm');
  const errors: DwParseError[] = [];
  const bad = (table: string, row: Record<string, SqlValue>, why: string) =>
    errors.push(new DwParseError(file, 0, `${table} row ${JSON.stringify(row.id ?? row.item_id ?? null)}: ${why}`));

  const packages = new Map<number, { name: string; arch: string; evr: string }>();
  for (const r of rpms) {
    const itemId = num(r.item_id);
    const name = str(r.name);
    const version = str(r.version);
    const release = str(r.release);
    const arch = str(r.arch);
    const epoch = num(r.epoch) ?? 0;
    if (itemId === null || !name || !version || release === null || arch === null) {
      bad('rpm', r, 'missing item_id, name, version, release or arch');
      continue;
    }
    packages.set(itemId, {
      name,
      arch,
      evr: `${epoch > 0 ? `${epoch}:` : ''}${version}${release === '' ? '' : `-${release}`}`,
    });
  }

  const byId = new Map<number, DnfTransaction>();
  for (const r of trans) {
    const id = num(r.id);
    const begin = num(r.dt_begin);
    if (id === null || begin === null) {
      bad('trans', r, 'missing id or dt_begin');
      continue;
    }
    const t: DnfTransaction = {
      id,
      begin,
      userId: num(r.user_id) ?? -1,
      state: STATES[num(r.state) ?? 0] ?? 'unknown',
      items: [],
    };
    const end = num(r.dt_end);
    if (end !== null && end > 0) t.end = end;
    const cmd = str(r.cmdline);
    if (cmd) t.commandLine = cmd.length > MAX_DNF_COMMAND_LINE ? `${cmd.slice(0, MAX_DNF_COMMAND_LINE)}…` : cmd;
    byId.set(id, t);
  }

  for (const r of transItems) {
    const t = byId.get(num(r.trans_id) ?? NaN);
    const itemId = num(r.item_id);
    const action = ACTIONS[num(r.action) ?? 0];
    if (!t || itemId === null || !action) {
      bad('trans_item', r, 'unknown transaction, item or action');
      continue;
    }
    const pkg = packages.get(itemId);
    if (!pkg) continue; // a comps group or environment, not a package
    t.items.push({ action, ...pkg, state: STATES[num(r.state) ?? 0] ?? 'unknown' });
  }
  const transactions = [...byId.values()].sort((a, b) => a.begin - b.begin || a.id - b.id);
  return { transactions, errors };
}
