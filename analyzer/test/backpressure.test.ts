// ClickHouse stopped for 60 s in the middle of a steady ingest. The test runs a ClickHouse of
// its own (the shared one is never touched), stops it by PID and starts it again on the same
// data: meanwhile the analyzer pauses, commits nothing and drops nothing; afterwards every
// record produced is stored exactly once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { localInfraConfig, startClickHouse, stopProcess, type LocalInfraConfig } from '@meshlens/deploy/local';
import { sampleDnsRecords, sampleTcpRecords } from '@meshlens/schemas';
import type { Analyzer } from '../src/index.js';
import { SLOT_MS, T0, createEnv, produceDns, produceTcp, until, type TestEnv } from './harness.js';

const OUTAGE_MS = 60_000;
const TCP_PER_BATCH = 40;
const DNS_PER_BATCH = 10;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('ClickHouse stopped for 60 s mid-ingest', () => {
  let env: TestEnv;
  let analyzer: Analyzer;
  let chConfig: LocalInfraConfig;
  let chPid: number | null = null;
  let ch: ClickHouseClient;

  before(async () => {
    chConfig = { ...localInfraConfig(), stateDir: mkdtempSync(join(tmpdir(), 'meshlens-backpressure-')), clickhousePort: await freePort() };
    const started = await startClickHouse(chConfig);
    chPid = started.pid;
    env = await createEnv();
    ch = createClient({ url: started.url, database: env.database });
    analyzer = await env.start({ clickhouse: { url: started.url, database: env.database } });
  });

  after(async () => {
    // The ClickHouse of its own goes even when the setup failed half-way (Kafka unreachable).
    try {
      await env?.cleanup();
      await ch?.close();
    } finally {
      if (chPid !== null) await stopProcess(chPid);
      rmSync(chConfig.stateDir, { recursive: true, force: true });
    }
  });

  const committed = async () => {
    const res = await env.admin.fetchOffsets({ groupId: env.groupId, topics: [env.topics.tcp, env.topics.dns] });
    return res.flatMap((t) => t.partitions.map((p) => `${t.topic}/${p.partition}=${p.offset}`)).sort().join(' ');
  };
  const metric = async (name: 'insertFailures' | 'paused') => (await analyzer.metrics[name].get()).values.reduce((a, v) => a + v.value, 0);
  const stored = async (): Promise<{ flows: number; distinct_flows: number; dns: number; distinct_dns: number }> => {
    const rs = await ch.query({
      query: `SELECT
                (SELECT sum(if(observed = 'both', 2, 1)) FROM tcp_flows) AS flows,
                (SELECT sum(if(observed = 'both', 2, 1))
                 FROM (SELECT DISTINCT slot_start, client_ip, client_port, server_ip, server_port, observed FROM tcp_flows)) AS distinct_flows,
                (SELECT count() FROM dns_queries) AS dns,
                (SELECT uniqExact(ts, client_ip, client_port, qname) FROM dns_queries) AS distinct_dns`,
      format: 'JSONEachRow',
    });
    const [r] = await rs.json<Record<'flows' | 'distinct_flows' | 'dns' | 'distinct_dns', string | number>>();
    return { flows: Number(r!.flows), distinct_flows: Number(r!.distinct_flows), dns: Number(r!.dns), distinct_dns: Number(r!.distinct_dns) };
  };

  it('pauses, commits nothing while stopped, and stores every record exactly once after the restart', async (t) => {
    // One batch per slot. Each record is one end of a connection; a row holds one or both ends
    // (the sample's few addresses make an end in one slot and the opposite end in the next
    // look like one connection, which the matcher joins), so the ends stored = the records.
    let batches = 0;
    const produced = { flows: 0, dns: 0 };
    let producing = true;
    const producer = (async () => {
      while (producing) {
        const slot = T0 + batches * SLOT_MS;
        await produceTcp(env, sampleTcpRecords(TCP_PER_BATCH, 100 + batches, slot));
        await produceDns(env, sampleDnsRecords(DNS_PER_BATCH, 100 + batches, slot));
        produced.flows += TCP_PER_BATCH;
        produced.dns += DNS_PER_BATCH;
        batches++;
        await delay(250);
      }
    })();

    await until('some rows are stored', async () => (await stored().catch(() => ({ flows: 0 }))).flows >= 4 * TCP_PER_BATCH);
    const stoppedAt = Date.now();
    await stopProcess(chPid!);
    chPid = null;
    const atStop = { ...produced };
    await until('inserts fail and partitions pause', async () => (await metric('insertFailures')) >= 3 && (await metric('paused')) > 0, OUTAGE_MS / 2);
    const whilePaused = await committed();
    await delay(OUTAGE_MS - (Date.now() - stoppedAt));
    assert.equal(await committed(), whilePaused, 'no offset may be committed while ClickHouse is down');
    assert.ok(produced.flows >= atStop.flows + 10 * TCP_PER_BATCH, 'ingest went on during the outage');

    chPid = (await startClickHouse(chConfig)).pid;
    await delay(2_000);
    producing = false;
    await producer;

    await until(
      'every record is stored',
      async () => {
        const s = await stored();
        return s.flows >= produced.flows && s.dns >= produced.dns;
      },
      60_000,
    );
    await until('partitions resume', async () => (await metric('paused')) === 0);
    assert.deepEqual(await stored(), { flows: produced.flows, distinct_flows: produced.flows, dns: produced.dns, distinct_dns: produced.dns });
    assert.notEqual(await committed(), whilePaused);
    t.diagnostic(`produced ${produced.flows} tcp and ${produced.dns} dns records, ${produced.flows - atStop.flows} tcp of them after the stop; ${await metric('insertFailures')} failed insert attempts`);
  });
});
