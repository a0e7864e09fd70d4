/**
 * @module The command catalog (shared/commands.ts) against the programs: every top-level command the
 * agent and controller programs register is in it, on the side that owns it, so `--help` cannot leave
 * one out and dispatch cannot send one to the wrong side; and `help` requests are read as meant.
 */
import { describe, expect, it } from 'vitest';
import { buildProgram as agentProgram } from '../../agent/cli.js';
import { buildProgram as controllerProgram } from '../../controller/cli.js';
import { COMMANDS } from '../../shared/commands.js';
import { helpRequest, overviewText } from '../../shared/help.js';

const names = (side: string) =>
  COMMANDS.filter((c) => c.side === side)
    .map((c) => c.name)
    .sort();

describe('the command catalog', () => {
  it('lists exactly the commands each side registers', () => {
    expect(
      agentProgram()
        .commands.map((c) => c.name())
        .sort(),
    ).toEqual(names('agent'));
    expect(
      controllerProgram()
        .commands.map((c) => c.name())
        .sort(),
    ).toEqual(names('controller'));
    expect(names('demo')).toEqual(['demo']);
  });

  it('the overview has a line for every command; a build without a side says so', () => {
    const all = overviewText();
    for (const c of COMMANDS) expect(all).toContain(`  ${c.name.padEnd(16)}${c.summary}\n`);
    expect(overviewText(new Set(['agent']))).toMatch(/ {2}hosts +.*\(not in this build\)/);
    expect(overviewText(new Set(['agent']))).not.toMatch(/ {2}check +.*\(not in this build\)/);
  });

  it('reads help requests: the overview, a command (and a subcommand), an unknown name, and everything else', () => {
    expect(helpRequest([])).toEqual({ kind: 'overview' });
    expect(helpRequest(['--help'])).toEqual({ kind: 'overview' });
    expect(helpRequest(['help'])).toEqual({ kind: 'overview' });
    expect(helpRequest(['help', 'replacements'])).toEqual({ kind: 'command', argv: ['replacements', '--help'] });
    expect(helpRequest(['help', 'replacements', 'approve'])).toEqual({
      kind: 'command',
      argv: ['replacements', 'approve', '--help'],
    });
    expect(helpRequest(['help', 'nosuch'])).toEqual({ kind: 'unknown', name: 'nosuch' });
    expect(helpRequest(['hosts', '--help'])).toBeNull(); // commander answers that one itself
    expect(helpRequest(['--version'])).toBeNull();
  });
});
