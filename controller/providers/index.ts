/**
 * @module The provider registry: builds the configured providers once at start-up (a bad secret file or
 * kubeconfig fails there) and wraps each so metrics and logs come from one place, not from each provider.
 */
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProviderConfig, SchedulerConfig } from '../scheduler/config.js';
import { groupMatches } from '../scheduler/budgets.js';
import { awsAsgProvider } from './aws-asg.js';
import { execProvider } from './exec.js';
import { kubernetesProvider } from './kubernetes.js';
import { ProviderError, type Provider } from './types.js';
import { webhookProvider } from './webhook.js';

export function createProvider(cfg: ProviderConfig): Provider {
  switch (cfg.type) {
    case 'aws-asg':
      return awsAsgProvider(cfg);
    case 'kubernetes':
      return kubernetesProvider(cfg);
    case 'webhook':
      return webhookProvider(cfg);
    case 'exec':
      return execProvider(cfg);
  }
}

export function providerMetrics(registry: Registry) {
  return {
    calls: new Counter({
      name: 'driftwarden_provider_calls_total',
      help: 'Provider calls by provider, method and outcome',
      labelNames: ['provider', 'method', 'outcome'] as const,
      registers: [registry],
    }),
    seconds: new Histogram({
      name: 'driftwarden_provider_call_seconds',
      help: 'Provider call duration',
      labelNames: ['provider', 'method'] as const,
      buckets: [0.05, 0.25, 1, 5, 30, 120, 600],
      registers: [registry],
    }),
  };
}

/** The provider with every call counted, timed and logged (failures with their message, never secrets). */
export function instrument(p: Provider, m: ReturnType<typeof providerMetrics> | null, log: Logger): Provider {
  const wrap =
    <A extends unknown[], R>(method: 'replace' | 'status', fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      const end = m?.seconds.startTimer({ provider: p.type, method });
      try {
        const r = await fn(...a);
        m?.calls.inc({ provider: p.type, method, outcome: 'ok' });
        return r;
      } catch (err) {
        m?.calls.inc({
          provider: p.type,
          method,
          outcome: err instanceof ProviderError && !err.retryable ? 'error' : 'retryable-error',
        });
        log.warn(
          { provider: p.type, method, err: err instanceof Error ? err.message : String(err) },
          'provider call failed',
        );
        throw err;
      } finally {
        end?.();
      }
    };
  return { type: p.type, replace: wrap('replace', p.replace.bind(p)), status: wrap('status', p.status.bind(p)) };
}

/** The provider for each group: the group's own (scheduler.groups) or the default (scheduler.provider). */
export function providerRegistry(
  cfg: SchedulerConfig,
  o: { log: Logger; registry?: Registry; make?: (c: ProviderConfig) => Provider },
): (group: string) => Provider | null {
  const make = o.make ?? createProvider;
  const m = o.registry ? providerMetrics(o.registry) : null;
  const build = (c: ProviderConfig) => instrument(make(c), m, o.log);
  const fallback = cfg.provider ? build(cfg.provider) : null;
  const perGroup = Object.entries(cfg.groups)
    .filter(([, s]) => s.provider)
    .map(([pattern, s]) => [pattern, build(s.provider!)] as const);
  return (group) => {
    const exact = perGroup.find(([k]) => k === group) ?? perGroup.find(([k]) => groupMatches(k, group));
    return exact ? exact[1] : fallback;
  };
}
