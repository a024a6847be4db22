/**
 * The HTTP API: fastify with zod-validated routes, an OpenAPI document at /openapi.json,
 * interactive docs at /docs, bearer tokens on /api/*. Validation failures are 400s with the
 * parameter and the reason; anything else that fails is logged and answered 500 without details.
 */
import { timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { coverageOf } from './coverage.js';
import { dnsRoutes } from './dns.js';
import { edgesRoutes } from './edges.js';
import { matrixRoutes } from './matrix.js';
import { rankingsRoutes } from './rankings.js';
import { servicesRoutes } from './services.js';
import { ALL_TIERS, type Tier } from './tiers.js';
import { triageRoutes } from './triage.js';

export interface ApiOptions {
  ch: ClickHouseClient;
  tokens: string[];
  /** Rollup tiers to read besides the minute tier (tiers.ts); default all. */
  tiers?: readonly Tier[];
  /** false: answer as before migration 0007 (edges and DNS by name from raw rows and the older rollups), the bench's baseline. */
  coveredRollups?: boolean;
  logger?: Logger;
}

/** Constant-time comparison, so response timing does not reveal how much of a token matched. */
function tokenOk(header: string | undefined, tokens: Buffer[]): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  return tokens.some((t) => t.length === given.length && timingSafeEqual(t, given));
}

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  if (opts.tokens.length === 0) throw new Error('the API needs at least one bearer token');
  const tokens = opts.tokens.map((t) => Buffer.from(t));
  const app = Fastify({ loggerInstance: opts.logger as FastifyBaseLogger | undefined, routerOptions: { maxParamLength: 600 } });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((err, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const message = err.validation.map((v) => `${err.validationContext ?? 'request'}${v.instancePath ? v.instancePath.replaceAll('/', '.') : ''}: ${v.message}`).join('; ');
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message });
    }
    const status = (err as { statusCode?: number }).statusCode;
    // Fastify's own client errors (malformed URL, unsupported body): their message is safe to show.
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send({ statusCode: status, error: STATUS_CODES[status], message: (err as Error).message });
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ statusCode: 500, error: 'Internal Server Error', message: 'internal error (logged)' });
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'meshlens API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/api/')) return;
    if (!tokenOk(req.headers.authorization, tokens)) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ statusCode: 401, error: 'Unauthorized', message: 'a valid bearer token is required' });
    }
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const seconds = new Histogram({
    name: 'meshlens_api_request_seconds',
    help: 'API request latency by route and status',
    labelNames: ['route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 1, 3],
    registers: [registry],
  });
  app.addHook('onResponse', async (req, reply) => {
    seconds.observe({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const ctx = { ch: opts.ch, tiers: opts.tiers ?? ALL_TIERS, coverage: opts.coveredRollups === false ? async () => Infinity : coverageOf(opts.ch) };
  for (const routes of [servicesRoutes, edgesRoutes, matrixRoutes, triageRoutes, dnsRoutes, rankingsRoutes]) await app.register(routes(ctx));
  return app;
}
