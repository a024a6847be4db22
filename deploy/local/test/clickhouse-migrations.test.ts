// Migrations against the real ClickHouse engine: applied once, a second run is a no-op,
// and rows with DateTime64, LowCardinality, Map and histogram arrays read back exactly.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { clickhouseClient, loadMigrations, migrate } from '@meshlens/schemas/clickhouse';
import { fromSamples, histogramQuantile, mergeHistograms } from '@meshlens/schemas';

const conn = connectionsFor(localInfraConfig());
const database = `meshlens_test_${randomUUID().replaceAll('-', '')}`;
const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };

describe('ClickHouse migrations', () => {
  after(async () => {
    const ch = clickhouseClient({ ...target, database: 'default' });
    await ch.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await ch.close();
  });

  it('applies every migration once; a second run applies nothing', async () => {
    const all = loadMigrations().map((m) => m.name);
    assert.ok(all.length >= 2);
    const first = await migrate(target);
    assert.deepEqual(first, { applied: all, alreadyApplied: [] });
    const second = await migrate(target);
    assert.deepEqual(second, { applied: [], alreadyApplied: all });
  });

  it('stores and reads back DateTime64, LowCardinality, Map and histogram arrays', async () => {
    const ch = clickhouseClient(target);
    const h1 = fromSamples([120, 130, 5000, 5100, 5200]);
    const h2 = fromSamples([125, 5050]);
    const base = {
      slot_ms: 10000, matched: true, late: false, path: 'network',
      client_ip: '10.1.0.5', client_port: 40000, server_ip: 'fd00::7', server_port: 443, service_ip: '10.96.0.20',
      client_node: 'n1', client_zone: 'zone-a', client_namespace: 'shop', client_workload: 'web', client_pod: 'web-1', client_comm: 'node',
      server_node: 'n2', server_zone: 'zone-b', server_namespace: 'shop', server_workload: 'db', server_service: 'db', server_pod: 'db-0', server_comm: 'postgres',
      bytes_c2s: 1000, bytes_s2c: 2000, segs_c2s: 10, segs_s2c: 20, client_retrans: 1, server_retrans: 0, client_rto: 0, server_rto: 0,
      resets_by_client: 0, resets_by_server: 0, client_srtt_us: 130, server_srtt_us: 140,
      server_rtt_buckets: [], server_rtt_counts: [], opened: true, closed: false,
    };
    await ch.insert({
      table: 'tcp_flows',
      format: 'JSONEachRow',
      values: [
        { ...base, slot_start: '2026-11-20 10:00:00.123', conn_key: 'k1', client_rtt_buckets: h1.idx, client_rtt_counts: h1.cnt, attrs: { pid: '42', cgroup: '/kubepods/x' } },
        { ...base, slot_start: '2026-11-20 10:00:10.000', conn_key: 'k2', client_rtt_buckets: h2.idx, client_rtt_counts: h2.cnt, attrs: {} },
      ],
    });
    const rows = await (
      await ch.query({
        query: `SELECT conn_key, toString(slot_start) AS ts, toTypeName(client_zone) AS zone_type, client_zone,
                       attrs, client_rtt_buckets, client_rtt_counts
                FROM tcp_flows ORDER BY conn_key`,
        format: 'JSONEachRow',
      })
    ).json<Record<string, unknown>>();
    assert.deepEqual(rows.map((r) => r.ts), ['2026-11-20 10:00:00.123', '2026-11-20 10:00:10.000']);
    assert.equal(rows[0]!.zone_type, 'LowCardinality(String)');
    assert.equal(rows[0]!.client_zone, 'zone-a');
    assert.deepEqual(rows[0]!.attrs, { pid: '42', cgroup: '/kubepods/x' });
    assert.deepEqual(rows[0]!.client_rtt_buckets, h1.idx);
    assert.deepEqual((rows[0]!.client_rtt_counts as string[]).map(Number), h1.cnt);

    // Histograms add in SQL exactly as they do in TS, so rollups keep bucket precision.
    const [summed] = await (
      await ch.query({
        query: 'SELECT sumMap(client_rtt_buckets, client_rtt_counts) AS h FROM tcp_flows',
        format: 'JSONEachRow',
      })
    ).json<{ h: [number[], string[]] }>();
    const inSql = { idx: summed!.h[0], cnt: summed!.h[1].map(Number) };
    const inTs = mergeHistograms(h1, h2);
    assert.deepEqual(inSql, inTs);
    assert.equal(histogramQuantile(inSql, 0.5), histogramQuantile(inTs, 0.5));
    await ch.close();
  });

  it('refuses a migration that was edited after it was applied', async () => {
    const { mkdtempSync, cpSync, appendFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { MIGRATIONS_DIR } = await import('@meshlens/schemas/clickhouse');
    const dir = mkdtempSync(join(tmpdir(), 'meshlens-mig-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      appendFileSync(join(dir, '0001_raw_tables.sql'), '\n-- edited\n');
      await assert.rejects(migrate(target, dir), /0001_raw_tables\.sql changed after it was applied/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
