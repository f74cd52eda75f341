import { Body, Controller, Delete, Get, Headers, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiHeader, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CurrentTenant, TenantAuth, TenantPrincipal } from '../common/decorators';
import { Page } from '../common/pagination';
import { TenantScope } from '../common/tenant-scope';
import { IdempotencyService, sendIdempotent } from './idempotency.service';
import { MessageDto } from './message.view';
import {
  BatchResultDto,
  ListMessagesQueryDto,
  PreviewDto,
  PreviewResultDto,
  SendBatchDto,
  SendMessageDto,
} from './messages.dto';
import { HttpResult, MessagesService } from './messages.service';
import { TenantRateLimitGuard } from './rate-limit';

const reply = sendIdempotent;

@ApiTags('tenant: messages')
@ApiSecurity('api-key')
@ApiBearerAuth('api-key-bearer')
@TenantAuth()
@Controller('v1/messages')
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  /**
   * Send one SMS. The price (segments × your price per segment) is charged at once; the message is
   * `queued` (or `scheduled` with `sendAt`) and submitted to the provider in the background.
   * With `Idempotency-Key`, a retry with the same body returns the same response and charges once.
   */
  @Post()
  @UseGuards(TenantRateLimitGuard)
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Up to 255 printable ASCII characters; kept at least 24 h per tenant.',
  })
  @ApiAcceptedResponse({ type: MessageDto })
  async send(
    @CurrentTenant() tenant: TenantPrincipal,
    @Body() body: SendMessageDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<MessageDto> {
    const hash = idempotencyKey !== undefined ? IdempotencyService.hashes('POST', '/v1/messages', req.body) : '';
    const r = await this.messages.send(TenantScope.of(tenant.tenantId), body, idempotencyKey, hash);
    return reply(res, r) as MessageDto;
  }

  /**
   * Send 1 to 1,000 messages. Items are charged in order while the balance lasts; each item is
   * accepted or listed in `rejected` with its index and code. Structurally invalid bodies are a 400.
   */
  @Post('batch')
  @UseGuards(TenantRateLimitGuard)
  @ApiHeader({ name: 'Idempotency-Key', required: false })
  @ApiAcceptedResponse({ type: BatchResultDto })
  async batch(
    @CurrentTenant() tenant: TenantPrincipal,
    @Body() body: SendBatchDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<BatchResultDto> {
    const hash = idempotencyKey !== undefined ? IdempotencyService.hashes('POST', '/v1/messages/batch', req.body) : '';
    const r = await this.messages.sendBatch(TenantScope.of(tenant.tenantId), body.messages, idempotencyKey, hash);
    return reply(res, r) as BatchResultDto;
  }

  /** What a send would cost and why (encoding, segments, the characters that forced UCS-2). Charges nothing. */
  @Post('preview')
  async preview(
    @CurrentTenant() tenant: TenantPrincipal,
    @Body() body: PreviewDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<PreviewResultDto> {
    res.status(200);
    return this.messages.preview(TenantScope.of(tenant.tenantId), body.to, body.text);
  }

  /** Your messages, newest first. */
  @Get()
  list(@CurrentTenant() tenant: TenantPrincipal, @Query() q: ListMessagesQueryDto): Promise<Page<MessageDto>> {
    return this.messages.list(TenantScope.of(tenant.tenantId), q);
  }

  /** One of your messages, with its current status. */
  @Get(':id')
  get(@CurrentTenant() tenant: TenantPrincipal, @Param('id') id: string): Promise<MessageDto> {
    return this.messages.get(TenantScope.of(tenant.tenantId), id);
  }

  /** Cancel a `scheduled` message; its price is refunded. Any other status: 409 `conflict`. */
  @Delete(':id')
  cancel(@CurrentTenant() tenant: TenantPrincipal, @Param('id') id: string): Promise<MessageDto> {
    return this.messages.cancel(TenantScope.of(tenant.tenantId), id);
  }
}
