/**
 * The only way tenant data is queried: a TenantScope carries a non-empty tenant id that came from
 * the credential. TypeORM silently drops `undefined` from `where`, which would turn a scoped query
 * into an unscoped one; constructing a scope from an empty id throws instead (fail closed).
 */
export class TenantScope {
  private constructor(readonly tenantId: string) {}

  static of(tenantId: string | null | undefined): TenantScope {
    if (typeof tenantId !== 'string' || tenantId.length === 0) {
      throw new Error('TenantScope requires a tenant id');
    }
    return new TenantScope(tenantId);
  }
}
