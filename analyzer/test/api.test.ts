/**
 * The HTTP API against real ClickHouse, filled with the synthetic cluster of
 * support/cluster-fixture.ts. Expected numbers come from the generated samples through the
 * schemas' histogram functions, never from constants.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { FastifyInstance } from 'fastify';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { bucketOf, fromSamples, histogramQuantile } from '@meshlens/schemas';
import { clickhouseClient, migrate } from '@meshlens/schemas/clickhouse';
import { buildApi } from '../src/index.js';
import { DEGRADED, DNS_SERVERS, FAILING_DNS, FAILING_NODE, generate, NAMESPACE, rows, WINDOW_MS, type FlowSample } from './support/cluster-fixture.js';

const TOKEN = `t-${randomUUID()}`;
const INCIDENT = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
const fx = generate(INCIDENT);
const iso = (ms: number) => new Date(ms).toISOString();
const ALL = `from=${iso(INCIDENT - WINDOW_MS)}&to=${iso(INCIDENT + WINDOW_MS)}`;
const INC = `from=${iso(INCIDENT)}&to=${iso(INCIDENT + WINDOW_MS)}`;
const q = (flows: FlowSample[], p: number) => {
  const us = histogramQuantile(fromSamples(flows.flatMap((f) => f.rttUs)), p);
  return us === null ? null : us / 1000;
};

let ch: ClickHouseClient;
let app: FastifyInstance;
const database = `meshlens_test_api_${randomUUID().replaceAll('-', '')}`;

async function get(url: string, token: string | null = TOKEN): Promise<{ status: number; body: Record<string, unknown> & { message?: string } }> {
  const res = await app.inject({ method: 'GET', url, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, body: res.json() };
}

before(async () => {
  const conn = connectionsFor(localInfraConfig());
  const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };
  await migrate(target);
  ch = clickhouseClient(target);
  for (const [table, values] of Object.entries(rows(fx, bucketOf))) await ch.insert({ table, values, format: 'JSONEachRow' });
  app = await buildApi({ ch, tokens: [TOKEN] });
});

after(async () => {
  await app?.close();
  await ch?.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  await ch?.close();
});

describe('api', () => {
  it('lists services with inbound RTT percentiles and flow counts from the rollup', async () => {
    const { status, body } = await get(`/api/v1/services?${ALL}`);
    assert.equal(status, 200);
    const services = body.services as { namespace: string; name: string; inbound: { flows: number; rtt_p50_ms: number } | null; outbound: { flows: number } | null }[];
    for (const name of ['cart', 'payments', 'catalog'] as const) {
      const s = services.find((x) => x.name === name && x.namespace === NAMESPACE)!;
      const flows = fx.flows.filter((f) => f.server === name);
      assert.equal(s.inbound!.flows, flows.length, name);
      assert.equal(s.inbound!.rtt_p50_ms, q(flows, 0.5), name);
    }
    const frontend = services.find((x) => x.name === 'frontend')!;
    assert.equal(frontend.outbound!.flows, fx.flows.filter((f) => f.client === 'frontend').length);
    assert.equal(frontend.inbound, null);
    // The fixture lies 45..75 minutes back, so a relative range around it must give the same answer.
    const relative = await get('/api/v1/services?from=-2h&to=-1m');
    assert.deepEqual(relative.body.services, body.services);
  });

  it('gives the peers of a service in both directions with percentiles and failures', async () => {
    const { status, body } = await get(`/api/v1/services/${NAMESPACE}/cart/peers?${INC}`);
    assert.equal(status, 200);
    const peers = body.peers as { direction: string; name: string; rtt_p10_ms: number; rtt_p50_ms: number; rtt_p99_ms: number; connect_failures: number; retransmit_rate: number }[];
    assert.deepEqual(peers.map((p) => `${p.direction}:${p.name}`).sort(), ['inbound:frontend', 'outbound:catalog']);
    for (const p of peers) {
      const flows = fx.flows.filter((f) => f.incident && (p.direction === 'inbound' ? f.client === p.name && f.server === 'cart' : f.client === 'cart' && f.server === p.name));
      assert.deepEqual([p.rtt_p10_ms, p.rtt_p50_ms, p.rtt_p99_ms], [q(flows, 0.1), q(flows, 0.5), q(flows, 0.99)], p.name);
      const failures = fx.failures.filter((f) => f.incident && (p.direction === 'inbound' ? f.client === p.name && f.server === 'cart' : f.client === 'cart' && f.server === p.name));
      assert.equal(p.connect_failures, failures.length, p.name);
      assert.equal(p.retransmit_rate, flows.length > 0 ? fx.constants.retrans / fx.constants.segments : null);
    }
    assert.equal((await get(`/api/v1/services/${NAMESPACE}/nosuch/peers?${INC}`)).status, 404);
  });

  for (const by of ['zone', 'node', 'pod'] as const) {
    it(`breaks one service pair down by ${by} with a per-minute series`, async () => {
      const { status, body } = await get(`/api/v1/edges?${ALL}&src=${NAMESPACE}/frontend&dst=${NAMESPACE}/catalog&by=${by}`);
      assert.equal(status, 200);
      const key = (f: FlowSample) => (by === 'zone' ? [f.clientPod.zone, f.serverPod.zone] : by === 'node' ? [f.clientPod.node, f.serverPod.node] : [f.clientPod.name, f.serverPod.name]).join('>');
      const flows = fx.flows.filter((f) => f.client === 'frontend' && f.server === 'catalog');
      const edges = body.edges as { src: string; dst: string; flows: number; rtt_p50_ms: number; series: { t: string; flows: number }[] }[];
      assert.deepEqual(edges.map((e) => `${e.src}>${e.dst}`).sort(), [...new Set(flows.map(key))].sort());
      for (const e of edges) {
        const mine = flows.filter((f) => key(f) === `${e.src}>${e.dst}`);
        assert.equal(e.flows, mine.length);
        assert.equal(e.rtt_p50_ms, q(mine, 0.5));
        assert.equal(e.series.length, (2 * WINDOW_MS) / 60_000);
        assert.equal(e.series.reduce((s, p) => s + p.flows, 0), mine.length);
      }
    });
  }

  it('fills the zone matrix with the degraded pair standing out', async () => {
    for (const metric of ['rtt_p10', 'rtt_p50', 'rtt_p99'] as const) {
      const { status, body } = await get(`/api/v1/zones/matrix?${INC}&metric=${metric}`);
      assert.equal(status, 200);
      const zones = body.zones as string[];
      const matrix = body.matrix as (number | null)[][];
      const p = { rtt_p10: 0.1, rtt_p50: 0.5, rtt_p99: 0.99 }[metric];
      for (const [i, src] of zones.entries()) {
        for (const [j, dst] of zones.entries()) {
          const flows = fx.flows.filter((f) => f.incident && f.clientPod.zone === src && f.serverPod.zone === dst);
          assert.equal(matrix[i]![j], q(flows, p), `${metric} ${src}>${dst}`);
        }
      }
    }
    const { body } = await get(`/api/v1/zones/matrix?${INC}&metric=failure_rate`);
    const zones = body.zones as string[];
    const cell = (body.matrix as (number | null)[][])[zones.indexOf('zone-a')]![zones.indexOf('zone-b')];
    const failed = fx.failures.filter((f) => f.clientPod.zone === 'zone-a' && f.serverPod.zone === 'zone-b').length;
    const opened = fx.flows.filter((f) => f.incident && f.clientPod.zone === 'zone-a' && f.serverPod.zone === 'zone-b').length;
    assert.equal(cell, failed / (failed + opened));
  });

  it('triage names the injected degradations of each zone and nothing else', async () => {
    const expected: Record<string, string[]> = {
      [DEGRADED.src]: [`latency ${DEGRADED.src}>${DEGRADED.dst} zone`, `connectivity ${DEGRADED.src}>zone-b nodes:${FAILING_NODE}`],
      'zone-b': [`connectivity ${DEGRADED.src}>zone-b nodes:${FAILING_NODE}`],
      [DEGRADED.dst]: [`latency ${DEGRADED.src}>${DEGRADED.dst} zone`, `dns ${FAILING_DNS.zone}> zone`],
    };
    for (const [zone, findings] of Object.entries(expected)) {
      const { status, body } = await get(`/api/v1/triage?zone=${zone}&${INC}`);
      assert.equal(status, 200);
      const got = body.findings as { symptom: string; zone_pairs: { src_zone: string; dst_zone: string }[]; scope: string; nodes: string[]; services: string[]; dns_server: { ip: string } | null }[];
      const summary = got.map((f) => `${f.symptom} ${f.zone_pairs.map((p) => `${p.src_zone}>${p.dst_zone}`).join(',')} ${f.scope === 'nodes' ? `nodes:${f.nodes.join(',')}` : 'zone'}`);
      assert.deepEqual(summary.sort(), findings.sort(), zone);
      for (const f of got) {
        if (f.symptom === 'latency') assert.deepEqual(f.services, [`${NAMESPACE}/catalog`, `${NAMESPACE}/frontend`]);
        if (f.symptom === 'connectivity') assert.deepEqual(f.services, [`${NAMESPACE}/cart`, `${NAMESPACE}/frontend`, `${NAMESPACE}/payments`]);
        if (f.symptom === 'dns') assert.equal(f.dns_server!.ip, DNS_SERVERS[FAILING_DNS.zone]);
      }
    }
    const calm = await get(`/api/v1/triage?zone=zone-b&from=${iso(INCIDENT - WINDOW_MS / 2)}&to=${iso(INCIDENT)}`);
    assert.deepEqual(calm.body.findings, [], 'nothing changed inside the baseline');
  });

  it('reports DNS health per server with the rcode mix and latency percentiles', async () => {
    const { status, body } = await get(`/api/v1/dns?${INC}&by=server`);
    assert.equal(status, 200);
    const groups = body.groups as { server_ip: string; queries: number; rcodes: Record<string, number>; error_rate: number; latency_p50_ms: number }[];
    for (const g of groups) {
      const mine = fx.dns.filter((d) => d.incident && d.server === g.server_ip);
      assert.equal(g.queries, mine.length);
      assert.equal(g.rcodes.SERVFAIL ?? 0, mine.filter((d) => d.rcode === 'SERVFAIL').length);
      assert.equal(g.latency_p50_ms, histogramQuantile(fromSamples(mine.map((d) => d.latencyUs)), 0.5)! / 1000);
    }
    assert.deepEqual(groups.map((g) => g.server_ip).sort(), Object.values(DNS_SERVERS).sort());
    const byName = await get(`/api/v1/dns?${INC}&by=name`);
    assert.equal((byName.body.groups as unknown[]).length, new Set(fx.dns.map((d) => d.qname)).size);
  });

  it('ranks destinations by p10 RTT with unreachable ones last', async () => {
    const { status, body } = await get(`/api/v1/rankings?${INC}&from_service=${NAMESPACE}/frontend`);
    assert.equal(status, 200);
    const d = body.destinations as { name: string; status: string; rtt_p10_ms: number | null }[];
    assert.equal(d.at(-1)!.name, 'payments');
    assert.equal(d.at(-1)!.status, 'unreachable');
    for (const x of d.slice(0, -1)) assert.equal(x.rtt_p10_ms, q(fx.flows.filter((f) => f.incident && f.client === 'frontend' && f.server === x.name), 0.1), x.name);
    const healthy = d.filter((x) => x.status === 'healthy').map((x) => x.rtt_p10_ms!);
    assert.deepEqual(healthy, [...healthy].sort((a, b) => a - b));
    const zone = await get(`/api/v1/rankings?${INC}&from_zone=zone-a`);
    assert.equal((zone.body.destinations as { name: string }[]).at(-1)!.name, 'payments');
  });

  const BAD: [string, RegExp][] = [
    ['/api/v1/services?from=yesterday', /from/],
    ['/api/v1/services?from=-15m&to=-20m', /before/],
    ['/api/v1/services?from=-400d', /longer than/],
    ['/api/v1/services?from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z', /outside 1970/],
    ['/api/v1/services?from=2999-01-01T00:00:00Z&to=2999-01-02T00:00:00Z', /outside 1970/],
    ["/api/v1/services?from=now'%3B DROP TABLE tcp_flows--", /from/],
    ['/api/v1/services?to=2026-13-45T99:00:00Z', /to/],
    ['/api/v1/services/Shop/cart/peers', /namespace/],
    ["/api/v1/services/shop/cart'%20OR%201=1/peers", /name/],
    ['/api/v1/edges?src=shop/frontend&dst=shop/catalog&by=rack', /by/],
    ['/api/v1/edges?src=shop/frontend&by=zone', /dst/],
    ['/api/v1/edges?src=shop/frontend&dst=shop/catalog&by=zone&step_ms=1000', /step_ms/],
    ['/api/v1/edges?src=shop/frontend&dst=shop/catalog&by=zone&step_ms=60000&from=-30d', /points/],
    ['/api/v1/edges?src=%E2%98%83/x&dst=shop/catalog&by=zone', /src/],
    ['/api/v1/zones/matrix?metric=rtt_p42', /metric/],
    ['/api/v1/triage', /zone/],
    ['/api/v1/triage?zone=zone-a%20OR%201', /zone/],
    ['/api/v1/triage?zone=zone-a&baseline_to=-1h', /baseline_from/],
    ['/api/v1/triage?zone=zone-a&baseline_from=-1h&baseline_to=-2h', /baseline/],
    ['/api/v1/dns?by=qname', /by/],
    ['/api/v1/rankings', /exactly one/],
    ['/api/v1/rankings?from_zone=zone-a&from_service=shop/frontend', /exactly one/],
  ];
  it('answers every bad parameter with 400 and a message naming it', async () => {
    for (const [url, why] of BAD) {
      const { status, body } = await get(url);
      assert.equal(status, 400, url);
      assert.match(body.message!, why, url);
    }
    const tables = await (await ch.query({ query: `SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'tcp_flows'`, query_params: { db: database }, format: 'JSONEachRow' })).json<{ n: number }>();
    assert.equal(Number(tables[0]!.n), 1, 'the hostile parameters executed nothing');
  });

  it('demands a valid bearer token on /api but not on /healthz and /metrics', async () => {
    assert.equal((await get('/api/v1/services', null)).status, 401);
    assert.equal((await get('/api/v1/services', `${TOKEN}x`)).status, 401);
    assert.equal((await get('/api/v1/services', TOKEN.slice(0, -1))).status, 401);
    assert.equal((await get('/healthz', null)).status, 200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /meshlens_api_request_seconds_count\{route="\/api\/v1\/services",status="401"\} 3/);
  });

  it('serves a valid OpenAPI document covering every endpoint', async () => {
    const { status, body } = await get('/openapi.json', null);
    assert.equal(status, 200);
    const doc = (await SwaggerParser.validate(structuredClone(body) as never)) as { paths: Record<string, unknown> };
    assert.equal((await app.inject({ method: 'GET', url: '/docs/' })).statusCode, 200, 'interactive docs');
    for (const p of ['/api/v1/services', '/api/v1/services/{namespace}/{name}/peers', '/api/v1/edges', '/api/v1/zones/matrix', '/api/v1/triage', '/api/v1/dns', '/api/v1/rankings']) {
      assert.ok(p in doc.paths, p);
    }
  });
});
