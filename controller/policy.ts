/** @module Policy: load and compile the rules once, then decide ignore/report/taint/exempt for each deviation of each report. */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { formatPath } from '../shared/config-load.js';
import { DwError } from '../shared/errors.js';
import { COLLECTOR_NAMES, type CollectorName } from '../shared/schema/common.js';
import type { Change, Severity } from '../shared/schema/deviation.js';
import { SEVERITY_RANK } from '../shared/severity.js';
import {
  compileKeyGlobs,
  DEFAULT_POLICY,
  globProblem,
  keyStyleOf,
  PolicyFileSchema,
  ruleName,
  type PolicyFile,
  type PolicyRule,
  type RuleAction,
} from '../shared/schema/policy.js';
import type { ExemptionRow, PolicyAction } from './store/types.js';

/** The fields of a deviation the policy looks at (a report's Deviation or a stored HostDeviationRow). */
export interface DeviationLike {
  collector: string;
  key: string;
  change: Change;
  severity: Severity;
}

export interface EvaluationContext {
  hostId: string;
  imageId: string;
  now: Date | number | string;
  exemptions: readonly ExemptionRow[];
}

export interface Decision {
  action: PolicyAction;
  severity: Severity;
  /** `rule:<name>`, `exemption:<id>`, or `no-rule` (nothing matched: tainted, see decide). */
  decidedBy: string;
  /** The rule that matched, also when an exemption then decided; null when none did. */
  rule: string | null;
}

/** taint > report > exempt > ignore > none (no deviations at all). */
export type WorstAction = PolicyAction | 'none';

export interface Culprit extends Decision {
  collector: string;
  key: string;
  change: Change;
}

export interface Evaluation {
  /** One per deviation, in the order given. */
  decisions: Decision[];
  worst: WorstAction;
  /** The deviation behind `worst` (the most severe, then the first): what a state change cites. */
  culprit: Culprit | null;
  counts: Record<PolicyAction, number>;
}

export interface CompiledRule {
  readonly name: string;
  /** Position in evaluation order (user rules, then defaults). */
  readonly index: number;
  readonly origin: 'user' | 'default';
  readonly collector: CollectorName | '*';
  readonly key: readonly string[];
  readonly change: readonly Change[] | null;
  readonly action: RuleAction;
  readonly severity: Severity | null;
}

interface Step {
  rule: CompiledRule;
  decidedBy: string;
  /** Bit mask of the changes the rule covers (CHANGE_BIT). */
  changes: number;
  test: (key: string) => boolean;
}

const CHANGE_BIT: Record<Change, number> = { added: 1, removed: 2, modified: 4 };
const ALL_CHANGES = 7;
const RANK: Record<WorstAction, number> = { none: 0, ignore: 1, exempt: 2, report: 3, taint: 4 };

/**
 * A compiled policy: immutable, safe to share between requests. Every rule's globs are compiled
 * once per collector they can meet, and each collector gets its own ordered list of steps, so an
 * evaluation only walks the rules that can apply and never compiles anything.
 */
export class Policy {
  readonly rules: readonly CompiledRule[];
  readonly label: string;
  readonly #plans = new Map<string, readonly Step[]>();
  /** For collectors the rule schema does not know (a newer agent): only `*` rules, name-style. */
  readonly #fallback: readonly Step[];

  constructor(file: PolicyFile, label = 'policy') {
    this.label = label;
    const user = file.rules.map((r, i) => compileRule(r, ruleName(r, i), i, 'user'));
    const defaults = file.defaults
      ? DEFAULT_POLICY.map((r, i) => compileRule(r, ruleName(r, i), user.length + i, 'default'))
      : [];
    this.rules = Object.freeze([...user, ...defaults]);
    const stepsFor = (collector: string) =>
      Object.freeze(
        this.rules
          .filter((r) => r.collector === '*' || r.collector === collector)
          .map((rule) => ({
            rule,
            decidedBy: `rule:${rule.name}`,
            changes: rule.change ? rule.change.reduce((m, c) => m | CHANGE_BIT[c], 0) : ALL_CHANGES,
            test: compileKeyGlobs(rule.key, keyStyleOf(collector)),
          })),
      );
    for (const c of COLLECTOR_NAMES) this.#plans.set(c, stepsFor(c));
    this.#fallback = stepsFor('\0unknown');
    Object.freeze(this);
  }

