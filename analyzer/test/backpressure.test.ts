// ClickHouse unreachable mid-ingest (a proxy in front of the real one is stopped; the shared
// ClickHouse itself is never touched): the analyzer pauses the partitions, commits nothing,
// and once ClickHouse is back every record is stored exactly once.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { sampleDnsRecords, sampleTcpRecords } from '@meshlens/schemas';
import type { Analyzer } from '../src/index.js';
import { SLOT_MS, T0, createEnv, produceDns, produceTcp, query, until, waitForRows, type TestEnv } from './harness.js';

/** A TCP relay on a loopback port that can be taken down (refusing and cutting connections) and brought back on the same port. */
class Relay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  }
}


describe('backpressure while ClickHouse is unavailable', () => {
  let env: TestEnv;
  let relay: Relay;
  let analyzer: Analyzer;

  before(async () => {
    env = await createEnv();
    const ch = new URL(env.conn.clickhouseUrl);
    relay = new Relay({ host: ch.hostname, port: Number(ch.port) });
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
