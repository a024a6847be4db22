/**
 * GET /api/v1/rankings: destinations of a zone (flows_by_zone_1m) or a service
 * (flows_by_service_1m) sorted by measured p10 RTT, the path latency without queueing;
 * unhealthy destinations after healthy ones, unreachable ones (attempts, no RTT) last.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { select } from './db.js';
import { ERROR_RESPONSES, rangeOr400, source, type ApiContext } from './context.js';
import { aggOf, failureRate, healthOf, healthSchema, retransmitRate, ROLLUP_AGGREGATES, rttQuantileMs, type Agg, type AggRow } from './health.js';
import { rangeQuery, serviceRef, splitRef, zoneName } from './params.js';

/** A destination is unhealthy above these; 5% failed connects or 2% retransmitted segments is beyond normal loss. */
export const UNHEALTHY = { failureRate: 0.05, retransmitRate: 0.02 } as const;

export type Status = 'healthy' | 'unhealthy' | 'unreachable';

export function statusOf(a: Agg): Status {
  if (rttQuantileMs(a, 0.1) === null) return 'unreachable';
  if ((failureRate(a) ?? 0) > UNHEALTHY.failureRate || (retransmitRate(a) ?? 0) > UNHEALTHY.retransmitRate) return 'unhealthy';
  return 'healthy';
}

const ORDER: Record<Status, number> = { healthy: 0, unhealthy: 1, unreachable: 2 };

type Row = AggRow & { zone: string; namespace: string; name: string };

const rankingsResponse = z.object({
  from_zone: z.string().nullable(),
  from_service: z.string().nullable(),
  destinations: z.array(
    healthSchema.extend({ rank: z.number(), zone: z.string().describe('empty for from_service'), namespace: z.string(), name: z.string(), status: z.enum(['healthy', 'unhealthy', 'unreachable']) }),
  ),
});

export const rankingsRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/rankings',
      {
        schema: {
          summary: 'destinations of from_zone or from_service sorted by p10 RTT; unhealthy, then unreachable, last',
          querystring: rangeQuery.extend({ from_zone: zoneName.optional(), from_service: serviceRef.optional() }).refine((q) => (q.from_zone === undefined) !== (q.from_service === undefined), {
            message: 'give exactly one of from_zone or from_service',
          }),
          response: { 200: rankingsResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const svc = req.query.from_service === undefined ? null : splitRef(req.query.from_service);
        const s = svc
          ? source(ctx, 'service', range, 'client_namespace = {ns:String} AND client_workload = {name:String}')
          : source(ctx, 'zone', range, 'client_zone = {zone:String}');
        const rows = svc
          ? await select<Row>(
              ctx.ch,
              `SELECT '' AS zone, server_namespace AS namespace, server_workload AS name, ${ROLLUP_AGGREGATES}
               FROM ${s.from} GROUP BY namespace, name`,
              { ...s.params, ns: svc.namespace, name: svc.name },
            )
          : await select<Row>(
              ctx.ch,
              `SELECT server_zone AS zone, server_namespace AS namespace, server_workload AS name, ${ROLLUP_AGGREGATES}
               FROM ${s.from} GROUP BY zone, namespace, name`,
              { ...s.params, zone: req.query.from_zone! },
            );
        const ranked = rows
          .map((r) => {
            const a = aggOf(r);
            return { zone: r.zone, namespace: r.namespace, name: r.name, status: statusOf(a), ...healthOf(a) };
          })
          .sort((x, y) => ORDER[x.status] - ORDER[y.status] || (x.rtt_p10_ms ?? 0) - (y.rtt_p10_ms ?? 0) || `${x.namespace}/${x.name}`.localeCompare(`${y.namespace}/${y.name}`));
        return { from_zone: req.query.from_zone ?? null, from_service: req.query.from_service ?? null, destinations: ranked.map((d, i) => ({ rank: i + 1, ...d })) };
      },
    );
  };
