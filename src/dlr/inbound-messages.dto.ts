import { IsIn, IsOptional } from 'class-validator';
import { ListQueryDto } from '../common/list-query.dto';

/** An SMS a handset sent to a number of the provider account, routed to you. */
export class InboundMessageDto {
  /** `inb_…` */
  id: string;
  /**
   * The sender, normalised to `62…` digits when it is an Indonesian mobile number, else as the
   * provider wrote it.
   * @example "6281234567890"
   */
  from: string;
  /** @example "YA" */
  text: string;
  /** When the provider received it (its inbox time), or when the gateway first read it if the provider gave no time. */
  receivedAt: Date;
  /**
   * The provider account (`pac_…`) whose inbox held it.
   * @example "pac_0190f3b2c4d54e6f8a9b0c1d2e3f4a5b"
   */
  providerAccountId: string;
}

/** An inbound SMS as admins see it: routed or not, with the provider's raw row. */
export class AdminInboundMessageDto extends InboundMessageDto {
  /** The tenant (`ten_…`) it was routed to; null when unrouted. */
  tenantId: string | null;
  /**
   * How the tenant was chosen: `account` (the only tenant on the provider account), `last_sender`
   * (of several tenants on the account, the last that sent to this number within 7 days) or `unrouted`.
   */
  route: 'account' | 'last_sender' | 'unrouted';
  /** When the gateway stored it (first read it from inbox.php). */
  storedAt: Date;
  /** The inbox row exactly as the provider wrote it (its fields by the provider's names). */
  raw: Record<string, string>;
}

export class AdminInboundQueryDto extends ListQueryDto {
  /** `true`: only messages no tenant could be chosen for; `false`: only routed ones. Default: all. */
  @IsOptional()
  @IsIn(['true', 'false'])
  unrouted?: 'true' | 'false';
}

/** A page of inbound SMS, newest first. */
export class InboundMessagePageDto {
  data: InboundMessageDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** A page of inbound SMS as admins see them, newest first. */
export class AdminInboundMessagePageDto {
  data: AdminInboundMessageDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
