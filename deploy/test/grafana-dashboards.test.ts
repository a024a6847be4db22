// The Grafana dashboards (deploy/grafana/*.json) are well-formed for the official ClickHouse
// datasource, and every panel's SQL and every variable's query runs against the real tables
// (all migrations applied to a fresh database of the embedded ClickHouse) with rows inserted
// through the same path the analyzer uses, so the rollup views fill as in production.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { clickhouseClient, migrate, SYNC_INSERT_SETTINGS } from '@meshlens/schemas/clickhouse';
import { grafanaInterpolate, type GrafanaContext } from './support/grafana.js';

const DIR = join(import.meta.dirname, '..', 'grafana');
const DATASOURCE = 'grafana-clickhouse-datasource';

interface Target { refId: string; datasource: { type: string; uid: string }; editorType: string; rawSql: string; format: number }
interface Panel { id: number; type: string; title: string; datasource: { type: string; uid: string }; gridPos: Record<string, number>; targets: Target[]; fieldConfig?: { overrides?: { matcher: { id: string; options: string } }[] } }
interface Variable { name: string; type: string; query: string; datasource?: { type: string }; allValue?: string }
interface Dashboard { uid: string; title: string; panels: Panel[]; templating: { list: Variable[] } }

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();
const dashboards = files.map((f) => ({ file: f, d: JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Dashboard }));

const conn = connectionsFor(localInfraConfig());
const database = `meshlens_grafana_${randomUUID().replaceAll('-', '')}`;
const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };
// Rows sit inside the last hour; the dashboards are queried over the last two.
const now = Date.now();
const range = { from: new Date(now - 2 * 3600_000), to: new Date(now + 60_000) };
const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString().replace('T', ' ').replace('Z', '');

async function seed(ch: ClickHouseClient): Promise<void> {
  const side = (p: 'client' | 'server', zone: string, workload: string) => ({
    [`${p}_node`]: `node-${zone}`, [`${p}_zone`]: zone, [`${p}_namespace`]: 'shop', [`${p}_workload`]: workload,
    [`${p}_service`]: p === 'server' ? workload : '', [`${p}_pod`]: `${workload}-0`, [`${p}_comm`]: workload,
  });
  const flow = (minutesAgo: number, client: [string, string], server: [string, string], retrans: number) => ({
    slot_start: at(minutesAgo), slot_ms: 10000, observed: 'both', late: false, path: 'network',
    client_ip: '10.0.1.5', client_port: 40000 + minutesAgo, server_ip: '10.0.2.7', server_port: 8080, service_ip: '10.96.0.20',
    ...side('client', client[0], client[1]), ...side('server', server[0], server[1]),
    bytes_c2s: 5000, bytes_s2c: 90000, segs_c2s: 40, segs_s2c: 80, client_retrans: retrans, server_retrans: 1, client_rto: 0, server_rto: 0,
    resets_by_client: 0, resets_by_server: 0, client_srtt_us: 900, server_srtt_us: 950, client_min_rtt_us: 400, server_min_rtt_us: 420,
    client_rtt_first_bucket: 40, client_rtt_bucket_counts: [3, 2], server_rtt_first_bucket: 41, server_rtt_bucket_counts: [4], opened: true, closed: false, attrs: {},
  });
  const flows = [5, 15, 25, 35].flatMap((m) => [flow(m, ['zone-a', 'web'], ['zone-b', 'cart'], 3), flow(m, ['zone-a', 'cart'], ['zone-a', 'db'], 0)]);
  const event = (minutesAgo: number, kind: string) => ({
    ts: at(minutesAgo), kind, errno: kind === 'connect_failed' ? 111 : null, errno_class: kind === 'connect_failed' ? 'refused' : null, syn_retrans: 0,
    role: 'client', local_ip: '10.0.1.5', local_port: 41000, remote_ip: '10.0.2.9', remote_port: 9090, service_ip: '',
    node: 'node-zone-a', zone: 'zone-a', namespace: 'shop', workload: 'web', pod: 'web-0', comm: 'web',
    remote_node: 'node-zone-b', remote_zone: 'zone-b', remote_namespace: 'shop', remote_workload: 'payments', remote_service: 'payments',
  });
  const query = (minutesAgo: number, qname: string, rcode: string, latencyUs: number | null) => ({
    ts: at(minutesAgo), client_ip: '10.0.1.5', client_port: 53000, server_ip: '10.96.0.10', server_port: 53, transport: 'udp', qname, qtype: 'A',
    rcode, latency_us: latencyUs, latency_bucket: latencyUs === null ? 0 : 60, answers: rcode === 'NOERROR' ? ['10.0.2.7'] : [], ttl_min_s: rcode === 'NOERROR' ? 30 : null,
    node: 'node-zone-a', zone: 'zone-a', namespace: 'shop', workload: 'web', pod: 'web-0', comm: 'web', server_name: 'kube-system/coredns',
  });
  await ch.insert({ table: 'tcp_flows', format: 'JSONEachRow', values: flows, clickhouse_settings: SYNC_INSERT_SETTINGS });
  await ch.insert({ table: 'tcp_events', format: 'JSONEachRow', values: [event(10, 'connect_failed'), event(20, 'reset')], clickhouse_settings: SYNC_INSERT_SETTINGS });
  await ch.insert({
    table: 'dns_queries', format: 'JSONEachRow', clickhouse_settings: SYNC_INSERT_SETTINGS,
    values: [query(10, 'cart.shop.svc.cluster.local.', 'NOERROR', 800), query(12, 'cart.shop.svc.cluster.local.', 'NOERROR', 2500), query(14, 'cart.example.shop.svc.cluster.local.', 'NXDOMAIN', 900), query(16, 'slow.example.', 'TIMEOUT', null)],
  });
}

