/** @module Progress of a long scan on a terminal's stderr: files and bytes hashed, rate, time left. */
import type { ScanProgress } from './collectors/types.js';

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];
export function formatBytes(n: number): string {
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${UNITS[i]}`;
}

/** Only when stderr is a terminal and the caller wants it: piped output carries nothing but the result. */
export function terminalProgress(
  stream: NodeJS.WriteStream = process.stderr,
): (ScanProgress & { end(): void }) | undefined {
  if (!stream.isTTY) return undefined;
  const started = Date.now();
  let last = 0;
  let shown = false;
  return {
    onHashProgress(done, total) {
      const now = Date.now();
      if (now - last < 200 && done.files < total.files) return;
      last = now;
      const secs = Math.max((now - started) / 1000, 0.001);
      const rate = done.bytes / secs;
      const left = rate > 0 ? Math.max(0, (total.bytes - done.bytes) / rate) : 0;
      stream.write(
        `\r\x1b[Khashing ${done.files.toLocaleString('en')}/${total.files.toLocaleString('en')} files, ` +
          `${formatBytes(done.bytes)}/${formatBytes(total.bytes)}, ${formatBytes(rate)}/s, ${Math.ceil(left)}s left`,
      );
      shown = true;
    },
    end() {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}
