// The lab in miniature through real Kafka and ClickHouse: two zones, a DNAT'd service, an
// external name learnt from DNS, a pod IP reused by a second pod, loopback traffic and a
// late record. Each produces exactly the flow rows, labels and rollups that follow from it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { histogramQuantile, mergeHistograms, sampleDnsRecords, sampleTcpEvents, type SparseHistogram, type TcpRecord } from '@meshlens/schemas';
import type { Analyzer } from '../src/index.js';
import { SLOT_MS, T0, connection, createEnv, node, pod, produceDns, produceEvents, produceMetadata, produceTcp, query, waitForRows, type TestEnv } from './harness.js';

const WEB = { ip: '10.0.1.10', port: 41000, node: 'n1', podUid: 'uid-web-1', comm: 'node' };
const API = { ip: '10.0.2.20', port: 8080, node: 'n2', podUid: 'uid-api-1', comm: 'java' };
const REUSED_IP = '10.0.3.30';
const STRIPE_IP = '203.0.113.7';
const T1 = T0 + 6 * SLOT_MS;

interface FlowRow {
  client_port: number;
  slot_start: string;
  observed: string;
  late: boolean;
  path: string;
  client_workload: string;
  client_zone: string;
  server_workload: string;
  server_namespace: string;
  server_service: string;
  server_zone: string;
  server_pod: string;
  service_ip: string;
  bytes_c2s: string;
  bytes_s2c: string;
  client_retrans: string;
  server_retrans: string;
  client_srtt_us: number;
  server_srtt_us: number;
}

