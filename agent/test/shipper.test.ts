// The shipper against a real Kafka broker of the test's own, which the test stops and
// starts again, or whose answers it drops (the broker works, the shipper hears nothing):
// nothing may be lost, written twice or reordered while the broker is away.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { localInfraConfig, startKafka, stopProcess } from '@meshlens/deploy/local';
import { consumeRecords } from '@meshlens/e2e/kafka';
import { waitFor } from '@meshlens/bpf/testing';
import { encodeFrame, sampleTcpRecords, type TcpRecord } from '@meshlens/schemas';
import { requestsFor, Shipper } from '../src/shipper.js';
import { Spool, type SpooledMessage } from '../src/spool.js';
import { assertEachRecordOnce, batch } from './support/batches.js';

const PARTITIONS = 3;
const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-shipper-kafka-'));
const spoolDir = mkdtempSync(join(tmpdir(), 'meshlens-shipper-spool-'));
const cfg = localInfraConfig({
  ...process.env,
  MESHLENS_STATE_DIR: stateDir,
  MESHLENS_KAFKA_PORT: '25192',
  MESHLENS_KAFKA_CONTROLLER_PORT: '25193',
});
const topic = `meshlens.test.shipper.${randomUUID()}`;
const hungTopic = `meshlens.test.shipper-hung.${randomUUID()}`;
const bigTopic = `meshlens.test.shipper-big.${randomUUID()}`;
let brokerPid = 0;
/** Drops what the broker sends (answers and ACKs) on loopback; this test's broker port only. */
const deafRule = () => ['OUTPUT', '-o', 'lo', '-p', 'tcp', '--sport', String(cfg.kafkaPort), '-j', 'DROP'];
let deaf = false;
function setDeaf(on: boolean): void {
  execFileSync('iptables', ['-w', on ? '-I' : '-D', ...deafRule()]);
  deaf = on;
}



describe('shipper: requests and batches', () => {
  const key = (m: SpooledMessage) => `${m.topic}/${m.partition}`;
  // Two topics, three partitions each, messages of 100-900 bytes in an interleaved order.
  const msgs: SpooledMessage[] = Array.from({ length: 60 }, (_, i) => ({
    topic: i % 2 ? 'a' : 'b',
    partition: i % 3,
    value: Buffer.alloc(100 + ((i * 337) % 800), i),
  }));
  const batchesOf = (requests: SpooledMessage[][][]) => {
    const out = new Map<string, SpooledMessage[][]>();
    for (const request of requests) for (const b of request) out.set(key(b[0]!), [...(out.get(key(b[0]!)) ?? []), b]);
    return out;
  };

  it('carries at most one batch per partition per request, each under the budget, in order', () => {
    const requests = requestsFor(msgs, 2000);
    assert.ok(requests.length > 1, 'the budget should cut partitions into several batches');
    for (const request of requests) {
      const keys = request.map((b) => key(b[0]!));
      assert.equal(new Set(keys).size, keys.length, 'one batch per partition');
      for (const b of request) {
        assert.ok(b.every((m) => key(m) === key(b[0]!)), 'a batch holds one partition');
        assert.ok(b.length === 1 || b.reduce((n, m) => n + m.value.length, 0) <= 2000, 'a batch of several stays under the budget');
      }
    }
    for (const [k, batches] of batchesOf(requests)) assert.deepEqual(batches.flat(), msgs.filter((m) => key(m) === k), `${k}: every message once, in order`);
  });

  it("cuts a partition's batches the same whatever was shipped of the others", () => {
    const before = batchesOf(requestsFor(msgs, 2000));
    // The first request half written: the partitions of topic a were, those of b were not.
    const written = new Set(requestsFor(msgs, 2000)[0]!.filter((b) => b[0]!.topic === 'a').flat());
    const after = batchesOf(requestsFor(msgs.filter((m) => !written.has(m)), 2000));
    for (const [k, batches] of before) assert.deepEqual(after.get(k), k.startsWith('a/') ? batches.slice(1) : batches, k);
  });
});

