import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Histogram, collectDefaultMetrics, register } from 'prom-client';
import { redactUrl } from '../logging';

let started = false;
/** Registers process metrics once per process (tests create several apps). */
export function startDefaultMetrics(): void {
  if (started) return;
  started = true;
  collectDefaultMetrics({ prefix: 'gerbang_' });
}

function metric<T>(name: string, make: () => T): T {
  return (register.getSingleMetric(name) as T | undefined) ?? make();
}

export const httpDuration = metric(
  'gerbang_http_request_duration_seconds',
  () =>
    new Histogram({
      name: 'gerbang_http_request_duration_seconds',
      help: 'HTTP request latency by route template',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    }),
);

export const httpRequests = metric(
  'gerbang_http_requests_total',
  () =>
    new Counter({
      name: 'gerbang_http_requests_total',
      help: 'HTTP requests',
      labelNames: ['method', 'route', 'status'],
    }),
);

/**
 * Per request (a Fastify `onResponse` hook): metrics labelled by route template (`/v1/messages/:id`, never the raw path: ids would
 * explode cardinality), and one access-log line: errors always, client errors at info, the rest at
 * debug (thousands of sends per second at info would be noise).
 */
export function registerHttpMetrics(fastify: FastifyInstance, logger: Logger): void {
  // prom-client hashes a label object on every observe(); resolve each label set once and keep its
  // children (measured: the middleware cost ~25 % of a trivial request's CPU before this cache).
  const children = new Map<string, { duration: { observe(v: number): void }; count: { inc(): void } }>();
  fastify.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const key = `${req.method} ${route} ${status}`;
    let child = children.get(key);
    if (!child) {
      const labels = { method: req.method, route, status: String(status) };
      child = { duration: httpDuration.labels(labels), count: httpRequests.labels(labels) };
      if (children.size < 5000) children.set(key, child);
    }
    const ms = reply.elapsedTime;
    child.duration.observe(ms / 1000);
    child.count.inc();
    const level = status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug';
    if (logger.isLevelEnabled(level)) {
      logger[level]({ method: req.method, url: redactUrl(req.url), status, ms: Math.round(ms) }, 'request');
    }
    done();
  });
}
