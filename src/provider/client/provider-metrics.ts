import { Counter, Gauge, Histogram, register, type Metric } from 'prom-client';

/**
 * Provider metrics on prom-client's default registry. Labels are bounded: `operation` (5 values),
 * `outcome` (outcome classes and error codes). The account id is a label only on the breaker gauge
 * (one series per provider account); nothing secret is ever a label.
 *
 * Metrics are looked up before being created, so loading this module twice (jest module registries,
 * a rebuilt client) does not throw "already registered".
 */
function reuse<T extends Metric>(name: string, create: () => T): T {
  return (register.getSingleMetric(name) as T | undefined) ?? create();
}

export const providerRequests = reuse(
  'gerbang_provider_requests_total',
  () =>
    new Counter({
      name: 'gerbang_provider_requests_total',
      help: 'Provider HTTP operations by outcome class (send: accepted/rejected/notSent/uncertain/unavailable)',
      labelNames: ['operation', 'outcome'] as const,
    }),
);

export const providerRequestDuration = reuse(
  'gerbang_provider_request_duration_seconds',
  () =>
    new Histogram({
      name: 'gerbang_provider_request_duration_seconds',
      help: 'Duration of provider HTTP operations that reached the network',
      labelNames: ['operation'] as const,
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    }),
);

export const providerCircuitOpen = reuse(
  'gerbang_provider_circuit_open',
  () =>
    new Gauge({
      name: 'gerbang_provider_circuit_open',
      help: '1 while the send circuit breaker of a provider account is open or half-open, else 0',
      labelNames: ['account'] as const,
    }),
);
