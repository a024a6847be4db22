// The shipper against a real Kafka broker of the test's own, which the test stops and
// starts again: nothing may be lost or reordered while the broker is away.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { localInfraConfig, startKafka, stopProcess } from '@meshlens/deploy/local';
import { consumeRecords } from '@meshlens/e2e/kafka';
import { encodeFrame, sampleTcpRecords, type TcpRecord } from '@meshlens/schemas';
import { Shipper } from '../src/shipper.js';
import { Spool, type SpooledMessage } from '../src/spool.js';

const PARTITIONS = 3;
const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-shipper-kafka-'));
const spoolDir = mkdtempSync(join(tmpdir(), 'meshlens-shipper-spool-'));
const cfg = localInfraConfig({
  ...process.env,
  MESHLENS_STATE_DIR: stateDir,
  MESHLENS_KAFKA_PORT: '49092',
  MESHLENS_KAFKA_CONTROLLER_PORT: '49093',
});
const topic = `meshlens.test.shipper.${randomUUID()}`;
let brokerPid = 0;

/** Batch b: one message per partition, each record's cookie = b * 1000 + its index. */
function batch(b: number): SpooledMessage[] {
  return Array.from({ length: PARTITIONS }, (_, p) => ({
    topic,
    partition: p,
    value: encodeFrame('tcp', sampleTcpRecords(20, b * 10 + p).map((r, i) => ({ ...r, sock_cookie: b * 1000 + p * 100 + i }))),
  }));
}

describe('shipper: Kafka goes away and comes back', () => {
  const kafka = new Kafka({ clientId: 'meshlens-test', brokers: [`127.0.0.1:${cfg.kafkaPort}`], logLevel: logLevel.NOTHING });

  before(async () => {
    brokerPid = (await startKafka(cfg)).pid;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
    await admin.disconnect();
  });

  after(async () => {
    if (brokerPid) await stopProcess(brokerPid);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(spoolDir, { recursive: true, force: true });
  });

  it('spools while the broker is down and delivers everything, in order, when it returns', async () => {
    const spool = new Spool({ dir: spoolDir, maxBytes: 64 * 1024 * 1024 });
    const shipper = new Shipper({ kafka, spool, log: pino({ level: 'silent' }), retryMs: 200 });
    await shipper.send(batch(0));
    assert.equal(shipper.stats.sentMessages, PARTITIONS);
    assert.equal(spool.empty, true);

    await stopProcess(brokerPid);
    brokerPid = 0;
    await shipper.send(batch(1));
    await shipper.send(batch(2));
    assert.equal(spool.stats.messages, 2 * PARTITIONS, 'both batches must be on disk while Kafka is down');

    brokerPid = (await startKafka(cfg)).pid;
    assert.equal(await shipper.flush(60_000), true, 'spool should drain once Kafka is back');
    await shipper.send(batch(3));
    await shipper.close();

    const seen = await consumeRecords<TcpRecord>({ brokers: [`127.0.0.1:${cfg.kafkaPort}`], topic, done: (xs) => xs.length === 4 * PARTITIONS * 20 });
    const cookies = new Map<number, number[]>();
    for (const x of seen) cookies.set(x.partition, [...(cookies.get(x.partition) ?? []), x.record.sock_cookie]);
    for (let p = 0; p < PARTITIONS; p++) {
      const expected = [0, 1, 2, 3].flatMap((b) => Array.from({ length: 20 }, (_, i) => b * 1000 + p * 100 + i));
      assert.deepEqual(cookies.get(p), expected, `partition ${p}: every record once, in order`);
    }
  });
});
