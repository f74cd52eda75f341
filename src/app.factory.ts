import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import helmet from 'helmet';
import { AppModule } from './app.module';
import { Clock } from './common/clock';
import { ProblemFilter, bodyParserProblem } from './common/problem.filter';
import { problemBody } from './common/problem';
import { AppValidationPipe } from './common/validation';
import type { AppConfig } from './config/config';
import { httpMetricsMiddleware, startDefaultMetrics } from './metrics/metrics';
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
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, opts.clock), {
    bodyParser: false,
    logger,
    abortOnError: false,
  });
  app.set('trust proxy', false);
  app.set('etag', false); // an ETag hashes every response body; no client of this API revalidates
  app.disable('x-powered-by');
  startDefaultMetrics();
  app.use(httpMetricsMiddleware(logger.root));
  app.use(helmet({ contentSecurityPolicy: false }));
  app.useBodyParser('json', { limit: config.bodyLimit, strict: false });
  app.useBodyParser('urlencoded', { limit: '64kb', extended: false });
  app.useGlobalPipes(new AppValidationPipe());
  app.useGlobalFilters(new ProblemFilter());

  const document = buildOpenApi(app);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    swaggerOptions: { persistAuthorization: true },
  });

  // Errors raised before Nest's router (body parser) still leave as problem+json.
  app.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const p = bodyParserProblem(err);
    res
      .status(p.status)
      .type('application/problem+json')
      .send(JSON.stringify(problemBody(p)));
  });
  return app;
}
