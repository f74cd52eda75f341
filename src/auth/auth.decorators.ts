import { SetMetadata, createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { AdminRole } from './admin-user.entity';

export const IS_PUBLIC = 'gerbang:public';
export const TENANT_AUTH = 'gerbang:tenant-auth';
export const ROLES = 'gerbang:roles';

/** No authentication: login, health, docs, metrics and the provider's DLR callback only. */
export const Public = () => SetMetadata(IS_PUBLIC, true);
/** Tenant routes: authenticated by API key. */
export const TenantAuth = () => SetMetadata(TENANT_AUTH, true);
/** Admin routes: a JWT with one of these roles. Routes without any marker require `admin`. */
export const Roles = (...roles: AdminRole[]) => SetMetadata(ROLES, roles);

export interface TenantPrincipal {
  tenantId: string;
  apiKeyId: string;
}
export interface AdminPrincipal {
  userId: string;
  email: string;
  role: AdminRole;
}

export const CurrentTenant = createParamDecorator((_: unknown, ctx: ExecutionContext): TenantPrincipal => {
  const req = ctx.switchToHttp().getRequest<{ tenant?: TenantPrincipal }>();
  if (!req.tenant) throw new Error('CurrentTenant used on a route without @TenantAuth()');
  return req.tenant;
});

export const CurrentAdmin = createParamDecorator((_: unknown, ctx: ExecutionContext): AdminPrincipal => {
  const req = ctx.switchToHttp().getRequest<{ user?: AdminPrincipal }>();
  if (!req.user) throw new Error('CurrentAdmin used on a route without admin auth');
  return req.user;
});
