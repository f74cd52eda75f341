// Migrations are listed explicitly (no glob): the order is reviewed, and bundling/tests cannot miss one.
import { Initial1764000000000 } from './1764000000000-Initial';
import { DeliveryReportFlag1764200000000 } from './1764200000000-DeliveryReportFlag';
import { DispatchAccountIndex1764200000001 } from './1764200000001-DispatchAccountIndex';

export const migrations = [Initial1764000000000, DeliveryReportFlag1764200000000, DispatchAccountIndex1764200000001];
