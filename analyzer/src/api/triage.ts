/**
 * GET /api/v1/triage: what got worse in and across one zone, incident window against a
 * baseline window (default: the same length just before). TCP findings come from the
 * node-pair rollups (zone pair, node pair and service pair in one table), DNS findings from
 * the DNS rollups for clients in the zone; each window reads the tiers that fit it
 * (tiers.ts), so a window of a few slots is not diluted by the minute around it. Ranked by
 * how much worse.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { select } from './db.js';
import { badRequest, ERROR_RESPONSES, rangeOr400, source, type ApiContext } from './context.js';
import { DNS_ERRORS } from './dns.js';
import { addAggs, aggOf, ROLLUP_AGGREGATES, type Agg, type AggRow } from './health.js';
import { rangeQuery, resolveRange, timeSpec, zoneName, type Range } from './params.js';
import { confiningNodes, groupBy, RULES, worsening, type TcpSymptom } from './triage-rules.js';

const findingSchema = z.object({
  rank: z.number(),
  symptom: z.enum(['latency', 'loss', 'connectivity', 'dns']),
  metric: z.string().describe('what was compared: rtt_p50_ms, retransmit_rate, failure_rate or dns_error_rate'),
  baseline: z.number().nullable(),
  incident: z.number(),
  severity: z.number().describe('(incident - baseline) / baseline, the ranking key'),
  zone_pairs: z.array(z.object({ src_zone: z.string(), dst_zone: z.string() })),
  scope: z.enum(['zone', 'nodes']),
  nodes: z.array(z.string()),
  services: z.array(z.string()),
  dns_server: z.object({ ip: z.string(), name: z.string() }).nullable(),
});
const window = z.object({ from: z.string(), to: z.string() });
const triageResponse = z.object({ zone: z.string(), incident: window, baseline: window, findings: z.array(findingSchema) });

type Finding = Omit<z.infer<typeof findingSchema>, 'rank'>;

type NodeRow = AggRow & { w: 'i' | 'b'; cz: string; sz: string; cn: string; sn: string; cs: string; ss: string };
type DnsRow = { w: 'i' | 'b'; server_ip: string; server_name: string; client: string; n: number; errors: number };

/** The node-pair and DNS rows of one window, labelled with it. */
async function windowRows(ctx: ApiContext, w: 'i' | 'b', range: Range, zone: string): Promise<[NodeRow[], DnsRow[]]> {
  const tcp = source(ctx, 'node', range, 'client_zone = {zone:String} OR server_zone = {zone:String}');
  const dns = source(ctx, 'dns', range, 'zone = {zone:String}');
  return Promise.all([
    select<NodeRow>(
      ctx.ch,
      `SELECT {w:String} AS w, client_zone AS cz, server_zone AS sz, client_node AS cn, server_node AS sn,
              concat(client_namespace, '/', client_workload) AS cs, concat(server_namespace, '/', server_workload) AS ss, ${ROLLUP_AGGREGATES}
       FROM ${tcp.from} GROUP BY cz, sz, cn, sn, cs, ss`,
      { ...tcp.params, w, zone },
    ),
    select<DnsRow>(
      ctx.ch,
      `SELECT {w:String} AS w, server_ip, server_name, concat(namespace, '/', workload) AS client,
              sum(queries) AS n, sumIf(queries, rcode IN {errors:Array(String)}) AS errors
       FROM ${dns.from} GROUP BY server_ip, server_name, client`,
      { ...dns.params, w, zone, errors: DNS_ERRORS },
    ),
  ]);
}

function tcpFindings(rows: NodeRow[]): Finding[] {
  const pairs = groupBy(rows, (r) => `${r.cz}\u0000${r.sz}`);
  const out: Finding[] = [];
  for (const pairRows of pairs.values()) {
    const inc = pairRows.filter((r) => r.w === 'i').map((r) => ({ row: r, cell: { clientNode: r.cn, serverNode: r.sn, agg: aggOf(r) } }));
    const base = addAggs(pairRows.filter((r) => r.w === 'b').map(aggOf));
    const incAgg = addAggs(inc.map((c) => c.cell.agg));
    for (const symptom of Object.keys(RULES) as TcpSymptom[]) {
      const rule = RULES[symptom];
      const incident = rule.value(incAgg);
      const severity = worsening(incident, rule.value(base), rule);
      if (severity === null) continue;
      const nodes = confiningNodes(inc.map((c) => c.cell), base, symptom);
      const inScope = nodes ? inc.filter((c) => nodes.includes(c.cell.clientNode) || nodes.includes(c.cell.serverNode)) : inc;
      out.push({
        symptom,
        metric: rule.metric,
        baseline: rule.value(base),
        incident: incident!,
        severity,
        zone_pairs: [{ src_zone: pairRows[0]!.cz, dst_zone: pairRows[0]!.sz }],
        scope: nodes ? 'nodes' : 'zone',
        nodes: nodes ?? [],
        services: degradedServices(inScope.map((c) => [c.row, c.cell.agg] as const), base, symptom),
        dns_server: null,
      });
    }
  }
  return mergeSameNodes(out);
}

