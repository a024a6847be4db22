/** GET /api/v1/zones/matrix: the zone x zone ping mesh from flows_by_zone_1m. */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { select } from './db.js';
import { ERROR_RESPONSES, rangeOr400, source, type ApiContext } from './context.js';
import { aggOf, failureRate, healthOf, healthSchema, retransmitRate, ROLLUP_AGGREGATES, rttQuantileMs, type Agg, type AggRow } from './health.js';
import { rangeQuery } from './params.js';

export const MATRIX_METRICS = {
  rtt_p10: (a: Agg) => rttQuantileMs(a, 0.1),
  rtt_p50: (a: Agg) => rttQuantileMs(a, 0.5),
  rtt_p99: (a: Agg) => rttQuantileMs(a, 0.99),
  retransmit_rate: retransmitRate,
  failure_rate: failureRate,
} as const;

type Row = AggRow & { src_zone: string; dst_zone: string };

const matrixResponse = z.object({
  metric: z.string(),
  zones: z.array(z.string()),
  matrix: z.array(z.array(z.number().nullable())).describe('rows: client zones, columns: server zones, in zones order'),
  cells: z.array(healthSchema.extend({ src_zone: z.string(), dst_zone: z.string(), value: z.number().nullable() })),
});

export const matrixRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/zones/matrix',
      {
        schema: {
          summary: 'zone x zone matrix of one metric (client zone rows, server zone columns); RTT in ms, rates as fractions',
          querystring: rangeQuery.extend({ metric: z.enum(Object.keys(MATRIX_METRICS) as [keyof typeof MATRIX_METRICS]).default('rtt_p50') }),
          response: { 200: matrixResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const s = source(ctx, 'zone', range, `client_zone != '' AND server_zone != ''`);
        const rows = await select<Row>(
          ctx.ch,
          `SELECT client_zone AS src_zone, server_zone AS dst_zone, ${ROLLUP_AGGREGATES}
           FROM ${s.from} GROUP BY src_zone, dst_zone ORDER BY src_zone, dst_zone`,
          s.params,
        );
        const metric = MATRIX_METRICS[req.query.metric];
        const zones = [...new Set(rows.flatMap((r) => [r.src_zone, r.dst_zone]))].sort();
        const cells = rows.map((r) => {
          const a = aggOf(r);
          return { src_zone: r.src_zone, dst_zone: r.dst_zone, value: metric(a), ...healthOf(a) };
        });
        const at = new Map(cells.map((c) => [`${c.src_zone}\u0000${c.dst_zone}`, c.value]));
        return {
          metric: req.query.metric,
          zones,
          // Rows are client zones, columns server zones, in `zones` order; null where no traffic was seen.
          matrix: zones.map((s) => zones.map((d) => at.get(`${s}\u0000${d}`) ?? null)),
          cells,
        };
      },
    );
  };
