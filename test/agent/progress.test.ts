import { describe, expect, it } from 'vitest';
import { formatBytes, terminalProgress } from '../../agent/progress.js';

function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  return { stream: { isTTY, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream, written };
}

describe('terminal progress', () => {
  it('shows files and bytes hashed, the rate and time left on a terminal, and clears the line at the end', () => {
    const { stream, written } = fakeStream(true);
    const p = terminalProgress(stream)!;
    p.onHashProgress!({ files: 10, bytes: 5_000_000 }, { files: 100, bytes: 50_000_000 });
    expect(written.join('')).toMatch(/hashing 10\/100 files, 5\.0 MB\/50\.0 MB, .+\/s, \d+s left/);
    p.end();
    expect(written.at(-1)).toBe('\r\x1b[K');
  });

  it('is absent when stderr is not a terminal', () => {
    expect(terminalProgress(fakeStream(false).stream)).toBeUndefined();
  });

  it('formats byte counts', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1_700_000_000)).toBe('1.7 GB');
  });
});
