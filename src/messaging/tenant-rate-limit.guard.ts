import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { TenantPrincipal } from '../auth/auth.decorators';
import { Problem } from '../common/problem';
import { TenantSettingsCache } from './tenant-settings.cache';

/**
 * Per-tenant request rate limit on the send endpoints (`rateLimitPerSecond`, one point per request;
 * a batch request counts once). Kept in this process's memory (rate-limiter-flexible): with N
 * gateway processes behind a balancer a tenant may get up to N times its limit. Sets the
 * `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` headers; 429 `rate_limited` with
 * `Retry-After` when exceeded.
 */
@Injectable()
export class TenantRateLimitGuard implements CanActivate {
  private readonly limiters = new Map<number, RateLimiterMemory>();

  constructor(private readonly settings: TenantSettingsCache) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<FastifyRequest & { tenant?: TenantPrincipal }>();
    const res = ctx.switchToHttp().getResponse<FastifyReply>();
    if (!req.tenant) return true;
    const { rateLimitPerSecond: limit } = await this.settings.get(req.tenant.tenantId);
    let limiter = this.limiters.get(limit);
    if (!limiter) {
      limiter = new RateLimiterMemory({ points: limit, duration: 1, keyPrefix: `rl${limit}` });
      this.limiters.set(limit, limiter);
    }
    try {
      const r = await limiter.consume(req.tenant.tenantId, 1);
      this.headers(res, limit, r);
      return true;
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      this.headers(res, limit, e);
      const retryAfter = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw new Problem('rate_limited', `More than ${limit} requests per second`, undefined, {
        'Retry-After': String(retryAfter),
      });
    }
  }

  private headers(res: FastifyReply, limit: number, r: RateLimiterRes): void {
    res.header('RateLimit-Limit', String(limit));
    res.header('RateLimit-Remaining', String(Math.max(0, r.remainingPoints)));
    res.header('RateLimit-Reset', String(Math.max(0, Math.ceil(r.msBeforeNext / 1000))));
  }
}
