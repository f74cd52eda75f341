import type { NextFunction, Request, Response } from 'express';
import { Counter, Histogram, collectDefaultMetrics, register } from 'prom-client';

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
  () => new Counter({ name: 'gerbang_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'] }),
);

/** Labels by route template (`/v1/messages/:id`), never by raw path: ids would explode cardinality. */
export function httpMetricsMiddleware(req: Request, res: Response, next: NextFunction): void {
  const start = process.hrtime.bigint();
  res.once('finish', () => {
    const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
    const labels = { method: req.method, route: `${req.baseUrl ?? ''}${route}`, status: String(res.statusCode) };
    httpDuration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    httpRequests.inc(labels);
  });
  next();
}
