import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.decorators';
import { UNAVAILABLE_RETRY_AFTER_S } from '../database/connection-errors';

/** Readiness answers within this time: a database that does not answer is not ready. */
const READY_TIMEOUT_MS = 2_000;

@ApiExcludeController()
@Public()
@Controller('health')
export class HealthController {
  constructor(private readonly dataSource: DataSource) {}

  /** The process is up and serving HTTP (also while the database is away: restarting would not help). */
  @Get('live')
  @HttpCode(200)
  live() {
    return { status: 'ok' };
  }

  /**
   * Ready for traffic: the database answers and every migration is applied. While the database is
   * unreachable this is 503 (with Retry-After), and 200 again as soon as the pool reconnects.
   */
  @Get('ready')
  async ready(@Res({ passthrough: true }) res: Response) {
    const checks: Record<string, string> = {};
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.dataSource.query('SELECT 1'), timeout]);
      checks.database = 'ok';
      checks.migrations = (await Promise.race([this.dataSource.showMigrations(), timeout])) ? 'pending' : 'ok';
    } catch {
      checks.database = checks.database === 'ok' ? 'ok' : 'unreachable';
      checks.migrations ??= 'unknown';
    } finally {
      clearTimeout(timer);
    }
    const ok = Object.values(checks).every((v) => v === 'ok');
    res.status(ok ? 200 : 503);
    if (!ok) res.setHeader('Retry-After', String(UNAVAILABLE_RETRY_AFTER_S));
    return { status: ok ? 'ok' : 'unavailable', checks };
  }
}
