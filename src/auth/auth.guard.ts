import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard as PassportAuthGuard } from '@nestjs/passport';
import type { FastifyRequest } from 'fastify';
import { AdminPrincipal, IS_PUBLIC, ROLES, TENANT_AUTH, TenantPrincipal } from './auth.decorators';
import { Problem } from '../common/problem';
import { ApiKeysService } from '../tenants/api-keys.service';
import type { AdminRole } from './admin-user.entity';

class JwtPassportGuard extends PassportAuthGuard('jwt') {
  override handleRequest<T>(err: unknown, user: T): T {
    if (err || !user) throw new Problem('unauthorized', 'A valid admin token is required');
    return user;
  }
}

/**
 * The one global guard. Fails closed: a route is public only with @Public(), a tenant route only
 * with @TenantAuth(); every other route needs an admin JWT with a role from @Roles() (default `admin`).
 */
@Injectable()
export class GlobalAuthGuard implements CanActivate {
  private readonly jwtGuard = new JwtPassportGuard();

  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<FastifyRequest & { tenant?: TenantPrincipal; user?: AdminPrincipal }>();
    const presented = presentedCredential(req);

    if (this.reflector.getAllAndOverride<boolean>(TENANT_AUTH, targets)) {
      if (!presented)
        throw new Problem('unauthorized', 'An API key is required (Authorization: Bearer <key> or X-API-Key)');
      const key = await this.apiKeys.resolve(presented);
      if (!key) throw new Problem('unauthorized', 'The API key is not valid');
      req.tenant = key;
      return true;
    }

    if (presented?.startsWith('gbk_')) throw new Problem('forbidden', 'API keys cannot be used on admin routes');
    await this.jwtGuard.canActivate(ctx);
    const roles = this.reflector.getAllAndOverride<AdminRole[]>(ROLES, targets) ?? ['admin'];
    if (!req.user || !roles.includes(req.user.role))
      throw new Problem('forbidden', `This route needs the role: ${roles.join(' or ')}`);
    return true;
  }
}

function presentedCredential(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (typeof header === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (m) return m[1];
  }
  const x = req.headers['x-api-key'];
  return typeof x === 'string' && x.length > 0 ? x.trim() : undefined;
}
