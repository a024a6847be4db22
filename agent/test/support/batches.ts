/**
 * What the shipper tests send and what they expect to read back: batch b holds one tcp frame
 * per partition, whose records' cookies name the batch, the partition and the record, so that
 * what a consumer reads says whether anything was lost, written twice or reordered.
 */
import assert from 'node:assert/strict';
import { consumeRecords } from '@meshlens/e2e/kafka';
import { encodeFrame, sampleTcpRecords, type TcpRecord } from '@meshlens/schemas';
import type { SpooledMessage } from '../../src/spool.js';

const RECORDS = 20;
const cookie = (b: number, p: number, i: number) => b * 1000 + p * 100 + i;

export function batch(topic: string, b: number, partitions: number): SpooledMessage[] {
  return Array.from({ length: partitions }, (_, p) => ({
    topic,
    partition: p,
    value: encodeFrame('tcp', sampleTcpRecords(RECORDS, b * 10 + p).map((r, i) => ({ ...r, sock_cookie: cookie(b, p, i) }))),
  }));
}

/**
 * Reads `topic` until it holds as many records as batches 0..n-1 had, and checks that each
 * partition holds each of them once, in order. The consumer stops at that count: a record
 * written twice takes a later one's place.
 */
export async function assertEachRecordOnce(brokers: string[], topic: string, partitions: number, n: number): Promise<void> {
  const seen = await consumeRecords<TcpRecord>({ brokers, topic, done: (xs) => xs.length >= n * partitions * RECORDS });
  for (let p = 0; p < partitions; p++) {
    const expected = Array.from({ length: n }, (_, b) => Array.from({ length: RECORDS }, (_, i) => cookie(b, p, i))).flat();
    assert.deepEqual(seen.filter((x) => x.partition === p).map((x) => x.record.sock_cookie), expected, `partition ${p}: every record once, in order`);
  }
}
