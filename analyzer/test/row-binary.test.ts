// RowBinary inserts judged by ClickHouse itself: rows of every column type the tables use
// (and the edge cases of each encoding) go in through the sink and must read back unchanged.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ClickHouseClient } from '@clickhouse/client';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { clickhouseClient } from '@meshlens/schemas/clickhouse';
import { ClickHouseSink, createMetrics } from '../src/index.js';

const hooks = { beforeRetry: async () => {}, onStall: () => {} };

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
        kind: "it's", label: 'zone-a', text: 'x'.repeat(300), maybe: null, maybe_label: 'äöü ✓', buckets: [0, 1, 300, 65535], counts: [1, 4_294_967_295],
        names: ['', 'résumé', 'y'.repeat(130)], attrs: { client_pid: '1234', client_container: 'c'.repeat(64) },
      },
      {
        ts: 0, minute: 0, u8: 0, u16: 0, u32: 0, u64: 2 ** 32, flag: false,
        kind: 'client', label: '', text: '日本語テキスト', maybe: 7, maybe_label: null, buckets: [], counts: [],
        names: [], attrs: {},
      },
    ];
    await sink.insert('t', rows, 'token-1', hooks);
    await sink.insert('t', rows, 'token-1', hooks);
    const rs = await ch.query({
      query: 'SELECT toUnixTimestamp64Milli(ts) AS ts, toUnixTimestamp(minute) * 1000 AS minute, * EXCEPT (ts, minute) FROM t ORDER BY ts DESC',
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    assert.deepEqual(await rs.json(), rows);
  });

  it('refuses a column type it cannot encode at once instead of retrying forever', async () => {
    await ch.command({ query: 'CREATE TABLE odd (x Float32) ENGINE = MergeTree ORDER BY tuple()' });
    await assert.rejects(sink.insert('odd', [{ x: 1.5 }], 'token-2', hooks), { name: 'RowBinaryTypeError', message: /Float32/ });
    await assert.rejects(sink.insert('odd', [{ y: 1 }], 'token-3', hooks), { name: 'RowBinaryTypeError', message: /no column y/ });
  });
});
