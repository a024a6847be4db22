/**
 * GET /api/v1/dns: DNS health by server or client workload (dns_by_server_*) or by query
 * name (dns_by_name_*, migration 0007, for the time it covers; raw dns_queries before it,
 * coverage.ts). Latency percentiles from the summed histograms, the rcode mix, timeouts.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { histogramQuantile } from '@meshlens/schemas';
import { select, type Params } from './db.js';
import { ERROR_RESPONSES, rangeOr400, rangeParams, source, type ApiContext } from './context.js';
import { splitAt } from './coverage.js';
import { rangeQuery, type Range } from './params.js';

/** Answers that mean the server failed the client (NXDOMAIN is an answer, not a failure). */
export const DNS_ERRORS = ['SERVFAIL', 'REFUSED', 'FORMERR', 'NOTIMP', 'TIMEOUT'];

const GROUPS = {
  server: { keys: 'server_ip AS server_ip, server_name AS server_name', by: 'server_ip, server_name' },
  client: { keys: 'zone AS zone, namespace AS namespace, workload AS workload', by: 'zone, namespace, workload' },
} as const;

const dnsResponse = z.object({
  by: z.enum(['server', 'name', 'client']),
  groups: z.array(
    z.looseObject({
      queries: z.number(),
      rcodes: z.record(z.string(), z.number()),
      timeouts: z.number(),
      timeout_rate: z.number().nullable(),
      error_rate: z.number().nullable().describe('SERVFAIL, REFUSED, FORMERR, NOTIMP, TIMEOUT over all queries'),
      latency_p50_ms: z.number().nullable(),
      latency_p99_ms: z.number().nullable(),
    }).describe('plus the group keys: server_ip and server_name, zone/namespace/workload, or qname'),
  ),
});

interface Row {
  rcodes: [string[], number[]];
  latency: [number[], number[]];
  [key: string]: unknown;
}

/** By server or client: the DNS rollup family alone. */
function byRollup(ctx: ApiContext, by: 'server' | 'client', range: Range): { sql: string; params: Params } {
  const g = GROUPS[by];
  const s = source(ctx, 'dns', range);
  return {
    sql: `SELECT ${g.keys}, sumMap([toString(rcode)], [queries]) AS rcodes, sumMap(latency) AS latency
          FROM ${s.from} GROUP BY ${g.by} ORDER BY ${g.by}`,
    params: s.params,
  };
}

/**
 * The 1000 most asked names: raw queries for the part of the range before dns_by_name covers
 * it (exact to the second), the rollup from there on, added per name before ranking.
 */
async function byName(ctx: ApiContext, range: Range): Promise<{ sql: string; params: Params }> {
  const { before, after } = splitAt(range, await ctx.coverage('dns_by_name'));
  const parts: string[] = [];
  let params: Params = {};
  if (before) {
    parts.push(`SELECT qname, sumMap([toString(rcode)], [toUInt64(1)]) AS rcodes, sumMapIf([latency_bucket], [toUInt64(1)], latency_us IS NOT NULL) AS latency
                FROM dns_queries WHERE ts >= toDateTime({from:UInt32}, 'UTC') AND ts < toDateTime({to:UInt32}, 'UTC') GROUP BY qname`);
    params = rangeParams(before);
  }
  if (after) {
    const s = source(ctx, 'dns_name', after);
    parts.push(`SELECT qname, sumMap([toString(rcode)], [queries]) AS rcodes, sumMap(latency) AS latency FROM ${s.from} GROUP BY qname`);
    params = { ...params, ...s.params };
  }
  return {
    sql: `SELECT qname, sumMap(rcodes) AS rcodes, sumMap(latency) AS latency FROM (${parts.join(' UNION ALL ')})
          GROUP BY qname ORDER BY arraySum(rcodes.2) DESC, qname LIMIT 1000`,
    params,
  };
}

export const dnsRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/dns',
      {
        schema: {
          summary: 'DNS latency percentiles (ms), rcode mix, timeouts and error rate by server, client workload, or query name (the 1000 most asked)',
          querystring: rangeQuery.extend({ by: z.enum(['server', 'name', 'client']).default('server') }),
          response: { 200: dnsResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const q = req.query.by === 'name' ? await byName(ctx, range) : byRollup(ctx, req.query.by, range);
        const rows = await select<Row>(ctx.ch, q.sql, q.params);
        return {
          by: req.query.by,
          groups: rows.map(({ rcodes, latency, ...keys }) => {
            const mix = Object.fromEntries(rcodes[0].map((r, i) => [r, Number(rcodes[1][i])]));
            const queries = Object.values(mix).reduce((s, n) => s + n, 0);
            const errors = DNS_ERRORS.reduce((s, r) => s + (mix[r] ?? 0), 0);
            const h = { idx: latency[0], cnt: latency[1].map(Number) };
            const q = (p: number) => {
              const us = histogramQuantile(h, p);
              return us === null ? null : us / 1000;
            };
            return {
              ...keys,
              queries,
              rcodes: mix,
              timeouts: mix.TIMEOUT ?? 0,
              timeout_rate: queries > 0 ? (mix.TIMEOUT ?? 0) / queries : null,
              error_rate: queries > 0 ? errors / queries : null,
              latency_p50_ms: q(0.5),
              latency_p99_ms: q(0.99),
            };
          }),
        };
      },
    );
  };
