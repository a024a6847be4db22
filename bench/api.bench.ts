/**
 * API latency over 50 million flow rows (issue 7): p50/p95 of every endpoint through the real
 * fastify API (HTTP on an ephemeral port), against the embedded ClickHouse.
 *
 *   node --import tsx bench/api.bench.ts
 *
 * Needs the embedded infrastructure up (`pnpm meshlens infra up`; use your own
 * MESHLENS_STATE_DIR and ports). The data is generated inside ClickHouse
 * (`INSERT INTO tcp_flows SELECT ... FROM numbers(...)`) so the materialized views fill the
 * rollups exactly as the analyzer's inserts do; the database is kept and reused while it holds
 * FLOWS rows (FILL=1 rebuilds it). Query windows are anchored at the end of the data, not at
 * the clock, so a reused database is measured the same way.
 *
 * The cluster: 3 zones x 4 nodes, 40 services in 4 namespaces with 2..6 pods each, 120 service
 * pairs with a skewed popularity, 24 h of 10 s slots; the last 15 minutes carry an incident
 * (zone-a -> zone-c RTT x4) so triage has something to find. Env: FLOWS (default 50e6),
 * REQUESTS per endpoint and window (default 30, after WARMUP=5), BUDGET_S, DATABASE, ONLY.
 *
 * Each endpoint and window is asked of two APIs side by side: `before` reads the minute
 * rollups only with projections off and without 0007's rollups (the API before migrations
 * 0005..0007, but with today's default edges step), `after` is the API as it is. 0007's
 * rollups start at their migration; on a database filled before it the bench fills them
 * from the raw rows once (backfillCovered below). Wall time per request and CPU per request (the ClickHouse process from /proc
 * plus this process) are reported; CPU is the figure to trust on a shared machine. The
 * per-second tier keeps 3 hours, so its short windows are only measured on data filled less
 * than 2 hours ago (the output says so otherwise).
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { connectionsFor, localInfraConfig, readInfraState } from '@meshlens/deploy/local';
import { buildApi } from '@meshlens/analyzer';
import { FINE_KEPT_MS } from '../analyzer/src/api/tiers.js';
import { createClient } from '@clickhouse/client';
import { clickhouseClient, migrate, SYNC_INSERT_SETTINGS } from '@meshlens/schemas/clickhouse';

const FLOWS = Number(process.env.FLOWS ?? 50_000_000);
const REQUESTS = Number(process.env.REQUESTS ?? 30);
const WARMUP = Number(process.env.WARMUP ?? 5);
const DATABASE = process.env.DATABASE ?? 'meshlens_bench_api';
const SPAN_S = 86_400;
const SLOT_S = 10;
const CHUNK = 5_000_000;
const SERVICES = 40;
const PAIRS = 120;
const NODES = 12;

const conn = connectionsFor(localInfraConfig());
const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database: DATABASE };
await migrate(target);
const ch = clickhouseClient(target);
// Long INSERT ... SELECTs: the client's default 30 s socket timeout is for interactive queries.
const bulk = createClient({ url: target.url, username: target.username, password: target.password, database: DATABASE, request_timeout: 3_600_000, clickhouse_settings: SYNC_INSERT_SETTINGS });

async function scalar(query: string): Promise<number> {
  const rows = await (await ch.query({ query, format: 'JSONEachRow' })).json<{ v: string | number }>();
  return Number(rows[0]!.v);
}

/** Per flow row: a skewed service pair, a pod of each side, nodes/zones from the pod, RTT by zone distance. */
const FLOW_SOURCE = (t0: number, perSlot: number, from: number, count: number) => `
  SELECT *,
    concat('zone-', ['a', 'b', 'c'][intDiv(cnode, 4) + 1]) AS czone, concat('zone-', ['a', 'b', 'c'][intDiv(snode, 4) + 1]) AS szone,
    multiIf(cnode = snode, 60, intDiv(cnode, 4) = intDiv(snode, 4), 150, [[0, 900, 1500], [900, 0, 700], [1500, 700, 0]][intDiv(cnode, 4) + 1][intDiv(snode, 4) + 1])
      * if(slot >= ${t0 + SPAN_S - 900} AND intDiv(cnode, 4) = 0 AND intDiv(snode, 4) = 2, 4, 1) * (0.8 + (bitShiftRight(h, 36) % 400) / 1000) AS rtt,
    toUInt32(greatest(rtt, 1)) AS v, toInt32(floor(log2(v))) AS ex,
    toUInt16(if(v < 16, v, (ex - 4) * 16 + bitShiftRight(v, ex - 4))) AS b0,
    1 + bitShiftRight(h, 40) % 4 AS w
  FROM (
    SELECT *, (cs * 3 + cp * 5) % ${NODES} AS cnode, (ss * 3 + sp * 5) % ${NODES} AS snode
    FROM (
      SELECT *, e % ${SERVICES} AS cs, (cs + 1 + intDiv(e, ${SERVICES}) * 7) % ${SERVICES} AS ss,
        bitShiftRight(h, 20) % (2 + cs % 5) AS cp, bitShiftRight(h, 28) % (2 + ss % 5) AS sp
      FROM (
        SELECT number AS n, cityHash64(number) AS h, toUInt32(pow((h % 1000000) / 1e6, 2) * ${PAIRS}) AS e,
          ${t0} + intDiv(n, ${perSlot}) * ${SLOT_S} AS slot
        FROM numbers(${from}, ${count}))))`;

