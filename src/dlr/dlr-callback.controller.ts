import { All, Controller, Header, HttpCode, Param, Req } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Public } from '../auth/auth.decorators';
import { Problem } from '../common/problem';
import { storableText } from '../provider/client';
import { DeliveryReportsService } from './delivery-reports.service';

/**
 * The provider's DLR callback (one URL per provider account; the token in the path is the secret).
 * Answers 200 `OK` for every well-formed call as soon as its raw report is stored, before it is
 * matched and applied (its message shows it milliseconds later), also for unknown or repeated session
 * ids and when applying it fails (it is kept and applied later by the sweep), so the provider never
 * waits on our matching and never retries into a loop; 404 for an unknown token; 400 for a malformed
 * call; 503 only when the report could not be stored (the database is away: retry).
 */
@ApiExcludeController()
@Public()
@Controller('v1/dlr')
export class DlrController {
  constructor(private readonly reports: DeliveryReportsService) {}

  @All(':token')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async callback(@Param('token') token: string, @Req() req: FastifyRequest): Promise<string> {
    // Read raw (not through the validation pipe): a report is kept even when its text holds junk.
    const query = req.query as Record<string, unknown>;
    const body: unknown = req.body;
    if (req.method !== 'GET' && req.method !== 'POST') throw new Problem('method_not_allowed', 'Use GET or POST');
    const accountId = await this.reports.accountForToken(token);
    if (!accountId) throw new Problem('not_found', 'Unknown callback');
    const params = {
      ...(body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {}),
      ...query,
    };
    // Provider text is stored as received, minus what PostgreSQL cannot store (NUL, lone surrogates).
    const str = (k: string) => (typeof params[k] === 'string' ? storableText(params[k]).trim() : undefined);
    const sessionId = str('session_id');
    const code = str('error_code');
    if (!sessionId || !/^\d{1,32}$/.test(sessionId) || !code || !/^\d{1,3}$/.test(code)) {
      throw new Problem('validation_failed', 'session_id and error_code must be numbers');
    }
    const text = str('error_message')?.slice(0, 200) ?? null;
    const msisdn = str('msisdn')?.slice(0, 32) ?? null;
    await this.reports.receive(accountId, { sessionId, code: Number(code), text, msisdn });
    return 'OK';
  }
}
