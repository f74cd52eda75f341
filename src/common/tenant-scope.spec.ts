import { TenantScope } from './tenant-scope';

describe('TenantScope', () => {
  it.each([undefined, null, ''])('refuses %p', (id) => {
    expect(() => TenantScope.of(id as string)).toThrow('requires a tenant id');
  });
  it('keeps a real id', () => {
    expect(TenantScope.of('abc').tenantId).toBe('abc');
  });
});
