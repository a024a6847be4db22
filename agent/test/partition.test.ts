// Records framed per partition: a record at a time (tcp) gives the same partitions and records as
// framing the whole batch at once, frames bounded in records, nothing held after take().
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { decodeFrame, readFrameHeader, sampleDnsRecords, sampleTcpRecords, type TcpRecord } from '@meshlens/schemas';
import { TcpFrames, framesByPartition } from '../src/partition.js';
import type { SpooledMessage } from '../src/spool.js';

const byPartition = (msgs: SpooledMessage[]) => {
  const out = new Map<number, TcpRecord[]>();
  for (const m of msgs) out.set(m.partition, [...(out.get(m.partition) ?? []), ...(decodeFrame(m.value).records as TcpRecord[])]);
  return out;
};

describe('frames per partition', () => {
  it('puts each record where framesByPartition does, one version-2 message per partition', () => {
    const records = sampleTcpRecords(500, 21);
    const frames = new TcpFrames(6, 4096, 't');
    for (const r of records) assert.equal(frames.add(r), null);
    const msgs = frames.take();
    assert.ok(msgs.every((m) => m.topic === 't' && readFrameHeader(m.value).version === 2));
    assert.equal(new Set(msgs.map((m) => m.partition)).size, msgs.length);
    const whole = byPartition(framesByPartition('tcp', records, 6, 't'));
    assert.ok(whole.size > 1);
    assert.deepEqual(new Map([...byPartition(msgs)].sort(([a], [b]) => a - b)), new Map([...whole].sort(([a], [b]) => a - b)));
    assert.deepEqual(frames.take(), []);
  });

  it("hands a partition's message over when it reaches maxRecords", () => {
    const records = sampleTcpRecords(25, 22);
    const frames = new TcpFrames(1, 10, 't');
    const early = records.map((r) => frames.add(r)).filter((m) => m !== null);
    assert.deepEqual(early.map((m) => m.map((x) => readFrameHeader(x.value).count)), [[10], [10]]);
    const rest = frames.take();
    assert.deepEqual(rest.map((m) => readFrameHeader(m.value).count), [5]);
    assert.deepEqual([...early.flat(), ...rest].flatMap((m) => decodeFrame(m.value).records), records);
  });

  it('framesByPartition splits a partition past maxRecords into frames, in order', () => {
    const records = sampleTcpRecords(25, 23);
    const msgs = framesByPartition('tcp', records, 1, 't', 10);
    assert.deepEqual(msgs.map((m) => readFrameHeader(m.value).count), [10, 10, 5]);
    assert.deepEqual(msgs.flatMap((m) => decodeFrame(m.value).records), records);
  });

  it('framesByPartition keeps every message under the broker\'s default 1 MiB, however large the records', () => {
    // Answers that do not compress: 4096 such records are several MiB in one frame.
    const records = sampleDnsRecords(4096, 24).map((r) => ({ ...r, answers: Array.from({ length: 16 }, () => randomBytes(48).toString('hex')) }));
    const msgs = framesByPartition('dns', records, 1, 't');
    assert.ok(msgs.length > 1, 'split by size, not only by count');
    for (const m of msgs) assert.ok(m.value.length < 1024 * 1024, `a message of ${m.value.length} bytes`);
    assert.deepEqual(msgs.flatMap((m) => decodeFrame(m.value).records), records);
  });
});
