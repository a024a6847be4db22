// Migrations against the real ClickHouse engine: applied once, a second run is a no-op,
// rows with DateTime64, LowCardinality, Map and histogram arrays read back exactly, and 0008
// converts the histograms of rows stored before it without the rollups noticing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { clickhouseClient, loadMigrations, migrate, MIGRATIONS_DIR } from '@meshlens/schemas/clickhouse';
import { fromSamples, histogramQuantile, mergeHistograms, seededRandom, toBucketRun, type SparseHistogram } from '@meshlens/schemas';

const conn = connectionsFor(localInfraConfig());
const database = `meshlens_test_${randomUUID().replaceAll('-', '')}`;
const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword, database };
const upgraded = `${database}_upgrade`;
const together = `${database}_together`;
const takenOver = `${database}_taken_over`;

/** tcp_flows' columns for one side's histogram since migration 0008. */
const runColumns = (side: 'client' | 'server', h: SparseHistogram) => {
  const run = toBucketRun(h);
  return { [`${side}_rtt_first_bucket`]: run.first, [`${side}_rtt_bucket_counts`]: run.counts };
};

describe('ClickHouse migrations', () => {
  after(async () => {
    const ch = clickhouseClient({ ...target, database: 'default' });
    await ch.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    for (const db of [upgraded, together, takenOver]) await ch.command({ query: `DROP DATABASE IF EXISTS ${db}` });
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
      server_rtt_first_bucket: 0, server_rtt_bucket_counts: [], opened: true, closed: false,
    };
    await ch.insert({
      table: 'tcp_flows',
      format: 'JSONEachRow',
      values: [
        { ...base, slot_start: '2026-11-20 10:00:00.123', conn_key: 'k1', ...runColumns('client', h1), attrs: { pid: '42', cgroup: '/kubepods/x' } },
        { ...base, slot_start: '2026-11-20 10:00:10.000', conn_key: 'k2', ...runColumns('client', h2), attrs: {} },
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

  it('0008 turns stored histograms into runs: the old columns read the same, the views keep summing', async () => {
    const t = { ...target, database: upgraded };
    await migrate(t, MIGRATIONS_DIR, { before: 8 });
    const ch = clickhouseClient(t);
    const rnd = seededRandom(11);
    // Spread from one bucket to outliers 100x away, and empty sides (one-sided flows).
    const hist = (n: number, spread: number) => fromSamples(Array.from({ length: n }, () => 300 * spread ** rnd()));
    const sides = Array.from({ length: 60 }, (_, i) => ({ client: hist(i % 7 === 0 ? 0 : 1 + (i % 40), 1 + (i % 5) * 25), server: hist(i % 11, 2) }));
    const flow = (i: number, h: { client: SparseHistogram; server: SparseHistogram }, stored: (side: 'client' | 'server', h: SparseHistogram) => object) => ({
      slot_start: `2026-11-20 10:0${i % 3}:00.000`, slot_ms: 10000, observed: 'both', late: false, path: 'network',
      client_ip: '10.1.0.5', client_port: 40000 + i, server_ip: '10.1.0.9', server_port: 443, service_ip: '',
      client_namespace: 'shop', client_workload: 'web', server_namespace: 'shop', server_workload: 'db', server_service: 'db',
      ...stored('client', h.client), ...stored('server', h.server), opened: true, closed: false, attrs: {},
    });
    const sparseColumns = (side: 'client' | 'server', h: SparseHistogram) => ({ [`${side}_rtt_buckets`]: h.idx, [`${side}_rtt_counts`]: h.cnt });
    const rollup = async () =>
      (await (await ch.query({ query: 'SELECT sumMap(client_rtt) AS c, sumMap(server_rtt) AS s FROM flows_by_service_1m', format: 'JSONEachRow' })).json<{ c: [number[], string[]]; s: [number[], string[]] }>())[0]!;
    const asHist = (t: [number[], string[]]): SparseHistogram => ({ idx: t[0], cnt: t[1].map(Number) });
    try {
      await ch.insert({ table: 'tcp_flows', format: 'JSONEachRow', values: sides.slice(0, 30).map((h, i) => flow(i, h, sparseColumns)) });
      // Interrupted after its first statements, while an older analyzer still inserts the sparse
      // arrays; then run whole (those statements again).
      const m0008 = loadMigrations().find((m) => m.version === 8)!;
      for (const statement of m0008.statements.slice(0, -1)) await ch.command({ query: statement });
      await ch.insert({ table: 'tcp_flows', format: 'JSONEachRow', values: sides.slice(30, 40).map((h, i) => flow(30 + i, h, sparseColumns)) });
      const { applied } = await migrate(t);
      assert.deepEqual(applied, ['0008_dense_rtt_histograms.sql']);
      await ch.insert({ table: 'tcp_flows', format: 'JSONEachRow', values: sides.slice(40).map((h, i) => flow(40 + i, h, runColumns)) });

      const stored = await (
        await ch.query({ query: 'SELECT client_port, client_rtt_buckets, client_rtt_counts, server_rtt_buckets, server_rtt_counts FROM tcp_flows ORDER BY client_port', format: 'JSONEachRow' })
      ).json<{ client_port: number; client_rtt_buckets: number[]; client_rtt_counts: string[]; server_rtt_buckets: number[]; server_rtt_counts: string[] }>();
      assert.equal(stored.length, sides.length);
      for (const r of stored) {
        const want = sides[r.client_port - 40000]!;
        assert.deepEqual({ idx: r.client_rtt_buckets, cnt: r.client_rtt_counts.map(Number) }, want.client, `client side of row ${r.client_port}`);
        assert.deepEqual({ idx: r.server_rtt_buckets, cnt: r.server_rtt_counts.map(Number) }, want.server, `server side of row ${r.client_port}`);
      }
      // Rows from before and after the migration both reached the view, each once.
      const r = await rollup();
      assert.deepEqual(asHist(r.c), mergeHistograms(...sides.map((h) => h.client)));
      assert.deepEqual(asHist(r.s), mergeHistograms(...sides.map((h) => h.server)));
      // Nothing of the old form is stored any more: new parts hold only the runs.
      await ch.command({ query: 'OPTIMIZE TABLE tcp_flows FINAL' });
      const physical = await (
        await ch.query({ query: "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'tcp_flows' AND match(name, '^(client|server)_rtt_(buckets|counts|first_bucket|bucket_counts)$') AND default_kind = ''", format: 'JSONEachRow' })
      ).json<{ name: string }>();
      assert.deepEqual(physical.map((c) => c.name).sort(), ['client_rtt_bucket_counts', 'client_rtt_first_bucket', 'server_rtt_bucket_counts', 'server_rtt_first_bucket']);
    } finally {
      await ch.close();
    }
  });

  it('refuses a migration that was edited after it was applied', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlens-mig-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      appendFileSync(join(dir, '0001_raw_tables.sql'), '\n-- edited\n');
      await assert.rejects(migrate(target, dir), /0001_raw_tables\.sql changed after it was applied/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('migrators that start together take turns: every migration applied once, none fails', async () => {
    // The analyzers and the collector of one deployment all migrate as they start.
    const all = loadMigrations().map((m) => m.name);
    const t = { ...target, database: together };
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate(t)));
    assert.deepEqual(results.flatMap((r) => r.applied).sort(), all, 'each migration applied by exactly one migrator');
    for (const r of results) assert.deepEqual([...r.applied, ...r.alreadyApplied].sort(), all);
    const ch = clickhouseClient(t);
    try {
      const [row] = await (await ch.query({ query: 'SELECT count() AS n FROM schema_migrations', format: 'JSONEachRow' })).json<{ n: string }>();
      assert.equal(Number(row!.n), all.length, 'one row per migration, none recorded twice');
      assert.deepEqual(await lockTables(ch, together), [], 'the lock is released');
    } finally {
      await ch.close();
    }
  });

  it('a migrator that dies holding the lock is taken over once its heartbeat stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlens-mig-'));
    const staleMs = 2000;
    const t = { ...target, database: takenOver };
    const ch = clickhouseClient({ ...t, database: 'default' });
    writeFileSync(join(dir, '0001_first.sql'), 'CREATE TABLE IF NOT EXISTS first (x UInt8) ENGINE = Memory;\n');
    // Slow enough to be killed in the middle of; the CREATE without IF NOT EXISTS fails if run twice.
    writeFileSync(join(dir, '0002_slow.sql'), 'SELECT sleepEachRow(0.1) FROM numbers(30) SETTINGS max_block_size = 1;\nCREATE TABLE second (x UInt8) ENGINE = Memory;\n');
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./fixtures/migrate.ts', import.meta.url).pathname, t.url, t.database, dir, String(staleMs)], { stdio: 'inherit' });
    try {
      // Killed once it holds the lock and has recorded 0001, i.e. while it runs 0002.
      const recorded = async () =>
        (await lockTables(ch, takenOver)).length > 0 &&
        Number((await (await ch.query({ query: `SELECT count() AS n FROM ${takenOver}.schema_migrations WHERE version = 1`, format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n) === 1;
      for (const deadline = Date.now() + 30_000; !(await recorded().catch(() => false)); ) {
        assert.ok(Date.now() < deadline && child.exitCode === null, 'the child migrator took the lock and applied 0001');
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      await once(child, 'exit');

      const waited: string[] = [];
      const t0 = performance.now();
      const result = await migrate(t, dir, { lockStaleMs: staleMs, onLockWait: (h) => waited.push(h) });
      const elapsed = performance.now() - t0;
      assert.deepEqual(result, { applied: ['0002_slow.sql'], alreadyApplied: ['0001_first.sql'] });
      assert.equal(waited.length, 1);
      assert.match(waited[0]!, new RegExp(`:${child.pid}:`), 'it waited for the dead child, named as holder');
      assert.ok(elapsed >= staleMs, `took over only after ${staleMs} ms of silence (${elapsed.toFixed(0)} ms)`);
      const tables = await (await ch.query({ query: `SELECT name FROM system.tables WHERE database = '${takenOver}' AND name IN ('first', 'second')`, format: 'JSONEachRow' })).json<{ name: string }>();
      assert.equal(tables.length, 2);
      assert.deepEqual(await lockTables(ch, takenOver), [], 'the dead holder\'s lock is gone with the new one');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await ch.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function lockTables(ch: ReturnType<typeof clickhouseClient>, db: string): Promise<string[]> {
  const rows = await (
    await ch.query({ query: `SELECT name FROM system.tables WHERE database = '${db}' AND name LIKE 'schema\\_migrations\\_lock\\_%'`, format: 'JSONEachRow' })
  ).json<{ name: string }>();
  return rows.map((r) => r.name);
}
