/** @module Read a YAML config file and validate it, naming the offending key on failure. */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { DwError } from './errors.js';

/** "collectors.files.roots[2]" from a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(top level)';
}

/** One line per issue, "label: path: reason"; an empty label gives "path: reason". */
export function formatIssues(label: string, error: z.ZodError): string {
  const pre = label ? `${label}: ` : '';
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${pre}${formatPath([...issue.path, k])}: unknown key`).join('\n');
      }
      return `${pre}${formatPath(issue.path)}: ${issue.message}`;
    })
    .join('\n');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Parse YAML text against a schema; the result is frozen so nothing changes it after start-up. */
export function parseConfigText<S extends z.ZodTypeAny>(schema: S, text: string, label: string): z.infer<S> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const line = first.linePos?.[0]?.line;
    throw new DwError(
      'DW_ERR_CONFIG',
      `${label}${line ? `:${line}` : ''}: invalid YAML: ${first.message.split('\n')[0]}`,
      { file: label },
    );
  }
  const raw = doc.toJS() ?? {};
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new DwError('DW_ERR_CONFIG', formatIssues(label, parsed.error), { file: label });
  }
  return deepFreeze(parsed.data);
}

export function loadConfigFile<S extends z.ZodTypeAny>(schema: S, path: string): z.infer<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DwError('DW_ERR_CONFIG', `cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      file: path,
    });
  }
  return parseConfigText(schema, text, basename(path));
}
