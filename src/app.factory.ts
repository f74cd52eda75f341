import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppModule } from './app.module';
import { Clock } from './common/clock';
import { ProblemFilter } from './common/problem.filter';
import { registerBodyParsers } from './common/body-parsers';
import { notFound, Problem, problemBody } from './common/problem';
import { AppValidationPipe } from './common/validation';
import type { AppConfig } from './config/config';
import { registerHttpMetrics, startDefaultMetrics } from './metrics/metrics';
import { createRootLogger, PinoNestLogger } from './logging';

export function buildOpenApi(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Gerbang SMS gateway')
    .setDescription(
      [
        'Multi-tenant SMS gateway. Tenants authenticate with an API key (`Authorization: Bearer gbk_…` or `X-API-Key`);',
        'admins and billing with a JWT from `POST /v1/auth/login`.',
        '',
        'Errors are RFC 9457 `application/problem+json` with a stable `code`. Money is integers in the smallest currency unit.',
        'Any call may answer 503 `unavailable` with `Retry-After` while the database is unreachable (retry after it; send with an `Idempotency-Key` so that a retry cannot charge twice);',
        'a live read from the provider that gets no answer is 502 `provider_unavailable`.',
        'Ids are opaque strings with a type prefix. Lists take `limit` (1-500, default 50) and `cursor`, and return `{ data, nextCursor }`.',
      ].join('\n'),
    )
    .setVersion('1.0.0')
    .addServer('/')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Admin or billing JWT from /v1/auth/login' },
      'admin-jwt',
    )
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'Tenant API key (gbk_…)' }, 'api-key-bearer')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'Tenant API key (gbk_…)' }, 'api-key')
    .build();
  return SwaggerModule.createDocument(app, config, {
    operationIdFactory: (controllerKey: string, methodKey: string) =>
      `${controllerKey.replace(/Controller$/, '')}_${methodKey}`,
  });
}

/** Everything main.ts and the e2e tests share: one app, configured the same way. */
export async function createApp(
  config: AppConfig & { databaseUrl: string },
  opts: { clock?: Clock; logger?: boolean } = {},
) {
  const logger = new PinoNestLogger(createRootLogger(config));
  // Fastify under Nest (issue 11: the framework's cost of a request was the largest single item of a
  // message's CPU; docs/benchmark.md, round 5). No proxy is trusted, no ETag, no X-Powered-By.
  const adapter = new FastifyAdapter({
    trustProxy: false,
    bodyLimit: config.bodyLimit,
    routerOptions: {
      ignoreTrailingSlash: true, // as Express's non-strict routing: /v1/messages/ is /v1/messages
      maxParamLength: 500, // Fastify's default 100 would turn a long path id into a 404 without reaching us
    },
    // Clients (the provider's callbacks, load balancers) keep connections; Node's 5 s default closed
    // them under a client that reuses a socket just then (docs/webhooks.md, "Request", the same race).
    keepAliveTimeout: 65_000,
    return503OnClosing: false,
    // Errors the router raises before any route runs (a malformed URL, a path id longer than
    // maxParamLength) leave as problem+json too: an id that long names nothing, so 404.
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      const p =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? notFound()
          : new Problem('validation_failed', 'The request URL is malformed');
      void reply
        .code(p.status)
        .type('application/problem+json')
        .send(JSON.stringify(problemBody(p)));
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, opts.clock), adapter, {
    bodyParser: false,
    logger,
    abortOnError: false,
  });
  startDefaultMetrics();
  registerHttpMetrics(app.getHttpAdapter().getInstance(), logger.root);
  // Helmet's headers (Nest's own implementation, computed once): nosniff, frame options, HSTS, … No
  // Content-Security-Policy: this is a JSON API, and Swagger UI's inline script would need one of its own.
  app.useSecurityHeaders({ contentSecurityPolicy: false });
  registerBodyParsers(app, { jsonLimit: config.bodyLimit, formLimit: 64 * 1024 });
  app.useGlobalPipes(new AppValidationPipe());
  app.useGlobalFilters(new ProblemFilter());

  const document = buildOpenApi(app);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    swaggerOptions: { persistAuthorization: true },
  });
  return app;
}
