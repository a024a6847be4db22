// Malformed frames interleaved with good ones in the same partitions: every good record is
// stored, every bad frame and every invalid record lands in the dead-letter topic with its
// reason, and the partition never stops.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connectionPartition, encodeFrame, sampleDnsRecords, seededRandom, type DnsRecord } from '@meshlens/schemas';
import type { Analyzer } from '../src/index.js';
import { PARTITIONS, T0, connection, createEnv, waitForRows, type TestEnv } from './harness.js';

const BAD_FRAMES = 10_000;
const GOOD_FRAMES = 400;
const PER_FRAME = 10;
/** Every tenth good frame carries one invalid record among valid ones. */
const WITH_INVALID = GOOD_FRAMES / 10;

function corrupt(i: number, good: Buffer, rnd: () => number): Buffer {
  switch (i % 5) {
    case 0:
      return Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
    case 1:
      return good.subarray(0, good.length - 1 - Math.floor(rnd() * 10));
    case 2: {
      const b = Buffer.from(good);
      b.write('XXXX', 0);
      return b;
    }
    case 3: {
      const b = Buffer.from(good);
      b[b.length - 3] = b[b.length - 3]! ^ 0xff;
      return b;
    }
    default:
      return encodeFrame('tcp_event', []);
  }
}

describe('dead-lettering', () => {
  let env: TestEnv;
  let analyzer: Analyzer;
  let expectedGood = 0;

  before(async () => {
    env = await createEnv();
    // Held halves are flushed by the watermark or after a long idle time, never between two
    // messages of one send: the pair below has to meet even on a slow machine.
    analyzer = await env.start({ idleFlushMs: 3_000 });
  });

  after(async () => {
    await analyzer.stop();
    await env.cleanup();
  });

  it('stores all good data and dead-letters every bad frame and invalid record, with reasons', async () => {
    const rnd = seededRandom(42);
    const messages: { partition: number; value: Buffer }[] = [];
    const badPerGood = BAD_FRAMES / GOOD_FRAMES;
    for (let g = 0; g < GOOD_FRAMES; g++) {
      const records: DnsRecord[] = sampleDnsRecords(PER_FRAME, g + 1, T0 + g * 10);
      if (g % 10 === 0) records[3] = { ...records[3]!, client: { ip: 'not-an-ip', port: 1 } };
      expectedGood += g % 10 === 0 ? PER_FRAME - 1 : PER_FRAME;
      const good = encodeFrame('dns', records);
      messages.push({ partition: g % PARTITIONS, value: good });
      for (let b = 0; b < badPerGood; b++) messages.push({ partition: g % PARTITIONS, value: corrupt(g * badPerGood + b, good, rnd) });
    }
    for (let i = 0; i < messages.length; i += 1000) await env.producer.send({ topic: env.topics.dns, messages: messages.slice(i, i + 1000) });
    // The two ends of a connection with a corrupt frame between them still meet.
    const conn = connection(7, { ip: '10.0.1.1', port: 40000, node: 'n1' }, { ip: '10.0.2.2', port: 80, node: 'n2' }, T0);
    const partition = connectionPartition(conn.client.local, conn.client.remote, PARTITIONS);
    await env.producer.send({
      topic: env.topics.tcp,
      messages: [encodeFrame('tcp', [conn.client]), Buffer.from('garbage'), encodeFrame('tcp', [conn.server])].map((value) => ({ partition, value })),
    });

    await waitForRows<{ n: string }>(env, 'SELECT toString(count()) AS n FROM dns_queries', (r) => r[0]?.n === String(expectedGood), 120_000);
    const flows = await waitForRows<{ observed: string }>(env, 'SELECT observed FROM tcp_flows', (r) => r.length > 0);
    assert.deepEqual(flows, [{ observed: 'both' }]);

    const reasons = await readDeadLetters(env, BAD_FRAMES + WITH_INVALID + 1);
    assert.equal(reasons.get('record'), WITH_INVALID);
    assert.equal(reasons.get('frame'), BAD_FRAMES + 1);
    for (const code of ['truncated', 'bad_magic', 'corrupt_payload', 'wrong_record_type']) assert.ok(reasons.get(code)! > 0, `no dead letter for ${code}`);
    assert.equal(reasons.get('client.ip: not an IP address'), WITH_INVALID);
    const crashes = await analyzer.metrics.consumerCrashes.get();
    assert.equal(crashes.values[0]?.value, 0, 'the consumer never crashed or restarted');
  });
});

/** Reads the dead-letter topic until `count` messages arrived; tallies kinds and reasons. */
async function readDeadLetters(env: TestEnv, count: number): Promise<Map<string, number>> {
  const tally = new Map<string, number>();
  const add = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  const consumer = env.kafka.consumer({ groupId: `${env.groupId}.dlq-reader.${randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({ topic: env.topics.deadLetter, fromBeginning: true });
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${seen} of ${count} dead letters arrived`)), 120_000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          const h = message.headers ?? {};
          add(String(h['meshlens-kind']));
          const reason = String(h['meshlens-reason']);
          const code = /^frame (\w+):/.exec(reason)?.[1] ?? reason.replace(/^\w+ record \d+: /, '');
          add(code);
          assert.ok(h['meshlens-source-topic'] && h['meshlens-source-offset'] !== undefined);
          if (++seen === count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return tally;
}
