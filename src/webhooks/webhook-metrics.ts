import { Counter, Gauge, Histogram, register } from 'prom-client';

function metric<T>(name: string, make: () => T): T {
  return (register.getSingleMetric(name) as T | undefined) ?? make();
}

/** Outcomes: delivered, rejected (non-2xx), gone (410), timeout, unreachable, blocked (SSRF at connect). */
export const webhookAttempts = metric(
  'gerbang_webhook_attempts_total',
  () =>
    new Counter({
      name: 'gerbang_webhook_attempts_total',
      help: 'Webhook attempts by outcome',
      labelNames: ['outcome'],
    }),
);

export const webhookAttemptDuration = metric(
  'gerbang_webhook_attempt_duration_seconds',
  () =>
    new Histogram({
      name: 'gerbang_webhook_attempt_duration_seconds',
      help: 'Webhook request latency',
      labelNames: ['outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
    }),
);

/** Age of the oldest due, undelivered webhook (0 when none is waiting): the queue's lag. */
export const webhookQueueAge = metric(
  'gerbang_webhook_queue_oldest_due_seconds',
  () =>
    new Gauge({
      name: 'gerbang_webhook_queue_oldest_due_seconds',
      help: 'Age of the oldest due pending webhook delivery',
    }),
);

export const webhookQueueDue = metric(
  'gerbang_webhook_queue_due',
  () => new Gauge({ name: 'gerbang_webhook_queue_due', help: 'Pending webhook deliveries that are due now' }),
);

/** message_events rows not yet turned into message.status deliveries (relay lag). */
export const webhookRelayLag = metric(
  'gerbang_webhook_relay_lag_events',
  () =>
    new Gauge({
      name: 'gerbang_webhook_relay_lag_events',
      help: 'message_events rows behind the webhook relay cursor',
    }),
);
