import { Counter, Gauge, register, type Metric } from 'prom-client';

/**
 * Metrics of the provider wallet watch (prom-client default registry, re-used if already registered).
 * The account id is a label (one series per provider account, as `gerbang_provider_circuit_open`);
 * gauges are set by the process that polled the account, so with several gateway processes read
 * them with `max by (account)`.
 */
function reuse<T extends Metric>(name: string, create: () => T): T {
  return (register.getSingleMetric(name) as T | undefined) ?? create();
}

export const providerBalanceGauge = reuse(
  'gerbang_provider_balance',
  () =>
    new Gauge({
      name: 'gerbang_provider_balance',
      help: 'Last balance read from balance.php, per provider account (the provider unit)',
      labelNames: ['account'] as const,
    }),
);

export const providerBalanceExpiryGauge = reuse(
  'gerbang_provider_balance_expiry_timestamp_seconds',
  () =>
    new Gauge({
      name: 'gerbang_provider_balance_expiry_timestamp_seconds',
      help: 'Expiry of the provider balance read from balance.php (Unix time), per provider account',
      labelNames: ['account'] as const,
    }),
);

export const providerBalanceAlertGauge = reuse(
  'gerbang_provider_balance_alert',
  () =>
    new Gauge({
      name: 'gerbang_provider_balance_alert',
      help: '1 while the last poll of a provider account found it low, empty, expired or expiring within 14 days, else 0',
      labelNames: ['account'] as const,
    }),
);

export const providerHeldGauge = reuse(
  'gerbang_provider_account_held',
  () =>
    new Gauge({
      name: 'gerbang_provider_account_held',
      help: '1 while the wallet watch holds dispatch through a provider account (empty or lapsed), else 0',
      labelNames: ['account'] as const,
    }),
);

export const providerBalanceAlerts = reuse(
  'gerbang_provider_balance_alerts_total',
  () =>
    new Counter({
      name: 'gerbang_provider_balance_alerts_total',
      help: 'Provider wallet alerts raised (counted once when a reason appears, not on every poll)',
      labelNames: ['reason'] as const,
    }),
);

export const providerBalancePolls = reuse(
  'gerbang_provider_balance_polls_total',
  () =>
    new Counter({
      name: 'gerbang_provider_balance_polls_total',
      help: 'balance.php reads of the wallet watch by source (poll, live) and outcome (balance, error)',
      labelNames: ['source', 'outcome'] as const,
    }),
);