interface Result { meta: { name: string; type: string }[]; rows: number; data: unknown[][] }

describe('Grafana dashboards', () => {
  let ch: ClickHouseClient;
  const run = async (sql: string): Promise<Result> => {
    const rs = await ch.query({ query: sql, format: 'JSONCompact' });
    return (await rs.json()) as unknown as Result;
  };

  before(async () => {
    await migrate(target);
    ch = clickhouseClient(target);
    await seed(ch);
  });
  after(async () => {
    await ch?.close();
    const admin = clickhouseClient({ ...target, database: 'default' });
    await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await admin.close();
  });

  it('finds the dashboards', () => {
    assert.ok(files.length >= 2, `dashboards in ${DIR}: ${files.join(', ')}`);
  });

  it('are well-formed dashboards for the ClickHouse datasource', () => {
    const uids = new Set<string>();
    for (const { file, d } of dashboards) {
      assert.ok(d.uid && !uids.has(d.uid), `${file}: missing or duplicate uid`);
      uids.add(d.uid);
      assert.ok(d.title, `${file}: no title`);
      const dsVar = d.templating.list.find((v) => v.type === 'datasource');
      assert.equal(dsVar?.query, DATASOURCE, `${file}: needs a datasource variable of type ${DATASOURCE}`);
      const ids = new Set<number>();
      assert.ok(d.panels.length > 0, `${file}: no panels`);
      for (const p of d.panels) {
        const where = `${file} panel "${p.title}"`;
        assert.ok(Number.isInteger(p.id) && !ids.has(p.id), `${where}: missing or duplicate id`);
        ids.add(p.id);
        for (const k of ['x', 'y', 'w', 'h']) assert.ok(Number.isInteger(p.gridPos[k]), `${where}: gridPos.${k}`);
        assert.ok(p.gridPos.x! + p.gridPos.w! <= 24, `${where}: wider than the grid`);
        assert.equal(p.datasource.type, DATASOURCE, where);
        assert.ok(p.targets.length > 0, `${where}: no queries`);
        assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${where}: duplicate refId`);
        for (const t of p.targets) {
          assert.equal(t.datasource.type, DATASOURCE, where);
          assert.equal(t.editorType, 'sql', where);
          assert.ok(t.rawSql.trim().length > 0, `${where}: empty SQL`);
          // The plugin's formats: 0 time series, 1 table.
          assert.ok(t.format === 0 || t.format === 1, `${where}: format ${t.format}`);
          assert.equal(t.format === 0, p.type === 'timeseries', `${where}: time series panels need format 0, others table`);
        }
      }
    }
  });

  for (const { file, d } of dashboards) {
    describe(file, () => {
      const ctx = (namespace: string): GrafanaContext => ({ ...range, intervalS: 60, variables: { namespace } });

      for (const v of d.templating.list.filter((x) => x.type === 'query')) {
        it(`variable $${v.name} lists values`, async () => {
          const r = await run(grafanaInterpolate(v.query, ctx(v.allValue ?? '')));
          assert.equal(r.meta.length, 1, 'a variable query returns one column');
          assert.deepEqual(r.data.map((row) => row[0]), ['shop']);
        });
      }

      for (const p of d.panels) {
        // All namespaces, then the one namespace the data is in: both must return rows.
        for (const namespace of ['__all', 'shop']) {
          it(`"${p.title}" (namespace ${namespace}) runs and returns the columns the panel uses`, async () => {
            const results = new Map<string, Result>();
            for (const t of p.targets) {
              const r = await run(grafanaInterpolate(t.rawSql, ctx(namespace)));
              assert.ok(r.rows > 0, `refId ${t.refId} returned no rows`);
              results.set(t.refId, r);
              const cols = r.meta.map((m) => m.name);
              if (p.type === 'timeseries') {
                assert.equal(cols[0], 'time', `refId ${t.refId}: the first column of a time series is its time`);
                assert.match(r.meta[0]!.type, /^DateTime/);
                assert.ok(r.meta.slice(1).some((m) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(m.type)), `refId ${t.refId}: no numeric column in ${cols.join(', ')}`);
              }
            }
            if (p.type === 'nodeGraph') {
              // Grafana's node graph reads a nodes frame (id, title) and an edges frame (id, source, target).
              const names = (refId: string) => results.get(refId)?.meta.map((m) => m.name) ?? [];
              for (const c of ['id', 'title', 'mainstat']) assert.ok(names('nodes').includes(c), `nodes frame lacks ${c}`);
              for (const c of ['id', 'source', 'target', 'mainstat']) assert.ok(names('edges').includes(c), `edges frame lacks ${c}`);
              const nodes = new Set(results.get('nodes')!.data.map((row) => row[0]));
              const edges = results.get('edges')!;
              const [src, dst] = ['source', 'target'].map((c) => edges.meta.findIndex((m) => m.name === c));
              for (const e of edges.data) assert.ok(nodes.has(e[src!]) && nodes.has(e[dst!]), `edge ${String(e[0])} names a node that is not in the nodes frame`);
            }
            // Every column the panel's field overrides refer to must exist.
            const returned = new Set([...results.values()].flatMap((r) => r.meta.map((m) => m.name)));
            for (const o of p.fieldConfig?.overrides ?? []) {
              if (o.matcher.id === 'byName') assert.ok(returned.has(o.matcher.options), `override for missing column ${o.matcher.options}`);
            }
          });
        }
        it(`"${p.title}" applies the namespace variable (a namespace without data returns nothing)`, async () => {
          for (const t of p.targets) {
            const r = await run(grafanaInterpolate(t.rawSql, ctx('no-such-namespace')));
            assert.equal(r.rows, 0, `refId ${t.refId}`);
          }
        });
      }
    });
  }
});
