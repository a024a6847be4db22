// Frames through the real embedded Kafka: a topic is created, zstd frames are produced to
// the partition the connection key picks, and a consumer group reads them back intact.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Kafka, Partitioners, logLevel, type Admin } from 'kafkajs';
import { connectionsFor, localInfraConfig } from '@meshlens/deploy/local';
import { consumeRecords } from '@meshlens/e2e/kafka';
import {
  connectionKey,
  connectionPartition,
  encodeFrame,
  sampleTcpRecords,
  type TcpRecord,
} from '@meshlens/schemas';

const PARTITIONS = 4;

describe('frames over the embedded Kafka', () => {
  const conn = connectionsFor(localInfraConfig());
  const kafka = new Kafka({ clientId: 'meshlens-test', brokers: conn.kafkaBrokers, logLevel: logLevel.WARN });
  const topic = `meshlens.test.${randomUUID()}`;
  let admin: Admin;

  before(async () => {
    admin = kafka.admin();
    await admin.connect();
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true }), true);
  });

  after(async () => {
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });

  it('produces zstd frames per partition and consumes them back with a consumer group', async () => {
    const records = sampleTcpRecords(400);
    const byPartition = new Map<number, TcpRecord[]>();
    for (const r of records) {
      const p = connectionPartition(r.local, r.remote, PARTITIONS);
      byPartition.set(p, [...(byPartition.get(p) ?? []), r]);
    }
    assert.ok(byPartition.size > 1, 'test data should spread over partitions');

    const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({
      topic,
      messages: [...byPartition].map(([partition, rs]) => ({ partition, value: encodeFrame('tcp', rs) })),
    });
    await producer.disconnect();

    const seen = await consumeRecords<TcpRecord>({ brokers: conn.kafkaBrokers, topic, done: (xs) => xs.length === records.length, timeoutMs: 30_000 });
    const received = new Map<number, TcpRecord[]>();
    for (const x of seen) received.set(x.partition, [...(received.get(x.partition) ?? []), x.record]);
    assert.deepEqual(received, byPartition);
  });

  it('sends both ends of a connection to the same partition', () => {
    const [a] = sampleTcpRecords(1);
    const clientSide = connectionKey(a!.local, a!.remote);
    const serverSide = connectionKey(a!.remote, a!.local);
    assert.equal(clientSide, serverSide);
    assert.equal(connectionPartition(a!.local, a!.remote, 12), connectionPartition(a!.remote, a!.local, 12));
  });
});
