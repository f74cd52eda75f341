import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentTenant, TenantAuth, TenantPrincipal } from '../auth/auth.decorators';
import { TenantScope } from '../common/tenant-scope';
import { WebhookEndpointsService } from './webhook-endpoints.service';
import {
  ListDeliveriesQueryDto,
  PutWebhookDto,
  WebhookDeliveryDto,
  WebhookDeliveryPageDto,
  WebhookEndpointDto,
} from './webhooks.dto';
import { WebhooksService } from './webhooks.service';
import { ApiProblems } from '../common/api-problems.decorator';

@ApiTags('tenant: webhook')
@ApiSecurity('api-key')
@ApiBearerAuth('api-key-bearer')
@TenantAuth()
@ApiProblems(401, 503)
@Controller('v1/webhook')
export class WebhooksController {
  constructor(
    private readonly endpoints: WebhookEndpointsService,
    private readonly webhooks: WebhooksService,
  ) {}

  /**
   * Registers your webhook endpoint (201, with its `secret`, shown this once) or changes its URL or
   * events (200, no secret). Also enables an endpoint that was disabled after answering 410.
   * Events are signed per Standard Webhooks; see docs/webhooks.md for verification and retries.
   * `message.status` is sent for every status change after creation (the creating request's 202 already
   * carries the initial `queued`/`scheduled`): typically `submitted`, then `delivered` or `failed`.
   */
  @Put()
  @ApiProblems([
    400,
    'Invalid request, or a URL that is not allowed (not http(s), or a private/special address): `validation_failed`',
  ])
  @ApiCreatedResponse({ type: WebhookEndpointDto, description: 'Created; `secret` included' })
  @ApiOkResponse({ type: WebhookEndpointDto, description: 'Updated; no `secret`' })
  async put(
    @CurrentTenant() tenant: TenantPrincipal,
    @Body() body: PutWebhookDto,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<WebhookEndpointDto> {
    const r = await this.endpoints.put(TenantScope.of(tenant.tenantId), body);
    res.status(r.created ? 201 : 200);
    return r.endpoint;
  }

  /** Your webhook endpoint (never its secret); 404 if none is registered. */
  @Get()
  @ApiProblems([404, 'No webhook endpoint: `not_found`'])
  @ApiOkResponse({ type: WebhookEndpointDto })
  get(@CurrentTenant() tenant: TenantPrincipal): Promise<WebhookEndpointDto> {
    return this.endpoints.get(TenantScope.of(tenant.tenantId));
  }

  /** Removes the endpoint; deliveries still waiting become `failed`. */
  @Delete()
  @ApiProblems([404, 'No webhook endpoint: `not_found`'])
  @HttpCode(204)
  @ApiNoContentResponse()
  async delete(@CurrentTenant() tenant: TenantPrincipal): Promise<void> {
    await this.endpoints.delete(TenantScope.of(tenant.tenantId));
  }

  /**
   * A new secret (returned this once). For 24 h both secrets sign every event (two signatures in
   * `webhook-signature`), so you can switch your verifier without losing events.
   */
  @Post('rotate-secret')
  @ApiProblems([404, 'No webhook endpoint: `not_found`'])
  @HttpCode(200)
  @ApiOkResponse({ type: WebhookEndpointDto })
  rotateSecret(@CurrentTenant() tenant: TenantPrincipal): Promise<WebhookEndpointDto> {
    return this.endpoints.rotateSecret(TenantScope.of(tenant.tenantId));
  }

  /** Deliveries, newest first, each with every attempt (outcome, status code, latency, response excerpt). */
  @Get('deliveries')
  @ApiProblems(400)
  @ApiOkResponse({ type: WebhookDeliveryPageDto })
  deliveries(
    @CurrentTenant() tenant: TenantPrincipal,
    @Query() q: ListDeliveriesQueryDto,
  ): Promise<WebhookDeliveryPageDto> {
    return this.webhooks.listDeliveries(TenantScope.of(tenant.tenantId), q);
  }

  /**
   * Schedules one more attempt now (also for a failed or succeeded delivery); 409 while an attempt is
   * in flight, when no endpoint is registered, or when the endpoint is disabled (PUT /v1/webhook first).
   */
  @Post('deliveries/:id/retry')
  @ApiProblems(404, [409, 'An attempt is in flight, or there is no endpoint, or it is disabled: `conflict`'])
  @HttpCode(202)
  @ApiAcceptedResponse({ type: WebhookDeliveryDto })
  retry(@CurrentTenant() tenant: TenantPrincipal, @Param('id') id: string): Promise<WebhookDeliveryDto> {
    return this.webhooks.retry(TenantScope.of(tenant.tenantId), id);
  }
}