/** Services on either end of a service pair that is itself degraded against the pair's baseline. */
function degradedServices(cells: (readonly [NodeRow, Agg])[], base: Agg, symptom: TcpSymptom): string[] {
  const bySvc = groupBy(cells, ([r]) => `${r.cs}\u0000${r.ss}`);
  const rule = RULES[symptom];
  const out = new Set<string>();
  for (const [key, group] of bySvc) {
    if (worsening(rule.value(addAggs(group.map(([, a]) => a))), rule.value(base), rule) === null) continue;
    for (const s of key.split('\u0000')) if (s !== '/') out.add(s);
  }
  return [...out].sort();
}

/** One failing node shows up in every zone pair that reaches it; report it once. */
function mergeSameNodes(findings: Finding[]): Finding[] {
  const out: Finding[] = [];
  for (const f of findings) {
    const same = f.scope === 'nodes' ? out.find((o) => o.scope === 'nodes' && o.symptom === f.symptom && o.nodes.join() === f.nodes.join()) : undefined;
    if (!same) {
      out.push(f);
      continue;
    }
    same.zone_pairs.push(...f.zone_pairs);
    same.services = [...new Set([...same.services, ...f.services])].sort();
    // The merged finding shows the numbers of its worst zone pair.
    if (f.severity > same.severity) Object.assign(same, { baseline: f.baseline, incident: f.incident, severity: f.severity });
  }
  return out;
}

function dnsFindings(rows: DnsRow[], zone: string): Finding[] {
  const rule = { ratio: 2, floor: 0.05 };
  const servers = groupBy(rows, (r) => r.server_ip);
  const rate = (rs: DnsRow[]) => {
    const q = rs.reduce((s, r) => s + Number(r.n), 0);
    return q > 0 ? rs.reduce((s, r) => s + Number(r.errors), 0) / q : null;
  };
  const out: Finding[] = [];
  for (const [ip, rs] of servers) {
    const incident = rate(rs.filter((r) => r.w === 'i'));
    const baseline = rate(rs.filter((r) => r.w === 'b'));
    const severity = worsening(incident, baseline, rule);
    if (severity === null) continue;
    const clients = [...new Set(rs.map((r) => r.client))].filter((c) => worsening(rate(rs.filter((r) => r.w === 'i' && r.client === c)), baseline, rule) !== null);
    out.push({
      symptom: 'dns',
      metric: 'dns_error_rate',
      baseline,
      incident: incident!,
      severity,
      zone_pairs: [{ src_zone: zone, dst_zone: '' }],
      scope: 'zone',
      nodes: [],
      services: clients.sort(),
      dns_server: { ip, name: rs[0]!.server_name },
    });
  }
  return out;
}

export const triageRoutes = (ctx: ApiContext): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/api/v1/triage',
      {
        schema: {
          summary: 'ranked findings in and across a zone: symptom (latency, loss, connectivity, dns), services, zone-wide or confined to named nodes',
          querystring: rangeQuery.extend({
            zone: zoneName,
            baseline_from: timeSpec.optional().describe('baseline start; default: as long as the incident, just before it'),
            baseline_to: timeSpec.optional().describe('baseline end; default: the incident start'),
          }).refine((q) => q.baseline_to === undefined || q.baseline_from !== undefined, { message: 'baseline_to needs baseline_from' }),
          response: { 200: triageResponse, ...ERROR_RESPONSES },
        },
      },
      async (req, reply) => {
        const range = rangeOr400(req.query, reply);
        if (!range) return reply;
        const q = req.query;
        const baseline = q.baseline_from
          ? resolveRange(q.baseline_from, q.baseline_to ?? q.from)
          : { fromMs: 2 * range.fromMs - range.toMs, toMs: range.fromMs };
        if (typeof baseline === 'string') return badRequest(reply, `baseline: ${baseline}`);
        const [[incTcp, incDns], [baseTcp, baseDns]] = await Promise.all([windowRows(ctx, 'i', range, q.zone), windowRows(ctx, 'b', baseline, q.zone)]);
        const nodeRows = [...incTcp, ...baseTcp];
        const dnsRows = [...incDns, ...baseDns];
        const findings = [...tcpFindings(nodeRows), ...dnsFindings(dnsRows, q.zone)].sort((x, y) => y.severity - x.severity);
        return {
          zone: q.zone,
          incident: { from: new Date(range.fromMs).toISOString(), to: new Date(range.toMs).toISOString() },
          baseline: { from: new Date(baseline.fromMs).toISOString(), to: new Date(baseline.toMs).toISOString() },
          findings: findings.map((f, i) => ({ rank: i + 1, ...f })),
        };
      },
    );
  };
