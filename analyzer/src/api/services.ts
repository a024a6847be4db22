/** GET /api/v1/services and /api/v1/services/{namespace}/{name}/peers, from flows_by_service_1m. */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { select } from './db.js';
import { ERROR_RESPONSES, rangeOr400, source, type ApiContext } from './context.js';
import { aggOf, healthOf, healthSchema, ROLLUP_AGGREGATES, type AggRow, type Health } from './health.js';
import { k8sName, rangeQuery } from './params.js';

type Row = AggRow & { namespace: string; name: string };

const servicesResponse = z.object({
  from: z.string(),
  to: z.string(),
  services: z.array(z.object({ namespace: z.string(), name: z.string(), inbound: healthSchema.nullable(), outbound: healthSchema.nullable() })),
});
const peersResponse = z.object({
  service: z.object({ namespace: z.string(), name: z.string() }),
  peers: z.array(healthSchema.extend({ direction: z.enum(['inbound', 'outbound']), namespace: z.string(), name: z.string() })),
});
const notFound = z.object({ statusCode: z.number(), error: z.string(), message: z.string() });

const bySide = (side: 'client' | 'server', from: string) => `
  SELECT ${side}_namespace AS namespace, ${side}_workload AS name, ${ROLLUP_AGGREGATES}
  FROM ${from} GROUP BY namespace, name ORDER BY namespace, name`;

export const servicesRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/services',
      { schema: { summary: 'every service/workload seen, with traffic and health as server (inbound) and as client (outbound)', querystring: rangeQuery, response: { 200: servicesResponse, ...ERROR_RESPONSES } } },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const s = source(ctx, 'service', range);
        const [inbound, outbound] = await Promise.all([select<Row>(ctx.ch, bySide('server', s.from), s.params), select<Row>(ctx.ch, bySide('client', s.from), s.params)]);
        const services = new Map<string, { namespace: string; name: string; inbound: Health | null; outbound: Health | null }>();
        const entry = (r: Row) => {
          const key = `${r.namespace}/${r.name}`;
          const e = services.get(key) ?? { namespace: r.namespace, name: r.name, inbound: null, outbound: null };
          services.set(key, e);
          return e;
        };
        for (const r of inbound) entry(r).inbound = healthOf(aggOf(r));
        for (const r of outbound) entry(r).outbound = healthOf(aggOf(r));
        return { from: new Date(range.fromMs).toISOString(), to: new Date(range.toMs).toISOString(), services: [...services.values()] };
      },
    );

    app.get(
      '/api/v1/services/:namespace/:name/peers',
      {
        schema: {
          summary: 'peers of one service in both directions: RTT p10/p50/p99, retransmit rate, connect failures, SYN timeouts, resets, bytes',
          params: z.object({ namespace: k8sName, name: k8sName }),
          querystring: rangeQuery,
          response: { 200: peersResponse, 404: notFound.describe('no traffic of this service in the range'), ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const p = { ns: req.params.namespace, name: req.params.name };
        const callersOf = source(ctx, 'service', range, 'server_namespace = {ns:String} AND server_workload = {name:String}');
        const calleesOf = source(ctx, 'service', range, 'client_namespace = {ns:String} AND client_workload = {name:String}');
        const [callers, callees] = await Promise.all([
          select<Row>(ctx.ch, bySide('client', callersOf.from), { ...callersOf.params, ...p }),
          select<Row>(ctx.ch, bySide('server', calleesOf.from), { ...calleesOf.params, ...p }),
        ]);
        if (callers.length + callees.length === 0) {
          return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no traffic of ${p.ns}/${p.name} in this range` });
        }
        return {
          service: { namespace: p.ns, name: p.name },
          peers: [
            ...callees.map((r) => ({ direction: 'outbound' as const, namespace: r.namespace, name: r.name, ...healthOf(aggOf(r)) })),
            ...callers.map((r) => ({ direction: 'inbound' as const, namespace: r.namespace, name: r.name, ...healthOf(aggOf(r)) })),
          ],
        };
      },
    );
  };
