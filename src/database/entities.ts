import { AdminUser } from '../auth/admin-user.entity';
import { LedgerEntry } from '../billing/ledger-entry.entity';
import { ProviderAccount } from '../provider/provider-account.entity';
import { ApiKey } from '../tenants/api-key.entity';
import { Tenant } from '../tenants/tenant.entity';

export const entities = [AdminUser, ProviderAccount, Tenant, ApiKey, LedgerEntry];
