import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiBody,
  ApiHeader,
  ApiOperation,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.decorator';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CurrentTenant, TenantAuth, TenantPrincipal } from '../auth/auth.decorators';
import { TenantScope } from '../common/tenant-scope';
import { IdempotencyService, sendIdempotent } from '../idempotency/idempotency.service';
import { MessageDto, MessagePageDto } from './message.dto';
import {
  BatchResultDto,
  ListMessagesQueryDto,
  PreviewDto,
  PreviewResultDto,
  SendBatchDto,
  SendMessageDto,
} from './messages.dto';
import { MessagesService } from './messages.service';
import { TenantRateLimitGuard } from './tenant-rate-limit.guard';

const reply = sendIdempotent;

@ApiTags('tenant: messages')
@ApiProblems(401, 503)
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
  @ApiOperation({
    description:
      '`sendAt` is an instant (ISO 8601, UTC unless it carries an offset such as `+07:00` for Asia/Jakarta).',
  })
  @ApiBody({
    type: SendMessageDto,
    examples: {
      now: {
        summary: 'Send now',
        value: { to: '081234567890', text: 'Kode OTP Anda 123456', reference: 'order-1234' },
      },
      scheduled: {
        summary: 'Scheduled (09:00 Jakarta time)',
        value: { to: '+62 812-3456-7890', text: 'Promo hari ini!', sendAt: '2030-01-15T09:00:00+07:00' },
      },
    },
  })
  @ApiAcceptedResponse({ type: MessageDto })
  @ApiProblems(
    [400, 'Invalid request: `validation_failed`, or `invalid_msisdn` (not an Indonesian mobile number)'],
    402,
    [403, 'The tenant is suspended: `tenant_suspended`'],
    [409, 'A request with this Idempotency-Key is still running: `idempotency_in_progress`'],
    413,
    422,
    429,
  )
  async send(
    @CurrentTenant() tenant: TenantPrincipal,
    @Body() body: SendMessageDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
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
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Up to 255 printable ASCII characters; kept at least 24 h per tenant.',
  })
  @ApiBody({
    type: SendBatchDto,
    examples: {
      batch: {
        summary: 'Two messages',
        value: {
          messages: [
            { to: '081234567890', text: 'Pesanan #1234 sudah dikirim', reference: 'order-1234' },
            { to: '6285712345678', text: 'Pesanan #1235 sudah dikirim', reference: 'order-1235' },
          ],
        },
      },
    },
  })
  @ApiOperation({
    description:
      'Each refused item is listed in `rejected` with its index and the code a single send would have answered: `invalid_msisdn`, `validation_failed` (e.g. a text too long), `insufficient_balance`, `balance_expired`, `tenant_suspended`. A suspended tenant or a lapsed balance therefore answers 202 with every item rejected, not 403/402.',
  })
  @ApiAcceptedResponse({ type: BatchResultDto })
  @ApiProblems(
    [400, 'Structurally invalid body (e.g. not 1 to 1,000 items): `validation_failed`'],
    [409, 'A request with this Idempotency-Key is still running: `idempotency_in_progress`'],
    413,
    422,
    429,
  )
  async batch(
    @CurrentTenant() tenant: TenantPrincipal,
    @Body() body: SendBatchDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<BatchResultDto> {
    const hash = idempotencyKey !== undefined ? IdempotencyService.hashes('POST', '/v1/messages/batch', req.body) : '';
    const r = await this.messages.sendBatch(TenantScope.of(tenant.tenantId), body.messages, idempotencyKey, hash);
    return reply(res, r) as BatchResultDto;
  }

  /** What a send would cost and why (encoding, segments, the characters that forced UCS-2). Charges nothing. */
  @Post('preview')
  @HttpCode(200)
  @ApiProblems([400, 'Invalid request: `validation_failed`, or `invalid_msisdn`'])
  preview(@CurrentTenant() tenant: TenantPrincipal, @Body() body: PreviewDto): Promise<PreviewResultDto> {
    return this.messages.preview(TenantScope.of(tenant.tenantId), body.to, body.text);
  }

  /** Your messages, newest first. */
  @Get()
  @ApiOperation({
    description:
      '`createdFrom` and `createdTo` are instants (ISO 8601, UTC unless they carry an offset); a bare date means 00:00 UTC, so for an Asia/Jakarta day pass `…T00:00:00+07:00`.',
  })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: TenantPrincipal, @Query() q: ListMessagesQueryDto): Promise<MessagePageDto> {
    return this.messages.list(TenantScope.of(tenant.tenantId), q);
  }

  /** One of your messages, with its current status. */
  @Get(':id')
  @ApiProblems(404)
  get(@CurrentTenant() tenant: TenantPrincipal, @Param('id') id: string): Promise<MessageDto> {
    return this.messages.get(TenantScope.of(tenant.tenantId), id);
  }

  /** Cancel a `scheduled` message; its price is refunded. Any other status: 409 `conflict`. */
  @Delete(':id')
  @ApiProblems(404, [409, 'The message is no longer `scheduled`: `conflict`'])
  cancel(@CurrentTenant() tenant: TenantPrincipal, @Param('id') id: string): Promise<MessageDto> {
    return this.messages.cancel(TenantScope.of(tenant.tenantId), id);
  }
}
