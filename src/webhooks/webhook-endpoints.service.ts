import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { rows as sqlRows } from '../database/raw-rows';
import { Clock } from '../common/clock';
import { notFound } from '../common/problem';
import { SecretBox } from '../common/secret-box';
import { TenantScope } from '../common/tenant-scope';
import { WEBHOOK_EVENT_TYPES, WebhookEventType } from './webhook-events';
import { PutWebhookDto, WebhookEndpointDto } from './webhooks.dto';
import { WebhookUrlGuard } from './url-guard';

/** How long the previous secret keeps signing after a rotation. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

interface EndpointRow {
  url: string;
  events: WebhookEventType[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
  secret_rotated_at: Date | null;
  previous_secret_until: Date | null;
}

const COLUMNS = `url, events, enabled, disabled_reason, disabled_at, created_at, updated_at, secret_rotated_at,
  previous_secret_until`;

/** `whsec_` + base64 of 32 random bytes: the Standard Webhooks secret format. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** A tenant's one webhook endpoint: register or change it, read it, delete it, rotate its secret. */
@Injectable()
export class WebhookEndpointsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    private readonly secretBox: SecretBox,
    private readonly guard: WebhookUrlGuard,
  ) {}

  /**
   * Creates the endpoint (with a new secret, returned this once) or changes its URL/events; either
   * way it is enabled again (a PUT is how a tenant recovers an endpoint disabled by a 410). `enabled_at`
   * marks this enable: a 410 answering a request claimed before it does not disable the endpoint again.
   */
  async put(scope: TenantScope, body: PutWebhookDto): Promise<{ created: boolean; endpoint: WebhookEndpointDto }> {
    // Stored as parsed (`href`): the URL the sender requests. The spelling given may differ (an upper-case
    // scheme, `https:host` without slashes, surrounding spaces), which the column's CHECK refused (a 500).
    const url = (await this.guard.assertAllowed(body.url)).href;
    const secret = newWebhookSecret();
    const now = this.clock.now();
    const rows: (EndpointRow & { created: boolean })[] = await this.dataSource.query(
      `INSERT INTO webhook_endpoints (tenant_id, url, secret_enc, events, created_at, updated_at, enabled_at)
       VALUES ($1, $2, $3, coalesce($4::text[], ARRAY[${WEBHOOK_EVENT_TYPES.map((t) => `'${t}'`).join(', ')}]), $5, $5,
               clock_timestamp())
       ON CONFLICT (tenant_id) DO UPDATE
         SET url = EXCLUDED.url, events = coalesce($4::text[], webhook_endpoints.events), enabled = true,
             disabled_reason = NULL, disabled_at = NULL, updated_at = EXCLUDED.updated_at,
             enabled_at = EXCLUDED.enabled_at
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [scope.tenantId, url, this.secretBox.seal(secret), body.events ?? null, now],
    );
    const created = rows[0].created;
    const endpoint = endpointDto(rows[0], now);
    return { created, endpoint: created ? { ...endpoint, secret } : endpoint };
  }

  async get(scope: TenantScope): Promise<WebhookEndpointDto> {
    const rows: EndpointRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1`,
      [scope.tenantId],
    );
    if (rows.length === 0) throw notFound('Webhook endpoint');
    return endpointDto(rows[0], this.clock.now());
  }

  /** Deletes the endpoint; its pending deliveries become `failed` (an attempt in flight finishes). */
  async delete(scope: TenantScope): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const deleted = await sqlRows(m, `DELETE FROM webhook_endpoints WHERE tenant_id = $1 RETURNING tenant_id`, [
        scope.tenantId,
      ]);
      if (deleted.length === 0) throw notFound('Webhook endpoint');
      await m.query(
        `UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted'
          WHERE tenant_id = $1 AND status = 'pending'`,
        [scope.tenantId],
      );
    });
  }

  /**
   * A new secret, returned this once. The previous one keeps signing for 24 h, so a receiver that
   * verifies with either (two signatures in `webhook-signature`) can switch without losing events.
   * A second rotation within the 24 h drops the oldest secret.
   */
  async rotateSecret(scope: TenantScope): Promise<WebhookEndpointDto> {
    const secret = newWebhookSecret();
    const now = this.clock.now();
    const rows = await sqlRows<EndpointRow>(
      this.dataSource,
      `UPDATE webhook_endpoints
          SET previous_secret_enc = secret_enc, previous_secret_until = $3, secret_enc = $2,
              secret_rotated_at = $4, updated_at = $4
        WHERE tenant_id = $1
        RETURNING ${COLUMNS}`,
      [scope.tenantId, this.secretBox.seal(secret), new Date(now.getTime() + ROTATION_OVERLAP_MS), now],
    );
    if (rows.length === 0) throw notFound('Webhook endpoint');
    return { ...endpointDto(rows[0], now), secret };
  }
}

/**
 * `previousSecretExpiresAt` is shown while the previous secret still signs (the worker drops it at that time,
 * by the same Clock); once past it is null, though the column keeps the value until the next rotation.
 */
function endpointDto(r: EndpointRow, now: Date): WebhookEndpointDto {
  return {
    url: r.url,
    events: r.events,
    enabled: r.enabled,
    disabledReason: r.disabled_reason,
    disabledAt: r.disabled_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    secretRotatedAt: r.secret_rotated_at,
    previousSecretExpiresAt: r.previous_secret_until && r.previous_secret_until > now ? r.previous_secret_until : null,
  };
}