  /** The first rule that matches, or null. */
  match(d: DeviationLike): { rule: CompiledRule; decidedBy: string } | null {
    const steps = this.#plans.get(d.collector) ?? this.#fallback;
    const bit = CHANGE_BIT[d.change] ?? 0;
    for (const step of steps) {
      if ((step.changes & bit) !== 0 && step.test(d.key)) return step;
    }
    return null;
  }
}

function compileRule(rule: PolicyRule, name: string, index: number, origin: CompiledRule['origin']): CompiledRule {
  return Object.freeze({
    name,
    index,
    origin,
    collector: rule.collector,
    key: Object.freeze(typeof rule.key === 'string' ? [rule.key] : [...rule.key]),
    change: rule.change ? Object.freeze([...rule.change]) : null,
    action: rule.action,
    severity: rule.severity ?? null,
  });
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/**
 * "policy.yaml: rules[2] (name "usr binaries"): action: expected one of ignore|report|taint": a
 * rule is named by its position and, when it has one, its name, because operators know rules by
 * name and YAML lists have no other handle.
 */
export function formatPolicyIssues(label: string, error: z.ZodError, raw: unknown): string {
  const rules =
    raw && typeof raw === 'object' && Array.isArray((raw as { rules?: unknown }).rules)
      ? (raw as { rules: unknown[] }).rules
      : [];
  const pre = label ? `${label}: ` : '';
  const where = (path: readonly PropertyKey[]): string => {
    if (path[0] !== 'rules' || typeof path[1] !== 'number') return formatPath(path);
    const rule = rules[path[1]] as { name?: unknown } | undefined;
    const named =
      rule && typeof rule === 'object' && typeof rule.name === 'string' ? ` (name ${JSON.stringify(rule.name)})` : '';
    const rest = path.slice(2);
    return `rules[${path[1]}]${named}${rest.length > 0 ? `: ${formatPath(rest)}` : ''}`;
  };
  return error.issues
    .flatMap((issue) =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((k) => `${pre}${where([...issue.path, k])}: unknown key`)
        : [`${pre}${where(issue.path)}: ${issue.message}`],
    )
    .join('\n');
}

/** Validate and compile policy YAML; `label` (usually the file name) starts every error line. */
export function parsePolicy(text: string, label = 'policy.yaml'): Policy {
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
  const raw: unknown = doc.toJS() ?? {};
  const parsed = PolicyFileSchema.safeParse(raw);
  if (!parsed.success)
    throw new DwError('DW_ERR_CONFIG', formatPolicyIssues(label, parsed.error, raw), { file: label });
  return new Policy(parsed.data, label);
}

export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DwError('DW_ERR_CONFIG', `cannot read policy ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      file,
    });
  }
  return parsePolicy(text, basename(file));
}

/** The shipped defaults alone: what a controller without a `policy:` key runs. */
export function defaultPolicy(): Policy {
  return new Policy({ rules: [], defaults: true }, 'defaults');
}

// ---------------------------------------------------------------------------------------------
// Exemptions
// ---------------------------------------------------------------------------------------------

interface CompiledExemption {
  row: ExemptionRow;
  expiresMs: number;
  /** Per key style; null when the stored pattern does not compile (it then exempts nothing). */
  tests: Map<string, ((key: string) => boolean) | null>;
}

/** Rows are fetched afresh per report, so compiled patterns are cached by text as well as by row. */
const byRow = new WeakMap<ExemptionRow, CompiledExemption>();
const patternCache = new Map<string, ((key: string) => boolean) | null>();
const PATTERN_CACHE_MAX = 4096;

function compiledExemption(row: ExemptionRow): CompiledExemption {
  let c = byRow.get(row);
  if (!c) {
    c = { row, expiresMs: Date.parse(row.expiresAt), tests: new Map() };
    byRow.set(row, c);
  }
  return c;
}

function exemptionTest(c: CompiledExemption, collector: string): ((key: string) => boolean) | null {
  const style = keyStyleOf(collector);
  if (c.tests.has(style)) return c.tests.get(style)!;
  const cacheKey = `${style}\0${c.row.keyPattern}`;
  let test = patternCache.get(cacheKey);
  if (test === undefined) {
    // Stored rows were validated on the way in; one that no longer compiles must not break
    // evaluation, and failing closed (no exemption) is the safe direction.
    test = globProblem(c.row.keyPattern, style) === null ? compileKeyGlobs([c.row.keyPattern], style) : null;
    if (patternCache.size >= PATTERN_CACHE_MAX) patternCache.clear();
    patternCache.set(cacheKey, test);
  }
  c.tests.set(style, test);
  return test;
}

function toMs(now: EvaluationContext['now']): number {
  if (typeof now === 'number') return now;
  if (typeof now === 'string') return Date.parse(now);
  return now.getTime();
}

/** The exemptions that can apply to this host now: active, unrevoked, scoped to it. */
function applicable(ctx: EvaluationContext): CompiledExemption[] {
  if (ctx.exemptions.length === 0) return [];
  const now = toMs(ctx.now);
  const out: CompiledExemption[] = [];
  for (const row of ctx.exemptions) {
    if (row.revokedAt !== null) continue;
    if (row.hostId !== null && row.hostId !== ctx.hostId) continue;
    if (row.imageId !== null && row.imageId !== ctx.imageId) continue;
    const c = compiledExemption(row);
    // NaN (an unparseable time) compares false: such an exemption is not active.
    if (!(c.expiresMs > now)) continue;
    out.push(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/**
 * IMPORTANT: a deviation no rule matches taints. The rules name what may be reported or ignored;
 * anything they did not foresee (a key shape no glob anticipated, a path outside every rule) is
 * drift on an immutable host, and failing open would let a host choose a key that escapes review.
 */
const NO_RULE_ACTION: RuleAction = 'taint';

function decide(policy: Policy, d: DeviationLike, exemptions: readonly CompiledExemption[]): Decision {
  const hit = policy.match(d);
  const action = hit ? hit.rule.action : NO_RULE_ACTION;
  const severity = hit?.rule.severity ?? d.severity;
  const decidedBy = hit ? hit.decidedBy : 'no-rule';
  const rule = hit ? hit.rule.name : null;
  // An exemption waives a report or a taint (the fallback's too); an ignore has nothing to waive.
  if (action !== 'ignore') {
    for (const e of exemptions) {
      if (e.row.collector !== null && e.row.collector !== d.collector) continue;
      const test = exemptionTest(e, d.collector);
      if (test !== null && test(d.key)) return { action: 'exempt', severity, decidedBy: `exemption:${e.row.id}`, rule };
    }
  }
  return { action, severity, decidedBy, rule };
}

/** The decision for one deviation: the first matching rule, then any exemption that covers it. */
export function evaluate(policy: Policy, deviation: DeviationLike, ctx: EvaluationContext): Decision {
  return decide(policy, deviation, applicable(ctx));
}

/** Decisions for a whole report, with the worst action and the deviation that caused it. */
export function evaluateAll(policy: Policy, deviations: readonly DeviationLike[], ctx: EvaluationContext): Evaluation {
  const exemptions = applicable(ctx);
  const counts: Record<PolicyAction, number> = { ignore: 0, report: 0, taint: 0, exempt: 0 };
  const decisions: Decision[] = new Array(deviations.length);
  let worst: WorstAction = 'none';
  let culpritAt = -1;
  for (let i = 0; i < deviations.length; i++) {
    const d = deviations[i]!;
    const decision = decide(policy, d, exemptions);
    decisions[i] = decision;
    counts[decision.action]++;
    const rank = RANK[decision.action];
    if (
      rank > RANK[worst] ||
      (rank === RANK[worst] && SEVERITY_RANK[decision.severity] > SEVERITY_RANK[decisions[culpritAt]!.severity])
    ) {
      worst = decision.action;
      culpritAt = i;
    }
  }
  const culprit: Culprit | null =
    culpritAt < 0
      ? null
      : {
          collector: deviations[culpritAt]!.collector,
          key: deviations[culpritAt]!.key,
          change: deviations[culpritAt]!.change,
          ...decisions[culpritAt]!,
        };
  return { decisions, worst, culprit, counts };
}
