/**
 * GET /api/v1/edges: one service pair broken down by zone pair (flows_by_zone_1m), node pair
 * (flows_by_node_1m) or pod pair (raw tcp_flows: pods are not in any rollup), with a time series.
 * One query returns (group, step) cells; totals per group are the cells added in TS, which is
 * exact for counters and for the histograms alike.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { select } from './db.js';
import { badRequest, ERROR_RESPONSES, rangeOr400, rangeParams, source, type ApiContext } from './context.js';
import { addAggs, aggOf, healthOf, healthSchema, RAW_AGGREGATES, ROLLUP_AGGREGATES, type Agg, type AggRow } from './health.js';
import { rangeQuery, serviceRef, splitRef } from './params.js';

const MAX_POINTS = 1440;

const GROUPS = {
  zone: { src: 'client_zone', dst: 'server_zone' },
  node: { src: 'client_node', dst: 'server_node' },
  pod: { src: 'client_pod', dst: 'server_pod' },
} as const;

const PAIR = `client_namespace = {sns:String} AND client_workload = {sname:String} AND server_namespace = {dns:String} AND server_workload = {dname:String}`;

type Row = AggRow & { src: string; dst: string; t: number };

const edgesResponse = z.object({
  src: z.string(),
  dst: z.string(),
  by: z.enum(['zone', 'node', 'pod']),
  step_ms: z.number(),
  edges: z.array(healthSchema.extend({ src: z.string(), dst: z.string(), series: z.array(healthSchema.extend({ t: z.string() })) })),
});

export const edgesRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/edges',
      {
        schema: {
          summary: 'one service pair (client src -> server dst) by zone pair, node pair or pod pair, with a time series',
          querystring: rangeQuery.extend({
            src: serviceRef.describe('client service, namespace/name'),
            dst: serviceRef.describe('server service, namespace/name'),
            by: z.enum(['zone', 'node', 'pod']),
            step_ms: z.coerce.number().int().min(60_000).max(86_400_000).multipleOf(60_000).default(60_000).describe('time series step, whole minutes'),
          }),
          response: { 200: edgesResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const { step_ms: stepMs } = req.query;
        if ((range.toMs - range.fromMs) / stepMs > MAX_POINTS) {
          return badRequest(reply, `step_ms ${stepMs} gives more than ${MAX_POINTS} points for this range`);
        }
        const { by } = req.query;
        const src = splitRef(req.query.src);
        const dst = splitRef(req.query.dst);
        // Pods are in no rollup: pod pairs come from the raw flows, whose slots are all there is.
        const s =
          by === 'pod'
            ? { from: `(SELECT slot_start AS start, * FROM tcp_flows WHERE slot_start >= toStartOfMinute(toDateTime({from:UInt32}, 'UTC')) AND slot_start < toDateTime({to:UInt32}, 'UTC') AND ${PAIR})`, params: rangeParams(range) }
            : source(ctx, by, range, PAIR, { stepS: stepMs / 1000 });
        const rows = await select<Row>(
          ctx.ch,
          `SELECT ${GROUPS[by].src} AS src, ${GROUPS[by].dst} AS dst, toUnixTimestamp(toStartOfInterval(start, toIntervalSecond({step:UInt32}))) AS t, ${by === 'pod' ? RAW_AGGREGATES : ROLLUP_AGGREGATES}
           FROM ${s.from} GROUP BY src, dst, t ORDER BY src, dst, t`,
          { ...s.params, step: stepMs / 1000, sns: src.namespace, sname: src.name, dns: dst.namespace, dname: dst.name },
        );
        const groups = new Map<string, { src: string; dst: string; cells: { t: number; agg: Agg }[] }>();
        for (const r of rows) {
          const key = JSON.stringify([r.src, r.dst]);
          const g = groups.get(key) ?? { src: r.src, dst: r.dst, cells: [] };
          groups.set(key, g);
          g.cells.push({ t: Number(r.t), agg: aggOf(r) });
        }
        return {
          src: req.query.src,
          dst: req.query.dst,
          by: req.query.by,
          step_ms: stepMs,
          edges: [...groups.values()].map((g) => ({
            src: g.src,
            dst: g.dst,
            ...healthOf(addAggs(g.cells.map((c) => c.agg))),
            series: g.cells.map((c) => ({ t: new Date(c.t * 1000).toISOString(), ...healthOf(c.agg) })),
          })),
        };
      },
    );
  };
