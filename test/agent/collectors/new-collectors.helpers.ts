/** @module Shared by the tests of the kernel-modules, services, accounts and firewall collectors: a scratch copy of the web fixture and a context to collect it with. */
import { mkdirSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CollectContext } from '../../../agent/collectors/types.js';
import type { ExecFn } from '../../../agent/exec.js';
import { silentLogger } from '../../../agent/log.js';
import { HostRoot } from '../../../agent/root.js';
import { defaultRules } from '../../../shared/schema/rules.js';
import { copyFixture, FIXTURES } from '../../helpers/tmp.js';

export const WEB = join(FIXTURES, 'hosts/web');

export const noExec: ExecFn = (file) =>
  Promise.reject(Object.assign(new Error(`${file}: not run under a fixture root`), { code: 'EPERM' }));

export function webCopy(): string {
  return copyFixture(WEB);
}

export function ctx(dir: string, exec: ExecFn = noExec): CollectContext {
  return { root: new HostRoot(dir), rules: defaultRules(), exec, log: silentLogger };
}

export function put(root: string, rel: string, text: string): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), text);
}

export function append(root: string, rel: string, text: string): void {
  appendFileSync(join(root, rel), text);
}

export function link(root: string, rel: string, target: string): void {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  symlinkSync(target, join(root, rel));
}
