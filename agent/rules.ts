/** @module Turn an agent config into the collection rules a manifest is built with. */
import type { AgentConfig } from '../shared/schema/config.js';
import { COLLECTOR_NAMES } from '../shared/schema/common.js';
import { defaultRules, type CollectionRules } from '../shared/schema/rules.js';

/** Defaults, then the config: roots replace, ignore globs and sysctl excludes extend. */
export function rulesFromConfig(config?: AgentConfig): CollectionRules {
  const rules = defaultRules();
  if (!config) return rules;
  const c = config.collectors;
  rules.collectors = COLLECTOR_NAMES.filter((name) => c[name].enabled);
  if (c.files.roots) rules.files.roots = [...c.files.roots];
  rules.files.ignore = [...new Set([...rules.files.ignore, ...c.files.ignore])];
  rules.sysctl.exclude = [...new Set([...rules.sysctl.exclude, ...c.sysctl.exclude])];
  return rules;
}
