import { Controller, Get, HttpCode, Res, ServiceUnavailableException } from '@nestjs/common';
import { type HealthCheckResult, HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.decorators';
import { UNAVAILABLE_RETRY_AFTER_S } from '../database/connection-errors';
import { DrainingHealthIndicator } from './draining.health';
import { MIGRATIONS_PENDING, MigrationsHealthIndicator } from './migrations.health';

/** Readiness answers within this time: a database that does not answer is not ready. */
const READY_TIMEOUT_MS = 2_000;

/**
 * Terminus's answer in the contract's words. `draining`: whether our draining indicator is down *now*.
 * A probe that started just before shutdown ran its draining check while still up, and terminus may then
 * finish it as `shutting_down` (its own flag, set in a later hook): that answer is draining too.
 */
export function contractChecks(result: HealthCheckResult, draining: boolean): Record<string, string> {
  const details = result.details;
  const up = (key: string) => details[key]?.status === 'up';
  const checks: Record<string, string> = { database: up('database') ? 'ok' : 'unreachable', migrations: 'unknown' };
  // A database that did not answer the ping does not vouch for its migrations either.
  if (up('database') && up('migrations')) checks.migrations = 'ok';
  else if (up('database') && details.migrations?.message === MIGRATIONS_PENDING) checks.migrations = 'pending';
  if (details.shutdown?.status === 'down' || result.status === 'shutting_down' || draining)
    checks.shutdown = 'draining';
  return checks;
}

@ApiExcludeController()
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly typeOrm: TypeOrmHealthIndicator,
    private readonly migrations: MigrationsHealthIndicator,
    private readonly draining: DrainingHealthIndicator,
    private readonly dataSource: DataSource,
  ) {}

  /**
   * The process is up and serving HTTP (also while the database is away, and while it drains on
   * shutdown: restarting would not help). No terminus check: terminus answers 503 once shutdown begins.
   */
  @Get('live')
  @HttpCode(200)
  live() {
    return { status: 'ok' };
  }

  /**
   * Ready for traffic: the database answers and every migration is applied. While the database is
   * unreachable this is 503 (with Retry-After), and 200 again as soon as the pool reconnects. From the
   * start of a graceful shutdown it is 503 too, with `checks.shutdown: "draining"`.
   *
   * The checks run on terminus; its answer (`{ status: "ok"|"error"|"shutting_down", info, error,
   * details }`, thrown as a 503 exception when not ok) is mapped to our contract (API.md and
   * docs/decisions.md): `{ status: "ok"|"unavailable", checks: { database, migrations } }`, where
   * database is ok|unreachable and migrations ok|pending|unknown.
   */
  @Get('ready')
  async ready(@Res({ passthrough: true }) res: FastifyReply) {
    const result: HealthCheckResult = await this.health
      .check([
        () => this.typeOrm.pingCheck('database', { connection: this.dataSource }).withTimeout(READY_TIMEOUT_MS),
        () => this.migrations.check('migrations', READY_TIMEOUT_MS),
        () => this.draining.check('shutdown'),
      ])
      .catch((e: unknown) => {
        if (e instanceof ServiceUnavailableException) return e.getResponse() as HealthCheckResult;
        throw e;
      });
    const checks = contractChecks(result, this.draining.isDraining);
    const ok = result.status === 'ok' && !checks.shutdown;
    res.status(ok ? 200 : 503);
    if (!ok) res.header('Retry-After', String(UNAVAILABLE_RETRY_AFTER_S));
    return { status: ok ? 'ok' : 'unavailable', checks };
  }
}
