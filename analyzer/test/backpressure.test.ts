// ClickHouse unreachable mid-ingest (a proxy in front of the real one is stopped; the shared
// ClickHouse itself is never touched): the analyzer pauses the partitions, commits nothing,
// and once ClickHouse is back every record is stored exactly once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TcpProxy } from '@meshlens/e2e/tcp-proxy';
import { sampleDnsRecords, sampleTcpRecords } from '@meshlens/schemas';
import type { Analyzer } from '../src/index.js';
import { SLOT_MS, T0, createEnv, produceDns, produceTcp, query, until, waitForRows, type TestEnv } from './harness.js';

describe('backpressure while ClickHouse is unavailable', () => {
  let env: TestEnv;
  let relay: TcpProxy;
  let analyzer: Analyzer;

  before(async () => {
    env = await createEnv();
    const ch = new URL(env.conn.clickhouseUrl);
    relay = new TcpProxy({ host: ch.hostname, port: Number(ch.port) });
    await relay.start();
    analyzer = await env.start({
      clickhouse: { url: `http://127.0.0.1:${relay.port}`, username: env.conn.clickhouseUser, password: env.conn.clickhousePassword, database: env.database },
    });
  });

  after(async () => {
    await analyzer.stop();
    await relay.stop();
    await env.cleanup();
  });

  const committed = async () => {
    const res = await env.admin.fetchOffsets({ groupId: env.groupId, topics: [env.topics.tcp, env.topics.dns] });
    return res.flatMap((t) => t.partitions.map((p) => `${t.topic}/${p.partition}=${p.offset}`)).sort().join(' ');
  };
  const metric = async (name: 'insertFailures' | 'paused') => (await analyzer.metrics[name].get()).values.reduce((a, v) => a + v.value, 0);
  const counts = async () => (await query<{ n: number[] }>(env, 'SELECT [(SELECT count() FROM tcp_flows), (SELECT count() FROM dns_queries)] AS n'))[0]!.n.map(Number);

  it('pauses consumption, commits nothing and loses nothing until ClickHouse is back', async () => {
    await produceTcp(env, sampleTcpRecords(100, 1, T0));
    await produceDns(env, sampleDnsRecords(50, 1, T0));
    await waitForRows<{ n: number[] }>(env, 'SELECT [(SELECT count() FROM tcp_flows), (SELECT count() FROM dns_queries)] AS n', (r) => r[0]?.n.map(Number).join() === '100,50');
    const before = await committed();

    await relay.stop();
    await produceTcp(env, sampleTcpRecords(200, 2, T0 + SLOT_MS));
    await produceDns(env, sampleDnsRecords(80, 2, T0 + SLOT_MS));
    await until('inserts fail and partitions pause', async () => (await metric('insertFailures')) >= 6 && (await metric('paused')) > 0);
    assert.deepEqual(await counts(), [100, 50]);
    assert.equal(await committed(), before, 'no offset may be committed while its rows are not stored');

    await relay.start();
    await waitForRows<{ n: number[] }>(env, 'SELECT [(SELECT count() FROM tcp_flows), (SELECT count() FROM dns_queries)] AS n', (r) => (r[0]?.n.map(Number) ?? [0, 0]).every((n, i) => n >= [300, 130][i]!));
    await until('partitions resume', async () => (await metric('paused')) === 0);
    assert.deepEqual(await counts(), [300, 130]);
    assert.notEqual(await committed(), before);
  });
});
