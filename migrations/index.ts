// Migrations are listed explicitly (no glob): the order is reviewed, and bundling/tests cannot miss one.
import { Initial1764000000000 } from './1764000000000-Initial';
import { MoneyConstraints1764100000000 } from './1764100000000-MoneyConstraints';
import { DeliveryReportFlag1764200000000 } from './1764200000000-DeliveryReportFlag';
import { DispatchAccountIndex1764200000001 } from './1764200000001-DispatchAccountIndex';
import { Webhooks1764400000000 } from './1764400000000-Webhooks';
import { UsageIndexes1764500000000 } from './1764500000000-UsageIndexes';
import { Inbound1764600000000 } from './1764600000000-Inbound';
import { ProviderWallet1764700000000 } from './1764700000000-ProviderWallet';
import { ReportPolling1764800000000 } from './1764800000000-ReportPolling';
import { DailyReportReconcile1764800000001 } from './1764800000001-DailyReportReconcile';
import { BalanceNotices1764900000000 } from './1764900000000-BalanceNotices';
import { ReportReconciliations1765000000000 } from './1765000000000-ReportReconciliations';
import { Partitioning1765100000000 } from './1765100000000-Partitioning';
import { WebhookInFlight1765200000000 } from './1765200000000-WebhookInFlight';
import { WebhookEndpointGeneration1765300000000 } from './1765300000000-WebhookEndpointGeneration';
import { WebhookEndpointEnabledAt1765400000000 } from './1765400000000-WebhookEndpointEnabledAt';
import { ReportDaysGivenUp1765500000000 } from './1765500000000-ReportDaysGivenUp';
import { DispatchClaimToken1765600000000 } from './1765600000000-DispatchClaimToken';

export const migrations = [
  Initial1764000000000,
  MoneyConstraints1764100000000,
  DeliveryReportFlag1764200000000,
  DispatchAccountIndex1764200000001,
  Webhooks1764400000000,
  UsageIndexes1764500000000,
  Inbound1764600000000,
  ProviderWallet1764700000000,
  ReportPolling1764800000000,
  DailyReportReconcile1764800000001,
  BalanceNotices1764900000000,
  ReportReconciliations1765000000000,
  Partitioning1765100000000,
  WebhookInFlight1765200000000,
  WebhookEndpointGeneration1765300000000,
  WebhookEndpointEnabledAt1765400000000,
  ReportDaysGivenUp1765500000000,
  DispatchClaimToken1765600000000,
];