describe('shipper: Kafka goes away and comes back', () => {
  const kafka = new Kafka({ clientId: 'meshlens-test', brokers: [`127.0.0.1:${cfg.kafkaPort}`], logLevel: logLevel.NOTHING });

  before(async () => {
    brokerPid = (await startKafka(cfg)).pid;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [topic, hungTopic, bigTopic].map((t) => ({ topic: t, numPartitions: PARTITIONS })), waitForLeaders: true });
    await admin.disconnect();
  });

  after(async () => {
    if (deaf) setDeaf(false);
    if (brokerPid) await stopProcess(brokerPid);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(spoolDir, { recursive: true, force: true });
  });

  it('spools while the broker is down and delivers everything, in order, when it returns', async () => {
    const spool = new Spool({ dir: spoolDir, maxBytes: 64 * 1024 * 1024 });
    const shipper = new Shipper({ kafka, spool, log: pino({ level: 'silent' }), retryMs: 200 });
    await shipper.send(batch(topic, 0, PARTITIONS));
    assert.equal(shipper.stats.sentMessages, PARTITIONS);
    assert.equal(spool.empty, true);

    await stopProcess(brokerPid);
    brokerPid = 0;
    await shipper.send(batch(topic, 1, PARTITIONS));
    await shipper.send(batch(topic, 2, PARTITIONS));
    assert.equal(spool.stats.messages, 2 * PARTITIONS, 'both batches must be on disk while Kafka is down');

    brokerPid = (await startKafka(cfg)).pid;
    assert.equal(await shipper.flush(60_000), true, 'spool should drain once Kafka is back');
    await shipper.send(batch(topic, 3, PARTITIONS));
    await shipper.close();

    await assertEachRecordOnce([`127.0.0.1:${cfg.kafkaPort}`], topic, PARTITIONS, 4);
  });

  it('gives up on a broker whose answers are lost within its request timeouts, and writes each record once', async () => {
    const hungKafka = new Kafka({
      clientId: 'meshlens-test-hung',
      brokers: [`127.0.0.1:${cfg.kafkaPort}`],
      logLevel: logLevel.NOTHING,
      requestTimeout: 1000,
      connectionTimeout: 1000,
    });
    const dir = mkdtempSync(join(tmpdir(), 'meshlens-shipper-hung-'));
    const spool = new Spool({ dir, maxBytes: 64 * 1024 * 1024 });
    // A long pause between replays, ended by flush(): batch 2 is spooled while the replay
    // loop waits after its first failed attempt at batch 1.
    const shipper = new Shipper({ kafka: hungKafka, spool, log: pino({ level: 'silent' }), retryMs: 120_000 });
    try {
      await shipper.send(batch(hungTopic, 0, PARTITIONS));
      setDeaf(true);
      const t0 = performance.now();
      await shipper.send(batch(hungTopic, 1, PARTITIONS));
      const gaveUpMs = performance.now() - t0;
      // Three attempts of 1 s each (kafkajs' two retries) plus their backoff, not forever.
      assert.ok(gaveUpMs < 10_000, `send returned after ${gaveUpMs.toFixed(0)} ms`);
      assert.equal(spool.stats.messages, PARTITIONS, 'the unanswered batch is spooled');
      await waitFor('a replay of batch 1 failing too', () => (shipper.stats.sendErrors >= 2 ? true : undefined), 30_000);
      await shipper.send(batch(hungTopic, 2, PARTITIONS));
      assert.equal(spool.stats.messages, 2 * PARTITIONS);
      // The broker wrote batch 1 (only its answers were lost): the replay must offer that batch
      // again exactly as sent, which the broker recognises by its sequence numbers; batch 1
      // and 2 together would be refused as out of sequence (or, from a new producer, written
      // twice).
      setDeaf(false);
      assert.equal(await shipper.flush(60_000), true, 'spool should drain once the broker answers again');
      await shipper.send(batch(hungTopic, 3, PARTITIONS));
    } finally {
      await shipper.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await assertEachRecordOnce([`127.0.0.1:${cfg.kafkaPort}`], hungTopic, PARTITIONS, 4);
  });

  it('replays a spool holding more than the broker takes in one batch per partition', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlens-shipper-big-'));
    // ~1.2 MB of frames per partition in one segment, past Kafka's default 1 MiB
    // message.max.bytes if a partition's messages went in one batch.
    const spool = new Spool({ dir, maxBytes: 64 * 1024 * 1024, segmentBytes: 32 * 1024 * 1024 });
    const messages = Array.from({ length: 14 * PARTITIONS }, (_, k) => ({
      topic: bigTopic,
      partition: k % PARTITIONS,
      value: encodeFrame('tcp', sampleTcpRecords(2000, k).map((r, i) => ({ ...r, sock_cookie: k * 10_000 + i }))),
    }));
    const perPartition = messages.filter((m) => m.partition === 0).reduce((n, m) => n + m.value.length, 0);
    assert.ok(perPartition > 1024 * 1024, `partition 0 holds ${perPartition} bytes`);
    spool.append(messages);
    const shipper = new Shipper({ kafka, spool, log: pino({ level: 'silent' }), retryMs: 200 });
    try {
      assert.equal(await shipper.flush(60_000), true, 'the whole spool should be delivered');
    } finally {
      await shipper.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const total = messages.length * 2000;
    const seen = await consumeRecords<TcpRecord>({ brokers: [`127.0.0.1:${cfg.kafkaPort}`], topic: bigTopic, done: (xs) => xs.length >= total });
    for (let p = 0; p < PARTITIONS; p++) {
      const expected = messages.flatMap((m, k) => (m.partition === p ? Array.from({ length: 2000 }, (_, i) => k * 10_000 + i) : []));
      assert.deepEqual(
        seen.filter((x) => x.partition === p).map((x) => x.record.sock_cookie),
        expected,
        `partition ${p}: every record once, in order`,
      );
    }
  });
});