describe('analyzer pipeline: match, enrich, store', () => {
  let env: TestEnv;
  let analyzer: Analyzer;
  const viaService = connection(11, { ...WEB, port: 41001 }, API, T0, { serviceIp: '10.96.0.50' });
  const toStripe = connection(12, { ...WEB, port: 41002 }, { ip: STRIPE_IP, port: 443, node: '?' }, T0).client;
  const toUnknown = connection(13, { ...WEB, port: 41003 }, { ip: '198.51.100.9', port: 5432, node: '?' }, T0).client;
  const toReusedEarly = connection(14, { ...WEB, port: 41004 }, { ip: REUSED_IP, port: 8080, node: '?' }, T0).client;
  const toReusedLater = connection(15, { ...WEB, port: 41005 }, { ip: REUSED_IP, port: 8080, node: '?' }, T1).client;
  const loopback = connection(16, { ip: '127.0.0.1', port: 41006, node: 'n1', netns: 77, podUid: WEB.podUid }, { ip: '127.0.0.1', port: 9000, node: 'n1', netns: 77, podUid: WEB.podUid }, T0);
  const lateConn = connection(17, { ...WEB, port: 41007 }, API, T0);
  // Two containers of one pod talking over the pod IP: same network namespace, no network in between.
  const samePod = connection(18, { ...WEB, port: 41008, netns: 55 }, { ...WEB, port: 9090, netns: 55 }, T0);

  before(async () => {
    env = await createEnv();
    await produceMetadata(env, [
      node('n1', 'zone-a', '192.168.0.1'),
      node('n2', 'zone-b', '192.168.0.2'),
      node('n3', 'zone-b', '192.168.0.3'),
      pod(WEB.podUid, 'web-1', { node: 'n1', ip: WEB.ip, fromMs: T0 - 3_600_000 }),
      pod(API.podUid, 'api-1', { node: 'n2', ip: API.ip, fromMs: T0 - 3_600_000 }),
      { kind: 'service', uid: 'svc-api', version: '1', observed_ms: T0, deleted_ms: null, namespace: 'shop', name: 'api', cluster_ips: ['10.96.0.50'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }], selector: { app: 'api' } },
      { kind: 'endpoint', uid: 'eps-api', version: '1', observed_ms: T0, deleted_ms: null, namespace: 'shop', service: 'api', addresses: [{ ip: API.ip, pod_uid: API.podUid, node: 'n2', ready: true }] },
      // One IP, two pods: cart-v1 until T0 + 30 s, billing from T0 + 40 s.
      pod('uid-cart-old', 'cart-v1-abc', { node: 'n3', workload: 'cart-v1', ip: REUSED_IP, fromMs: T0 - 3_600_000, toMs: T0 + 30_000, deletedMs: T0 + 30_000 }),
      pod('uid-billing', 'billing-xyz', { node: 'n2', workload: 'billing', ip: REUSED_IP, fromMs: T0 + 40_000 }),
    ]);
    const [dns] = sampleDnsRecords(1, 5, T0 - 5_000);
    await produceDns(env, [{ ...dns!, owner: viaService.client.owner, client: { ip: WEB.ip, port: 53000 }, qname: 'api.stripe.com', rcode: 0, timed_out: false, latency_us: 900, answers: [STRIPE_IP], ttl_min_s: 60 }]);
    analyzer = await env.start();
    await produceTcp(env, [viaService.client, viaService.server, toStripe, toUnknown, toReusedEarly, toReusedLater, loopback.client, loopback.server, lateConn.client, samePod.client, samePod.server]);
  });

  after(async () => {
    await analyzer.stop();
    await env.cleanup();
  });

  const flows = () => query<FlowRow>(env, 'SELECT * FROM tcp_flows ORDER BY slot_start, client_port, observed');
  const byPort = (rows: FlowRow[], port: number) => rows.filter((r) => r.client_port === port);

  it('stores one row per connection per slot, both ends in one row with the right attribution', async () => {
    const rows = await waitForRows<FlowRow>(env, 'SELECT * FROM tcp_flows', (r) => r.length >= 8);
    assert.equal(rows.length, 8);
    const [row, ...more] = byPort(await flows(), 41001);
    assert.equal(more.length, 0);
    const c = viaService.client;
    const s = viaService.server;
    assert.deepEqual(
      { observed: row!.observed, late: row!.late, path: row!.path, client: row!.client_workload, cz: row!.client_zone, server: row!.server_workload, svc: row!.server_service, sz: row!.server_zone, pod: row!.server_pod, vip: row!.service_ip },
      { observed: 'both', late: false, path: 'network', client: 'web', cz: 'zone-a', server: 'api', svc: 'shop/api', sz: 'zone-b', pod: 'api-1', vip: '10.96.0.50' },
    );
    assert.equal(Number(row!.bytes_c2s), c.bytes_sent);
    assert.equal(Number(row!.bytes_s2c), s.bytes_sent);
    assert.equal(row!.client_srtt_us, c.srtt_us);
    assert.equal(row!.server_srtt_us, s.srtt_us);
    assert.equal(Number(row!.server_retrans), s.retrans_segs);
  });

  it('stores one-sided flows with the remote named from DNS answers, or as the bare IP', async () => {
    const rows = await flows();
    const [stripe] = byPort(rows, 41002);
    const [unknown] = byPort(rows, 41003);
    assert.deepEqual([stripe!.observed, stripe!.server_workload, stripe!.server_namespace], ['client', 'external:api.stripe.com', '']);
    assert.deepEqual([unknown!.observed, unknown!.server_workload], ['client', '198.51.100.9']);
  });

  it('labels a reused pod IP with the pod that held it at the time of each slot', async () => {
    const rows = await flows();
    const [early] = byPort(rows, 41004);
    const [later] = byPort(rows, 41005);
    assert.deepEqual([early!.server_workload, early!.server_pod, early!.server_zone], ['cart-v1', 'cart-v1-abc', 'zone-b']);
    assert.deepEqual([later!.server_workload, later!.server_pod, later!.server_zone], ['billing', 'billing-xyz', 'zone-b']);
  });

  it('labels loopback and same-pod traffic as such instead of as network paths', async () => {
    const rows = await flows();
    const [lo] = byPort(rows, 41006);
    const [pod] = byPort(rows, 41008);
    assert.deepEqual([lo!.observed, lo!.path, lo!.client_workload, lo!.server_workload], ['both', 'loopback', 'web', 'web']);
    assert.deepEqual([pod!.observed, pod!.path, pod!.client_workload, pod!.server_workload], ['both', 'same_pod', 'web', 'web']);
  });

  it('stores a record that arrives after its slot closed, flagged late, beside the row of its other side', async () => {
    await produceTcp(env, [lateConn.server]);
    await waitForRows<FlowRow>(env, 'SELECT * FROM tcp_flows WHERE late', (r) => r.length === 1);
    const rows = byPort(await flows(), 41007);
    assert.deepEqual(
      rows.map((r) => [r.observed, r.late]),
      [
        ['client', false],
        ['server', true],
      ],
    );
  });

  it('keeps per-minute rollups whose RTT percentiles equal the raw rows to the bucket', async () => {
    const hist = (rows: { h: [number[], string[]] }[]): SparseHistogram => ({ idx: rows[0]!.h[0], cnt: rows[0]!.h[1].map(Number) });
    const raw = hist(await query(env, "SELECT sumMap(client_rtt_buckets, client_rtt_counts) AS h FROM tcp_flows WHERE client_zone = 'zone-a' AND server_zone = 'zone-b'"));
    const zone = hist(await query(env, "SELECT sumMap(client_rtt) AS h FROM flows_by_zone_1m WHERE client_zone = 'zone-a' AND server_zone = 'zone-b'"));
    const nodes = hist(await query(env, "SELECT sumMap(client_rtt) AS h FROM flows_by_node_1m WHERE client_node = 'n1' AND server_zone = 'zone-b'"));
    const expected = mergeHistograms(...[viaService.client, toReusedEarly, toReusedLater, lateConn.client].map((r: TcpRecord) => r.rtt_hist));
    assert.deepEqual(raw, expected);
    assert.deepEqual(zone, expected);
    assert.deepEqual(nodes, expected);
    for (const q of [0.1, 0.5, 0.9, 0.99]) assert.equal(histogramQuantile(zone, q), histogramQuantile(expected, q));
    const [svc] = await query<{ counts: number[] }>(
      env,
      "SELECT [sum(flows), sum(flows_matched), sum(flows_late)] AS counts FROM flows_by_service_1m WHERE client_workload = 'web' AND server_workload = 'api'",
    );
    assert.deepEqual(svc!.counts.map(Number), [3, 1, 1]);
  });

  it('stores connect failures and counts them in the service-pair rollup', async () => {
    const [e] = sampleTcpEvents(1, 9, T0 + 1234);
    await produceEvents(env, [{ ...e!, kind: 'connect_failed', role: 'client', errno: 111, errno_class: 'refused', owner: viaService.client.owner, local: { ip: WEB.ip, port: 42000 }, remote: { ip: API.ip, port: 8080 }, remote_orig: { ip: '10.96.0.50', port: 80 } }]);
    await waitForRows<{ n: string }>(
      env,
      "SELECT toString(sum(connect_failures)) AS n FROM flows_by_service_1m WHERE client_workload = 'web' AND server_workload = 'api'",
      (r) => r[0]?.n === '1',
    );
    const [ev] = await query<{ workload: string; remote_service: string; remote_zone: string }>(env, 'SELECT workload, remote_service, remote_zone FROM tcp_events');
    assert.deepEqual(ev, { workload: 'web', remote_service: 'shop/api', remote_zone: 'zone-b' });
  });

  it('stores DNS queries with the client labelled', async () => {
    const [q] = await waitForRows<{ qname: string; rcode: string; workload: string; zone: string }>(env, 'SELECT qname, rcode, workload, zone FROM dns_queries', (r) => r.length === 1);
    assert.deepEqual(q, { qname: 'api.stripe.com', rcode: 'NOERROR', workload: 'web', zone: 'zone-a' });
  });

  it('serves /healthz and /metrics with match counters and insert latency', async () => {
    const health = await fetch(`http://127.0.0.1:${analyzer.httpPort}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ok: boolean }).ok, true);
    const metrics = await (await fetch(`http://127.0.0.1:${analyzer.httpPort}/metrics`)).text();
    assert.match(metrics, /^meshlens_analyzer_flows_total\{observed="both",late="false"\} 3$/m);
    assert.match(metrics, /^meshlens_analyzer_flows_total\{observed="server",late="true"\} 1$/m);
    assert.match(metrics, /^meshlens_analyzer_unmatched_total\{reason="peer_missing"\} 4$/m);
    assert.match(metrics, /^meshlens_analyzer_unmatched_total\{reason="peer_not_instrumented"\} 2$/m);
    assert.match(metrics, /^meshlens_analyzer_insert_seconds_count\{table="tcp_flows"\} \d+$/m);
  });
});
