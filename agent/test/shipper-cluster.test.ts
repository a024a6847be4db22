// The shipper against a cluster of two real brokers, one partition led by each, when the
// agent cannot reach one of them (a broker that crashed and is not yet fenced, or a network
// partition): the other goes on writing its share of every request. What it wrote must not
// be written again when the rest is spooled and replayed (kafkajs advances a written
// partition's sequence numbers, so the broker could not tell a second copy from new data).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { localInfraConfig, startKafka, stopProcess, type JoiningBroker } from '@meshlens/deploy/local';
import { waitFor } from '@meshlens/bpf/testing';
import { Shipper } from '../src/shipper.js';
import { Spool } from '../src/spool.js';
import { assertEachRecordOnce, batch } from './support/batches.js';

const PARTITIONS = 2;
const stateDir = mkdtempSync(join(tmpdir(), 'meshlens-cluster-kafka-'));
const cfg = localInfraConfig({ ...process.env, MESHLENS_STATE_DIR: stateDir, MESHLENS_KAFKA_PORT: '25492', MESHLENS_KAFKA_CONTROLLER_PORT: '25493' });
const second: JoiningBroker = { nodeId: 2, port: 25494 };
const brokers = [`127.0.0.1:${cfg.kafkaPort}`, `127.0.0.1:${second.port}`];
const pids = { first: 0, second: 0 };
/**
 * Refuses the agent's connections to the second broker, which stays up and stays the leader
 * of partition 1 (the controller hears from it on its own port). This test's port only.
 */
const unreachableRule = () => ['OUTPUT', '-o', 'lo', '-p', 'tcp', '--dport', String(second.port), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
let unreachable = false;
function setUnreachable(on: boolean): void {
  execFileSync('iptables', ['-w', on ? '-I' : '-D', ...unreachableRule()]);
  unreachable = on;
}



describe('shipper: one broker of two goes away', () => {
  const kafka = new Kafka({ clientId: 'meshlens-test', brokers, logLevel: logLevel.NOTHING, connectionTimeout: 1000 });
  const dirs: string[] = [];

  /** A topic whose partition 0 lives on the first broker only and partition 1 on the second. */
  async function splitTopic(): Promise<string> {
    const topic = `meshlens.test.cluster.${randomUUID()}`;
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, replicaAssignment: [{ partition: 0, replicas: [1] }, { partition: 1, replicas: [2] }] }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
    return topic;
  }

  /** Messages per partition in the log: a message written twice shows here. */
  async function logSizes(topic: string): Promise<number[]> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high) - Number(o.low));
    } finally {
      await admin.disconnect();
    }
  }

  /** Each batch once in each partition's log, and each record once, in order. */
  async function assertEachOnce(topic: string, n: number): Promise<void> {
    assert.deepEqual(await logSizes(topic), [n, n], 'one message per batch in each partition, none twice');
    await assertEachRecordOnce(brokers, topic, PARTITIONS, n);
  }

  function newShipper(): { shipper: Shipper; spool: Spool } {
    const dir = mkdtempSync(join(tmpdir(), 'meshlens-cluster-spool-'));
    dirs.push(dir);
    const spool = new Spool({ dir, maxBytes: 64 * 1024 * 1024 });
    return { shipper: new Shipper({ kafka, spool, log: pino({ level: 'silent' }), retryMs: 200 }), spool };
  }

  before(async () => {
    pids.first = (await startKafka(cfg)).pid;
    pids.second = (await startKafka(cfg, second)).pid;
  });

  after(async () => {
    if (unreachable) setUnreachable(false);
    for (const k of ['second', 'first'] as const) if (pids[k]) await stopProcess(pids[k]);
    rmSync(stateDir, { recursive: true, force: true });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /**
   * Batch 0 shipped, then `during` with the second broker unreachable, then reachable again:
   * the spool must drain, batch n-1 goes out, and each record of the n batches is in Kafka once.
   */
  async function throughOutage(n: number, during: (topic: string, shipper: Shipper, spool: Spool) => Promise<void>): Promise<void> {
    const topic = await splitTopic();
    const { shipper, spool } = newShipper();
    try {
      await shipper.send(batch(topic, 0, PARTITIONS));
      setUnreachable(true);
      await during(topic, shipper, spool);
      setUnreachable(false);
      assert.equal(await shipper.flush(60_000), true, 'the spool drains once the second broker answers again');
      await shipper.send(batch(topic, n - 1, PARTITIONS));
    } finally {
      await shipper.close();
    }
    await assertEachOnce(topic, n);
  }

  it('spools only what the missing broker did not write, and writes each record once', () =>
    throughOutage(4, async (topic, shipper, spool) => {
      await shipper.send(batch(topic, 1, PARTITIONS));
      assert.equal(spool.stats.messages, 1, "only partition 1's message waits: the first broker wrote partition 0's");
      assert.equal(shipper.stats.sentMessages, 3);
      // Replays that fail meanwhile must not touch partition 0 either.
      await waitFor('two failed replays', () => (shipper.stats.sendErrors >= 3 ? true : undefined), 30_000);
      await shipper.send(batch(topic, 2, PARTITIONS));
      assert.equal(spool.stats.messages, 3, 'behind the spool, batch 2 waits whole');
    }));

  it('replays a spooled request of which one broker wrote its share without writing that share again', () =>
    throughOutage(3, async (topic, shipper, spool) => {
      // Left by an earlier outage: both partitions' messages in one segment, never offered.
      spool.append(batch(topic, 1, PARTITIONS));
      assert.equal(await shipper.flush(3000), false, 'partition 1 cannot be delivered yet');
      assert.equal(spool.stats.messages, 1, "partition 0's message is shipped, partition 1's waits");
      assert.equal(shipper.stats.sentMessages, 3);
      await waitFor('failed replays of what is left', () => (shipper.stats.sendErrors >= 3 ? true : undefined), 30_000);
    }));
});
