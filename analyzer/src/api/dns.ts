/**
 * GET /api/v1/dns: DNS health by server or client workload (dns_by_server_1m) or by query
 * name (raw dns_queries: names are not in the rollup). Latency percentiles from the
 * summed histograms, the rcode mix, timeouts.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { histogramQuantile } from '@meshlens/schemas';
import { select } from './db.js';
import { ERROR_RESPONSES, rangeOr400, rangeParams, source, type ApiContext } from './context.js';
import { rangeQuery } from './params.js';

/** Answers that mean the server failed the client (NXDOMAIN is an answer, not a failure). */
export const DNS_ERRORS = ['SERVFAIL', 'REFUSED', 'FORMERR', 'NOTIMP', 'TIMEOUT'];

const GROUPS = {
  server: { keys: 'server_ip AS server_ip, server_name AS server_name', by: 'server_ip, server_name' },
  client: { keys: 'zone AS zone, namespace AS namespace, workload AS workload', by: 'zone, namespace, workload' },
  name: { keys: 'qname AS qname', by: 'qname' },
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

function sql(by: keyof typeof GROUPS, from: string): string {
  const g = GROUPS[by];
  if (by === 'name') {
    return `SELECT ${g.keys}, sumMap([rcode], [toUInt64(1)]) AS rcodes,
              sumMapIf([latency_bucket], [toUInt64(1)], latency_us IS NOT NULL) AS latency
            FROM dns_queries WHERE ts >= toDateTime({from:UInt32}, 'UTC') AND ts < toDateTime({to:UInt32}, 'UTC')
            GROUP BY ${g.by} ORDER BY count() DESC, ${g.by} LIMIT 1000`;
  }
  return `SELECT ${g.keys}, sumMap([toString(rcode)], [queries]) AS rcodes, sumMap(latency) AS latency
          FROM ${from} GROUP BY ${g.by} ORDER BY ${g.by}`;
}

export const dnsRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/dns',
      {
        schema: {
          summary: 'DNS latency percentiles (ms), rcode mix, timeouts and error rate by server, client workload, or query name (the 1000 most asked, from raw queries)',
          querystring: rangeQuery.extend({ by: z.enum(['server', 'name', 'client']).default('server') }),
          response: { 200: dnsResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const s = req.query.by === 'name' ? { from: '', params: rangeParams(range) } : source(ctx, 'dns', range);
        const rows = await select<Row>(ctx.ch, sql(req.query.by, s.from), s.params);
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
