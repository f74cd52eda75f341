import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { CurrentTenant, Roles, TenantAuth, TenantPrincipal } from '../auth/auth.decorators';
import { ApiProblems } from '../common/api-problems.decorator';
import { ListQueryDto } from '../common/list-query.dto';
import { TenantScope } from '../common/tenant-scope';
import { AdminInboundMessagePageDto, AdminInboundQueryDto, InboundMessagePageDto } from './inbound-messages.dto';
import { InboundMessagesService } from './inbound-messages.service';

@ApiTags('tenant: inbound messages')
@ApiSecurity('api-key')
@ApiBearerAuth('api-key-bearer')
@TenantAuth()
@ApiProblems(400, 401, 503)
@Controller('v1/inbound-messages')
export class InboundMessagesController {
  constructor(private readonly inbound: InboundMessagesService) {}

  /**
   * SMS that handsets sent to your provider account's number and that were routed to you, newest
   * first. Each is also delivered to your webhook as `message.received`.
   */
  @Get()
  list(@CurrentTenant() tenant: TenantPrincipal, @Query() q: ListQueryDto): Promise<InboundMessagePageDto> {
    return this.inbound.listForTenant(TenantScope.of(tenant.tenantId), q);
  }
}

@ApiTags('admin: inbound messages')
@ApiBearerAuth('admin-jwt')
@ApiProblems(400, 401, [403, 'The role may not do this: `forbidden`'], 503)
@Controller('v1/admin/inbound-messages')
export class AdminInboundMessagesController {
  constructor(private readonly inbound: InboundMessagesService) {}

  /** Inbound SMS of all provider accounts, newest first; `unrouted=true` lists those no tenant could be chosen for. */
  @Roles('admin')
  @Get()
  list(@Query() q: AdminInboundQueryDto): Promise<AdminInboundMessagePageDto> {
    return this.inbound.listAll(q, q.unrouted === undefined ? undefined : q.unrouted === 'true');
  }
}