const svc = (x: string) => `concat('svc-', toString(${x}))`;
const ns = (x: string) => `concat('ns', toString(${x} % 4))`;
const pod = (s: string, p: string) => `concat('svc-', toString(${s}), '-', toString(${p}))`;
const ip = (s: string, p: string) => `concat('10.', toString(${s}), '.', toString(${p}), '.1')`;

// The three views of one insert run side by side: a fill is the only load, the analyzer's are small.
const FILL_SETTINGS = { max_execution_time: 0, async_insert: 0, parallel_view_processing: 1, max_insert_threads: '2' } as const;

async function fill(): Promise<void> {
  const rollups = ['flows_by_service', 'flows_by_zone', 'flows_by_node', 'dns_by_server', 'flows_by_edge', 'dns_by_name'].flatMap((r) => ['1s', '1m', '1h'].map((t) => `${r}_${t}`));
  for (const t of ['tcp_flows', 'tcp_events', 'dns_queries', ...rollups]) await ch.command({ query: `TRUNCATE TABLE IF EXISTS ${t}` });
  // 0007's rollups cover from their views' start again: backfillCovered fills what lies before it.
  await ch.command({ query: `INSERT INTO rollup_coverage (rollup, view_from, covered_from) SELECT rollup, view_from, view_from FROM rollup_coverage FINAL` });
  const t0 = Math.floor(Date.now() / 1000 / 60) * 60 - SPAN_S;
  const perSlot = Math.ceil(FLOWS / (SPAN_S / SLOT_S));
  const started = performance.now();
  for (let from = 0; from < FLOWS; from += CHUNK) {
    const count = Math.min(CHUNK, FLOWS - from);
    await bulk.command({
      query: `INSERT INTO tcp_flows (slot_start, slot_ms, observed, late, path, client_ip, client_port, server_ip, server_port, service_ip,
          client_node, client_zone, client_namespace, client_workload, client_service, client_pod, client_comm,
          server_node, server_zone, server_namespace, server_workload, server_service, server_pod, server_comm,
          bytes_c2s, bytes_s2c, segs_c2s, segs_s2c, client_retrans, server_retrans, client_rto, server_rto, resets_by_client, resets_by_server,
          client_srtt_us, server_srtt_us, client_min_rtt_us, server_min_rtt_us,
          client_rtt_first_bucket, client_rtt_bucket_counts, server_rtt_first_bucket, server_rtt_bucket_counts, opened, closed, attrs)
        SELECT toDateTime64(slot, 3, 'UTC'), ${SLOT_S * 1000}, 'both', false, if(cnode = snode, 'same_node', 'network'),
          ${ip('cs', 'cp')}, toUInt16(32768 + h % 28000), ${ip('ss', 'sp')}, 8080, '',
          concat('node-', toString(cnode)), czone, ${ns('cs')}, ${svc('cs')}, ${svc('cs')}, ${pod('cs', 'cp')}, 'app',
          concat('node-', toString(snode)), szone, ${ns('ss')}, ${svc('ss')}, ${svc('ss')}, ${pod('ss', 'sp')}, 'app',
          200 + h % 20000, 1000 + bitShiftRight(h, 8) % 200000, 10 + h % 500, 10 + bitShiftRight(h, 12) % 500,
          if(h % 50 = 0, 3, 0), 0, 0, 0, 0, if(h % 500 = 0, 1, 0),
          v, v, v, v,
          toUInt16(b0), arrayMap(i -> toUInt32(1 + bitShiftRight(h, 44 + i * 3) % 6), range(w)),
          0, [], true, h % 3 = 0, map()
        FROM (${FLOW_SOURCE(t0, perSlot, from, count)})`,
      clickhouse_settings: FILL_SETTINGS,
    });
    process.stderr.write(`tcp_flows: ${from + count} rows, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
  // Connect failures (a background rate, one refusing node in the incident) and DNS at a realistic ratio to flows.
  await bulk.command({
    query: `INSERT INTO tcp_events (ts, kind, errno, errno_class, syn_retrans, role, local_ip, local_port, remote_ip, remote_port, service_ip,
        node, zone, namespace, workload, pod, comm, remote_node, remote_zone, remote_namespace, remote_workload, remote_service)
      SELECT toDateTime64(slot + n % ${SLOT_S}, 3, 'UTC'), 'connect_failed', 111, 'refused', 0, 'client', ${ip('cs', 'cp')}, 40000, ${ip('ss', 'sp')}, 8080, '',
        concat('node-', toString(cnode)), czone, ${ns('cs')}, ${svc('cs')}, ${pod('cs', 'cp')}, 'app',
        concat('node-', toString(snode)), szone, ${ns('ss')}, ${svc('ss')}, ${svc('ss')}
      FROM (${FLOW_SOURCE(t0, perSlot, 0, FLOWS)})
      WHERE h % 1000 = 7 OR (slot >= ${t0 + SPAN_S - 900} AND snode = 5 AND h % 10 = 0)`,
    clickhouse_settings: FILL_SETTINGS,
  });
  const dns = Math.round(FLOWS / 10);
  await bulk.command({
    query: `INSERT INTO dns_queries (ts, client_ip, client_port, server_ip, server_port, transport, qname, qtype, rcode, latency_us, latency_bucket, answers, ttl_min_s,
        node, zone, namespace, workload, pod, comm, server_name)
      SELECT toDateTime64(${t0} + n * ${SPAN_S} / ${dns}, 3, 'UTC'), ${ip('cs', 'cp')}, 50000, concat('10.9.0.', toString(intDiv(cnode, 4) + 1)), 53, 'udp',
        concat('svc-', toString(h % 200), '.', ${ns('h')}, '.svc.cluster.local'), 'A',
        multiIf(h % 100 < 2, 'NXDOMAIN', h % 1000 < 23, 'SERVFAIL', 'NOERROR'), toUInt32(300 + h % 700),
        toUInt16((toInt32(floor(log2(300 + h % 700))) - 4) * 16 + bitShiftRight(toUInt32(300 + h % 700), toInt32(floor(log2(300 + h % 700))) - 4)), [], 30,
        concat('node-', toString(cnode)), czone, ${ns('cs')}, ${svc('cs')}, ${pod('cs', 'cp')}, 'app', concat('coredns-', czone)
      FROM (${FLOW_SOURCE(t0, Math.ceil(dns / (SPAN_S / SLOT_S)), 0, dns)})`,
    clickhouse_settings: FILL_SETTINGS,
  });
  process.stderr.write(`filled in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

if (process.env.FILL === '1' || (await scalar('SELECT count() AS v FROM tcp_flows')) < FLOWS) await fill();
// Projections and other mutations from the migrations build in the background; measure what they give, not a half-built state.
while ((await scalar(`SELECT count() AS v FROM system.mutations WHERE database = currentDatabase() AND NOT is_done`)) > 0) await delay(2000);
/**
 * Migration 0007's rollups hold rows from their views' start on, and the API reads raw rows
 * before it (analyzer/src/api/coverage.ts). Nothing else inserts here, so each such view's own
 * SELECT, with its start condition turned around, gives exactly the rows it left out; then the
 * rollup covers all time. Its hourly table follows through its view from the minute table.
 */
async function backfillCovered(): Promise<void> {
  const START = '>= (SELECT min(view_from)';
  const pending = await (await ch.query({ query: `SELECT rollup FROM rollup_coverage FINAL WHERE covered_from > 0`, format: 'JSONEachRow' })).json<{ rollup: string }>();
  for (const { rollup } of pending) {
    const views = await (
      await ch.query({
        query: `SELECT as_select, create_table_query FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView' AND position(as_select, {cond:String}) > 0`,
        query_params: { cond: `${START} FROM ${DATABASE}.rollup_coverage WHERE rollup = '${rollup}')` },
        format: 'JSONEachRow',
      })
    ).json<{ as_select: string; create_table_query: string }>();
    if (views.length === 0) throw new Error(`no view starts at rollup_coverage '${rollup}'`);
    const started = performance.now();
    for (const v of views) {
      const to = / TO (\S+)/.exec(v.create_table_query)![1];
      await bulk.command({ query: `INSERT INTO ${to} ${v.as_select.replace(START, '< (SELECT min(view_from)')}`, clickhouse_settings: FILL_SETTINGS });
    }
    await bulk.command({ query: `INSERT INTO rollup_coverage (rollup, view_from, covered_from) SELECT rollup, view_from, toDateTime(0) FROM rollup_coverage FINAL WHERE rollup = {r:String}`, query_params: { r: rollup } });
    process.stderr.write(`backfilled ${rollup} (${views.length} views) in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
}
await backfillCovered();
const end = (await scalar(`SELECT toUnixTimestamp(max(slot_start)) + ${SLOT_S} AS v FROM tcp_flows`)) * 1000;
if (end < Date.now() - FINE_KEPT_MS) process.stderr.write('the data is older than the per-second tier keeps: 30 s windows read minutes; refill with FILL=1\n');
const parts = await (await ch.query({ query: `SELECT table, count() AS parts, sum(rows) AS rows FROM system.parts WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table`, format: 'JSONEachRow' })).json<{ table: string; parts: number; rows: number }>();

// Same-run baseline: the API as it was before the tiers and projections (minute rollups only,
// projections switched off for its connection), interleaved request by request with the current one.
const noProjections = createClient({ url: target.url, username: target.username, password: target.password, database: DATABASE, clickhouse_settings: { ...SYNC_INSERT_SETTINGS, optimize_use_projections: 0 } });
const token = `bench-${randomUUID()}`;
const variants = { before: await buildApi({ ch: noProjections, tokens: [token], tiers: ['1m'], coveredRollups: false }), after: await buildApi({ ch, tokens: [token] }) };
const bases = { before: await variants.before.listen({ host: '127.0.0.1', port: 0 }), after: await variants.after.listen({ host: '127.0.0.1', port: 0 }) };
type Variant = keyof typeof variants;

/** CPU time of the ClickHouse process (it serves only this bench while it runs), from /proc, in ms. */
const chPid = readInfraState(localInfraConfig()).clickhouse?.pid ?? null;
function chCpuMs(): number {
  if (chPid === null) return NaN;
  const fields = readFileSync(`/proc/${chPid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

const iso = (ms: number) => new Date(ms).toISOString();
const WINDOWS = { '30s': 30_000, '15m': 15 * 60_000, '1h': 3_600_000, '24h': SPAN_S * 1000 } as const;
type WindowName = keyof typeof WINDOWS;
/** Drill-down and matrix share the 100 ms target; triage has 300 ms. */
const ENDPOINTS: { name: string; path: string; target: number; windows: WindowName[] }[] = [
  { name: 'services', path: '/api/v1/services', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'peers', path: '/api/v1/services/ns0/svc-0/peers', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'edges by zone', path: '/api/v1/edges?src=ns0/svc-0&dst=ns1/svc-1&by=zone', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'edges by node', path: '/api/v1/edges?src=ns0/svc-0&dst=ns1/svc-1&by=node', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'edges by pod', path: '/api/v1/edges?src=ns0/svc-0&dst=ns1/svc-1&by=pod', target: 100, windows: ['15m', '1h', '24h'] },
  // An explicit 1-minute step over a day: 1,440 points per group, no hourly tier.
  { name: 'edges by zone, step 1m', path: '/api/v1/edges?src=ns0/svc-0&dst=ns1/svc-1&by=zone&step_ms=60000', target: 100, windows: ['24h'] },
  { name: 'edges by node, step 1m', path: '/api/v1/edges?src=ns0/svc-0&dst=ns1/svc-1&by=node&step_ms=60000', target: 100, windows: ['24h'] },
  { name: 'edges by pod, step 1m', path: '/api/v1/edges?src=ns0/svc-0&dst=ns1/svc-1&by=pod&step_ms=60000', target: 100, windows: ['24h'] },
  { name: 'matrix', path: '/api/v1/zones/matrix?metric=rtt_p50', target: 100, windows: ['30s', '15m', '1h', '24h'] },
  { name: 'rankings from zone', path: '/api/v1/rankings?from_zone=zone-a', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'rankings from service', path: '/api/v1/rankings?from_service=ns0/svc-0', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'dns by server', path: '/api/v1/dns?by=server', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'dns by client', path: '/api/v1/dns?by=client', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'dns by name', path: '/api/v1/dns?by=name', target: 100, windows: ['15m', '1h', '24h'] },
  { name: 'triage', path: '/api/v1/triage?zone=zone-a', target: 300, windows: ['30s', '15m', '1h', '24h'] },
];

interface Sample { ms: number; chCpuMs: number; apiCpuMs: number }
async function timed(url: string): Promise<Sample> {
  const cpu = process.cpuUsage();
  const ch0 = chCpuMs();
  const t = performance.now();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.text();
  const ms = performance.now() - t;
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${body.slice(0, 300)}`);
  const used = process.cpuUsage(cpu);
  return { ms, chCpuMs: chCpuMs() - ch0, apiCpuMs: (used.user + used.system) / 1000 };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

// ONLY (a regular expression over endpoint names) measures a subset, e.g. after changing one endpoint.
const only = new RegExp(process.env.ONLY ?? '');
const cells = ENDPOINTS.filter((e) => only.test(e.name)).flatMap((e) =>
  e.windows.flatMap((w) =>
    (['before', 'after'] as Variant[]).map((v) => ({ e, w, v, url: `${bases[v]}${e.path}${e.path.includes('?') ? '&' : '?'}from=${iso(end - WINDOWS[w])}&to=${iso(end)}`, samples: [] as Sample[] })),
  ),
);
for (const c of cells) for (let i = 0; i < WARMUP; i++) await timed(c.url);
// Round-robin over all cells, before and after side by side, so load from other processes spreads over all of them.
// BUDGET_S bounds the measuring time on a slow shared machine; the output says how many rounds ran.
const deadline = performance.now() + Number(process.env.BUDGET_S ?? Infinity) * 1000;
let rounds = 0;
for (let i = 0; i < REQUESTS && performance.now() < deadline; i++, rounds++) {
  for (const c of cells) c.samples.push(await timed(c.url));
  process.stderr.write(`round ${i + 1}/${REQUESTS}\n`);
}
await variants.before.close();
await variants.after.close();
await noProjections.close();
await ch.close();
await bulk.close();

const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${new Date().toISOString()}; load average at the end ${load}`);
console.log(`data: ${parts.map((p) => `${p.table} ${Number(p.rows).toLocaleString('en')} rows/${p.parts} parts`).join(', ')}`);
console.log(`requests: ${WARMUP} warm-up + ${rounds} measured per cell, round-robin over all cells, before/after interleaved`);
console.log('\n| endpoint | window | before p50 / p95 ms | after p50 / p95 ms | before CPU ms/req | after CPU ms/req | target p95 | after met |\n|---|---|---:|---:|---:|---:|---:|---|');
const f = (x: number) => x.toFixed(0);
for (let i = 0; i < cells.length; i += 2) {
  const [b, a] = [cells[i]!, cells[i + 1]!];
  const cpu = (c: typeof b) => mean(c.samples.map((s) => s.chCpuMs + s.apiCpuMs));
  const p95 = pct(a.samples.map((s) => s.ms), 0.95);
  console.log(
    `| ${a.e.name} | ${a.w} | ${f(pct(b.samples.map((s) => s.ms), 0.5))} / ${f(pct(b.samples.map((s) => s.ms), 0.95))} | ${f(pct(a.samples.map((s) => s.ms), 0.5))} / ${f(p95)} | ${f(cpu(b))} | ${f(cpu(a))} | ${a.e.target} | ${p95 <= a.e.target ? 'yes' : '**no**'} |`,
  );
}
