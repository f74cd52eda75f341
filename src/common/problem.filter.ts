import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { redactUrl } from '../logging';
import { isConnectionError, isTransientConflict, UNAVAILABLE_RETRY_AFTER_S } from '../database/connection-errors';
import { FieldError, Problem, ProblemCode, problemBody } from './problem';

/**
 * Renders every error as RFC 9457 problem+json with a stable `code`.
 * Unknown errors become a 500 `internal` carrying only an error id; the stack goes to the log.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('ProblemFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    const problem = this.toProblem(exception, req);
    if (res.sent || res.raw.headersSent) return;
    if (problem.headers) res.headers(problem.headers);
    res
      .status(problem.status)
      .type('application/problem+json')
      .send(JSON.stringify(problemBody(problem)));
  }

  private toProblem(exception: unknown, req: FastifyRequest): Problem {
    if (exception instanceof Problem) return exception;
    if (exception instanceof HttpException) return this.fromHttpException(exception);
    // The database went away (restart, failover, network): a 503 the client may retry, not a 500.
    // The pg pool reconnects by itself; nothing is logged as a bug.
    if (isConnectionError(exception)) {
      this.logger.warn(
        {
          method: req.method,
          path: redactUrl(req.url),
          err: exception instanceof Error ? exception.message : String(exception),
        },
        'database unavailable',
      );
      return new Problem('unavailable', 'The database is temporarily unreachable; retry later', undefined, {
        'Retry-After': String(UNAVAILABLE_RETRY_AFTER_S),
      });
    }
    // A deadlock or serialization failure that survived the retries: rolled back, nothing written, and
    // retrying may succeed. 503 with a short Retry-After; logged as an error (a lock-order bug to fix).
    if (isTransientConflict(exception)) {
      this.logger.error(
        {
          method: req.method,
          path: redactUrl(req.url),
          err: exception instanceof Error ? exception.message : String(exception),
        },
        'transaction conflict (deadlock or serialization failure)',
      );
      return new Problem('unavailable', 'The request collided with another one and was rolled back; retry', undefined, {
        'Retry-After': '1',
      });
    }
    const errorId = randomUUID();
    this.logger.error(
      {
        errorId,
        method: req.method,
        path: redactUrl(req.url),
        err: exception instanceof Error ? { message: exception.message, stack: exception.stack } : String(exception),
      },
      'unhandled error',
    );
    return new Problem('internal', `An internal error occurred (error id ${errorId})`);
  }

  private fromHttpException(exception: HttpException): Problem {
    const status = exception.getStatus();
    const response = exception.getResponse() as string | { message?: string | string[]; errors?: FieldError[] };
    const message = typeof response === 'string' ? response : response.message;
    const detail = Array.isArray(message) ? message.join('; ') : message;
    const byStatus: Record<number, ProblemCode> = {
      400: 'validation_failed',
      401: 'unauthorized',
      403: 'forbidden',
      404: 'not_found',
      405: 'method_not_allowed',
      406: 'not_acceptable',
      409: 'conflict',
      413: 'payload_too_large',
      415: 'unsupported_media_type',
      422: 'validation_failed',
      429: 'rate_limited',
    };
    const code = byStatus[status] ?? (status >= 500 ? 'internal' : 'validation_failed');
    if (code === 'internal') return new Problem('internal', 'An internal error occurred');
    const errors = typeof response === 'object' ? response.errors : undefined;
    return new Problem(code, detail, errors);
  }
}
