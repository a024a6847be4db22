/**
 * GET /api/v1/edges: one service pair broken down by zone pair, node pair or pod pair, with a
 * time series. The pair's rollup sorted by service pair first (flows_by_edge_*, migration 0007)
 * answers time it covers; time before it (coverage.ts) and windows short enough for the
 * per-second tier are answered as before it existed: zone and node pairs from their own
 * rollups, pod pairs from raw tcp_flows. Each part returns (group, step) cells; cells and
 * totals per group are added in TS, which is exact for counters and for the histograms alike.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { select, type Params } from './db.js';
import { badRequest, ERROR_RESPONSES, rangeOr400, rangeParams, source, type ApiContext } from './context.js';
import { splitAt } from './coverage.js';
import { addAggs, aggOf, healthOf, healthSchema, RAW_AGGREGATES, ROLLUP_AGGREGATES, type Agg, type AggRow } from './health.js';
import { rangeQuery, serviceRef, splitRef, type Range } from './params.js';
import { isFine } from './tiers.js';

const MAX_POINTS = 1440;
/** Without step_ms, the finest of these giving at most DEFAULT_POINTS points: a chart's worth, on round boundaries. */
const STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
const DEFAULT_POINTS = 100;

export function defaultStepMs(range: Range): number {
  const minutes = STEPS_MIN.find((m) => (range.toMs - range.fromMs) / (m * 60_000) <= DEFAULT_POINTS) ?? STEPS_MIN.at(-1)!;
  return minutes * 60_000;
}

const GROUPS = {
  zone: { src: 'client_zone', dst: 'server_zone' },
  node: { src: 'client_node', dst: 'server_node' },
  pod: { src: 'client_pod', dst: 'server_pod' },
} as const;

const PAIR = `client_namespace = {sns:String} AND client_workload = {sname:String} AND server_namespace = {dns:String} AND server_workload = {dname:String}`;

type Row = AggRow & { src: string; dst: string; t: number };
type By = keyof typeof GROUPS;

/** The FROM item and aggregates for `by` over `range`, without the pair's rollup (`covered` false) or from it. */
function part(ctx: ApiContext, by: By, range: Range, stepS: number, covered: boolean): { from: string; aggregates: string; params: Params } {
  if (covered) {
    // Connect failures are in the pair rollup with path '' and no server pod; by pod they stay out, as in the raw rows.
    const s = source(ctx, 'edge', range, by === 'pod' ? `${PAIR} AND path != ''` : PAIR, { stepS });
    return { from: s.from, aggregates: ROLLUP_AGGREGATES, params: s.params };
  }
  if (by === 'pod') {
    // The first minute included whole, like the rollups. `*` leaves out alias columns, and the
    // histogram columns are aliases since migration 0008.
    const from = `(SELECT slot_start AS start, *, client_rtt_buckets, client_rtt_counts, server_rtt_buckets, server_rtt_counts FROM tcp_flows WHERE slot_start >= toStartOfMinute(toDateTime({from:UInt32}, 'UTC')) AND slot_start < toDateTime({to:UInt32}, 'UTC') AND ${PAIR})`;
    return { from, aggregates: RAW_AGGREGATES, params: rangeParams(range) };
  }
  const s = source(ctx, by, range, PAIR, { stepS });
  return { from: s.from, aggregates: ROLLUP_AGGREGATES, params: s.params };
}

/** The (group, step) cells of `range`, each part of it read from its own source. */
async function cellRows(ctx: ApiContext, by: By, range: Range, stepS: number, pairParams: Params): Promise<Row[]> {
  // The per-second tier answers short recent windows of zone and node pairs to the slot; the pair rollup has minutes only.
  const split = by !== 'pod' && isFine(range, ctx.tiers) ? { before: range, after: null } : splitAt(range, await ctx.coverage('flows_by_edge'));
  const parts = [
    ...(split.before ? [part(ctx, by, split.before, stepS, false)] : []),
    ...(split.after ? [part(ctx, by, split.after, stepS, true)] : []),
  ];
  const results = await Promise.all(
    parts.map((p) =>
      select<Row>(
        ctx.ch,
        `SELECT ${GROUPS[by].src} AS src, ${GROUPS[by].dst} AS dst, toUnixTimestamp(toStartOfInterval(start, toIntervalSecond({step:UInt32}))) AS t, ${p.aggregates}
         FROM ${p.from} GROUP BY src, dst, t`,
        { ...p.params, ...pairParams, step: stepS },
      ),
    ),
  );
  return results.flat();
}

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
            step_ms: z.coerce
              .number()
              .int()
              .min(60_000)
              .max(86_400_000)
              .multipleOf(60_000)
              .optional()
              .describe(
                `time series step, whole minutes, honoured exactly (at most ${MAX_POINTS} points). Default: the finest of 1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6, 12, 24 h giving at most ${DEFAULT_POINTS} points (15 min for a day). Steps of whole hours read the hourly tier for whole hours.`,
              ),
          }),
          response: { 200: edgesResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const stepMs = req.query.step_ms ?? defaultStepMs(range);
        if ((range.toMs - range.fromMs) / stepMs > MAX_POINTS) {
          return badRequest(reply, `step_ms ${stepMs} gives more than ${MAX_POINTS} points for this range`);
        }
        const { by } = req.query;
        const src = splitRef(req.query.src);
        const dst = splitRef(req.query.dst);
        const rows = await cellRows(ctx, by, range, stepMs / 1000, { sns: src.namespace, sname: src.name, dns: dst.namespace, dname: dst.name });
        // A step can straddle the coverage boundary: its cell then comes from both parts and is added here.
        const groups = new Map<string, { src: string; dst: string; cells: Map<number, Agg[]> }>();
        for (const r of rows) {
          const key = JSON.stringify([r.src, r.dst]);
          const g = groups.get(key) ?? { src: r.src, dst: r.dst, cells: new Map() };
          groups.set(key, g);
          const t = Number(r.t);
          g.cells.set(t, [...(g.cells.get(t) ?? []), aggOf(r)]);
        }
        const byKey = <T extends { src: string; dst: string }>(a: T, b: T) => (a.src === b.src ? (a.dst < b.dst ? -1 : 1) : a.src < b.src ? -1 : 1);
        return {
          src: req.query.src,
          dst: req.query.dst,
          by: req.query.by,
          step_ms: stepMs,
          edges: [...groups.values()].sort(byKey).map((g) => {
            const cells = [...g.cells].sort(([a], [b]) => a - b).map(([t, aggs]) => ({ t, agg: addAggs(aggs) }));
            return {
              src: g.src,
              dst: g.dst,
              ...healthOf(addAggs(cells.map((c) => c.agg))),
              series: cells.map((c) => ({ t: new Date(c.t * 1000).toISOString(), ...healthOf(c.agg) })),
            };
          }),
        };
      },
    );
  };
