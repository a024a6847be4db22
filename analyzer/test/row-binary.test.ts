// RowBinary inserts judged by ClickHouse itself: rows of every column type the tables use
// (and the edge cases of each encoding) go in through the sink and must read back unchanged.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { toBucketRun, type TcpRecord } from '@meshlens/schemas';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import { ClickHouseSink, createMetrics, DnsNames, Enricher, FlowRows, HeldSide, MetadataIndex, type FlowGroup } from '../src/index.js';
import { BufferPool, ByteWriter, columnWriter, SparseRun, type ColumnWriter } from '../src/row-binary.js';
import { T0, connection } from './harness.js';

const hooks = { beforeRetry: async () => {}, onStall: () => {} };

/** Rows through the sink as the analyzer sends them: encoded one by one into a batch, then inserted. */
async function insert(sink: ClickHouseSink, table: string, rows: Record<string, unknown>[], token: string): Promise<void> {
  const batch = sink.batch(table);
  for (const r of rows) batch.add(r);
  await sink.insert(batch, token, hooks);
}

describe('RowBinary inserts', () => {
  const database = `meshlens_test_${randomUUID().replaceAll('-', '')}`;
  let admin: ClickHouseClient;
  let ch: ClickHouseClient;
  let sink: ClickHouseSink;

  before(async () => {
    const conn = connectionsFor(localInfraConfig());
    const target = { url: conn.clickhouseUrl, username: conn.clickhouseUser, password: conn.clickhousePassword };
    admin = clickhouseClient({ ...target, database: 'default' });
    await admin.command({ query: `CREATE DATABASE ${database}` });
    ch = clickhouseClient({ ...target, database });
    await ch.command({
      query: `CREATE TABLE t (
        ts DateTime64(3, 'UTC'), minute DateTime('UTC'), u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64, flag Bool,
        kind Enum8('client' = 1, 'server' = 2, 'it''s' = -3), label LowCardinality(String), text String,
        maybe Nullable(UInt32), maybe_label LowCardinality(Nullable(String)), buckets Array(UInt16), counts Array(UInt32),
        names Array(String), attrs Map(LowCardinality(String), String)
      ) ENGINE = MergeTree ORDER BY ts SETTINGS non_replicated_deduplication_window = 100`,
    });
    sink = new ClickHouseSink(ch, createMetrics(), pino({ level: 'silent' }), { minMs: 10, maxMs: 100 });
    await sink.load();
  });

  after(async () => {
    await ch.close();
    await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await admin.close();
  });

  it('stores every supported type exactly as given, and a repeated token only once', async () => {
    const rows = [
      {
        ts: Date.UTC(2026, 10, 20, 12, 34, 56, 789), minute: Date.UTC(2026, 10, 20, 12, 34), u8: 255, u16: 65535, u32: 4_294_967_295, u64: 2 ** 53 - 1, flag: true,
        kind: "it's", label: `zöne-${'a'.repeat(40)}`, text: 'x'.repeat(300), maybe: null, maybe_label: 'äöü ✓', buckets: [0, 1, 300, 65535], counts: [1, 4_294_967_295],
        names: ['', 'résumé', 'y'.repeat(130)], attrs: { client_pid: '1234', client_container: 'c'.repeat(64) },
      },
      {
        ts: 0, minute: 0, u8: 0, u16: 0, u32: 0, u64: 2 ** 32, flag: false,
        kind: 'client', label: '', text: '日本語テキスト', maybe: 7, maybe_label: null, buckets: [], counts: [],
        names: [], attrs: {},
      },
    ];
    await insert(sink, 't', rows, 'token-1');
    await insert(sink, 't', rows, 'token-1');
    const rs = await ch.query({
      query: 'SELECT toUnixTimestamp64Milli(ts) AS ts, toUnixTimestamp(minute) * 1000 AS minute, * EXCEPT (ts, minute) FROM t ORDER BY ts DESC',
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    assert.deepEqual(await rs.json(), rows);
  });

  it('refuses a column type it cannot encode at once instead of retrying forever', async () => {
    await ch.command({ query: 'CREATE TABLE odd (x Float32) ENGINE = MergeTree ORDER BY tuple()' });
    await ch.command({ query: "CREATE TABLE odd_enum (n UInt32, kind Enum8('client' = 1, 'server' = 2), m UInt64) ENGINE = MergeTree ORDER BY n" });
    await sink.load();
    await assert.rejects(insert(sink, 'odd', [{ x: 1.5 }], 'token-2'), { name: 'RowBinaryTypeError', message: /Float32/ });
    await assert.rejects(insert(sink, 'odd', [{ y: 1 }], 'token-3'), { name: 'RowBinaryTypeError', message: /no column y/ });
    await assert.rejects(insert(sink, 'missing', [{ x: 1 }], 'token-4'), { name: 'RowBinaryTypeError', message: /no table missing/ });
    // A value outside an enum, amid the inline fixed-width columns of a row.
    await assert.rejects(insert(sink, 'odd_enum', [{ n: 1, kind: 'peer', m: 2 }], 'token-9'), { name: 'RowBinaryTypeError', message: /peer is not a value of Enum8/ });
  });

  it("writes a flow row's attrs straight from the owners, byte for byte as the object form did", async () => {
    await ch.command({ query: 'CREATE TABLE flow_attrs (n UInt32, attrs Map(LowCardinality(String), String)) ENGINE = MergeTree ORDER BY n' });
    await ch.command({ query: 'CREATE TABLE number_map (attrs Map(String, UInt32)) ENGINE = MergeTree ORDER BY tuple()' });
    await sink.load();
    const { client, server } = connection(7, { ip: '10.0.0.1', port: 40000, node: 'n1' }, { ip: '10.0.0.2', port: 80, node: 'n2' }, T0);
    // Numbers at every digit-count edge of the 32-bit path, past it, and a container or none.
    const c: TcpRecord = { ...client, owner: { ...client.owner, pid: 0, cgroup_id: 2 ** 32 - 1, netns: 2 ** 32, container_id: null } };
    const s: TcpRecord = { ...server, owner: { ...server.owner, pid: 99_999, cgroup_id: 2 ** 53 - 1, netns: 1e9, container_id: 'c'.repeat(64) } };
    const group = (client: TcpRecord | null, server: TcpRecord | null): FlowGroup => ({
      key: '', slotStartMs: T0, slotMs: 10_000, client: client && HeldSide.of(client), server: server && HeldSide.of(server), late: false, capFlushed: false,
    });
    const groups = [group(c, s), group(c, null), group(null, s), group({ ...c, owner: { ...c.owner, pid: 1e5, cgroup_id: 9, netns: 10, container_id: 'x' } }, null)];
    const objectForm = (g: FlowGroup) => {
      const out: Record<string, string> = {};
      for (const [side, r] of [['client', g.client], ['server', g.server]] as const) {
        if (!r) continue;
        out[`${side}_pid`] = String(r.owner.pid);
        out[`${side}_cgroup_id`] = String(r.owner.cgroup_id);
        out[`${side}_netns`] = String(r.owner.netns);
        if (r.owner.container_id) out[`${side}_container`] = r.owner.container_id;
      }
      return out;
    };
    const flows = new FlowRows(new Enricher(new MetadataIndex(), new DnsNames()));
    const batch = sink.batch('flow_attrs');
    groups.forEach((g, n) => {
      flows.build(g);
      batch.add({ n, attrs: flows.row.attrs });
    });
    await sink.insert(batch, 'token-5', hooks);
    const rs = await ch.query({ query: 'SELECT mapKeys(attrs) AS k, mapValues(attrs) AS v FROM flow_attrs ORDER BY n', format: 'JSONEachRow' });
    assert.deepEqual(
      await rs.json(),
      groups.map((g) => ({ k: Object.keys(objectForm(g)), v: Object.values(objectForm(g)) })),
    );
    flows.build(groups[0]!);
    await assert.rejects(insert(sink, 'number_map', [{ attrs: flows.row.attrs }], 'token-6'), { name: 'RowBinaryTypeError', message: /cannot take string entries/ });
  });

  it('writes a sparse histogram as its run, as toBucketRun spells it, and only into unsigned integer arrays', async () => {
    await ch.command({ query: 'CREATE TABLE runs (n UInt32, c32 Array(UInt32), c16 Array(UInt16)) ENGINE = MergeTree ORDER BY n' });
    await ch.command({ query: 'CREATE TABLE run_names (names Array(String)) ENGINE = MergeTree ORDER BY tuple()' });
    await sink.load();
    // Empty, one bucket, neighbours, gaps, the last bucket, and counts at each width's edges.
    const hists = [
      { idx: [], cnt: [] },
      { idx: [0], cnt: [1] },
      { idx: [17, 18, 19], cnt: [3, 65535, 1] },
      { idx: [5, 9, 40], cnt: [2, 4_294_967_295, 7] },
      { idx: [367], cnt: [256] },
    ];
    const batch = sink.batch('runs');
    // One run for every row, as FlowRows reuses its own: a short histogram after a long one leaves entries past `n`.
    const run = new SparseRun();
    hists.forEach((h, n) => {
      run.n = h.idx.length;
      h.idx.forEach((i, k) => (run.idx[k] = i));
      h.cnt.forEach((c, k) => (run.cnt[k] = c));
      batch.add({ n, c32: run, c16: run });
    });
    await sink.insert(batch, 'token-7', hooks);
    const rs = await ch.query({ query: 'SELECT c32, c16 FROM runs ORDER BY n', format: 'JSONEachRow' });
    assert.deepEqual(
      await rs.json(),
      hists.map((h) => ({ c32: toBucketRun(h).counts, c16: toBucketRun(h).counts.map((c) => c & 0xffff) })),
    );
    await assert.rejects(insert(sink, 'run_names', [{ names: new SparseRun() }], 'token-8'), { name: 'RowBinaryTypeError', message: /cannot take a sparse run/ });
  });
});

describe('ByteWriter', () => {
  it('writes the same bytes growing a buffer at a time as it does with room for all', () => {
    const [u64, ticks, u16] = ['UInt64', "DateTime64(3, 'UTC')", 'UInt16'].map(columnWriter) as [ColumnWriter, ColumnWriter, ColumnWriter];
    const write = (w: ByteWriter) => {
      for (let i = 0; i < 50; i++) {
        w.string(`10.0.${i}.1`);
        w.string(`naïve-${i}`);
        w.repeated(`container-${'c'.repeat(30)}-${i % 3}`);
        w.repeated('zone-a');
        w.decimal(i * 99_991);
        w.decimal(2 ** 40 + i);
        u64(w, 2 ** 33 + i);
        u64(w, i);
        ticks(w, -1 - i);
        w.varint(300 * i);
        w.raw(Buffer.from([1, 2, 3]));
        u16(w, i);
      }
    };
    const roomy = new ByteWriter(1 << 20);
    const growing = new ByteWriter(4);
    write(roomy);
    write(growing);
    assert.ok(growing.chunks().length > 5, 'the small writer grew several times');
    assert.equal(growing.length, roomy.length);
    assert.deepEqual(Buffer.concat(growing.chunks()), Buffer.concat(roomy.chunks()));

    // From a pool of blocks (4 KiB: Node gives buffers that large memory of their own).
    const pool = new BufferPool(4096, 100);
    const pooled = new ByteWriter(pool.blockBytes, pool);
    write(pooled);
    assert.ok(pooled.chunks().length > 1, 'the pooled writer took more than one block');
    assert.deepEqual(Buffer.concat(pooled.chunks()), Buffer.concat(roomy.chunks()));
    // Released, its blocks are the next writer's: the same bytes again, in the same memory.
    const blocks = new Set(pooled.chunks().map((c) => c.buffer));
    pooled.release();
    const again = new ByteWriter(pool.blockBytes, pool);
    write(again);
    assert.deepEqual(Buffer.concat(again.chunks()), Buffer.concat(roomy.chunks()));
    assert.ok(again.chunks().some((c) => blocks.has(c.buffer)), 'a released block was reused');
  });
});
