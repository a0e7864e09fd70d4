/**
 * @module Give a scan's memory back: after a full scan the heap holds two large sections' worth of
 * garbage, and V8 collects it lazily on an idle process, so an agent would sit at several hundred MB
 * between scans. One full collection after each scan brings it back near its idle size.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null = null;

export function releaseMemory(): void {
  if (!gc) {
    // The documented way to reach gc() without starting node with --expose-gc.
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
