import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { decodeFrame, encodeFrame, sampleTcpRecords } from '@meshlens/schemas';
import { Spool, type SpooledMessage } from '../src/spool.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshlens-spool-'));
  dirs.push(d);
  return d;
}

/** Message i carries i+1 records whose cookies identify the message. */
function message(i: number): SpooledMessage {
  const records = sampleTcpRecords(i % 5 + 1, i).map((r) => ({ ...r, sock_cookie: i }));
  return { topic: 't', partition: i % 3, value: encodeFrame('tcp', records) };
}

async function replayAll(spool: Spool): Promise<SpooledMessage[]> {
  const out: SpooledMessage[] = [];
  while (await spool.replayOldest(async (msgs) => void out.push(...msgs)));
  return out;
}

describe('on-disk spool', () => {
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('replays every message in order, across segments and across a restart', async () => {
    const dir = tempDir();
    const first = new Spool({ dir, maxBytes: 10 * 1024 * 1024, segmentBytes: 4096 });
    const sent = Array.from({ length: 60 }, (_, i) => message(i));
    first.append(sent.slice(0, 40));
    assert.ok(readdirSync(dir).length > 2, 'small segments should rotate');
    // A new process finds what the old one left and keeps appending after it.
    const second = new Spool({ dir, maxBytes: 10 * 1024 * 1024, segmentBytes: 4096 });
    assert.equal(second.stats.messages, 40);
    second.append(sent.slice(40));
    const replayed = await replayAll(second);
    assert.deepEqual(replayed, sent);
    assert.equal(second.empty, true);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('keeps a segment when shipping it fails, and replays it again later', async () => {
    const spool = new Spool({ dir: tempDir(), maxBytes: 1 << 20 });
    spool.append([message(1), message(2)]);
    await assert.rejects(spool.replayOldest(async () => Promise.reject(new Error('broker gone'))), /broker gone/);
    assert.equal(spool.stats.messages, 2);
    assert.deepEqual(await replayAll(spool), [message(1), message(2)]);
  });

  it('resumes a replay without what was reported shipped, offering the rest in order as before', async () => {
    const spool = new Spool({ dir: tempDir(), maxBytes: 1 << 20 });
    const sent = Array.from({ length: 6 }, (_, i) => message(i));
    spool.append(sent);
    const offered: SpooledMessage[][] = [];
    // Not a prefix: one broker of a cluster wrote its partitions' messages, another failed.
    await assert.rejects(
      spool.replayOldest(async (msgs, shipped) => {
        offered.push(msgs);
        shipped([msgs[1]!, msgs[4]!]);
        throw new Error('broker hung');
      }),
      /broker hung/,
    );
    assert.equal(spool.stats.messages, 4, 'the two reported shipped are no longer pending');
    // Appended after a replay began: never mixed into the segment being retried.
    spool.append([message(9)]);
    const rest = [sent[0]!, sent[2]!, sent[3]!, sent[5]!];
    await assert.rejects(
      spool.replayOldest(async (msgs, shipped) => {
        offered.push(msgs);
        shipped([msgs[0]!, msgs[0]!]); // reported twice, counted once
        throw new Error('broker hung');
      }),
    );
    assert.equal(spool.stats.messages, 4, 'three of the segment and the later one');
    assert.deepEqual(offered, [sent, rest]);
    assert.deepEqual(await replayAll(spool), [...rest.slice(1), message(9)], 'the segment again without what was shipped, then the later one');
  });

  it('counts as dropped only what a dropped segment had not shipped', async () => {
    const spool = new Spool({ dir: tempDir(), maxBytes: 24 * 1024, segmentBytes: 4096 });
    const first = Array.from({ length: 4 }, (_, i) => message(i));
    spool.append(first, true);
    await assert.rejects(
      spool.replayOldest(async (msgs, shipped) => {
        shipped([msgs[0]!, msgs[2]!]);
        throw new Error('broker gone');
      }),
    );
    // Past the limit: the oldest segment goes, with the two messages it had not shipped.
    for (let i = 10; spool.stats.droppedMessages === 0; i++) spool.append([message(i)]);
    assert.equal(spool.stats.droppedMessages, 2);
    assert.equal(spool.stats.droppedRecords, decodeFrame(first[1]!.value).records.length + decodeFrame(first[3]!.value).records.length);
  });

  it('keeps messages appended alone in one segment of their own, whatever the segment size', async () => {
    const dir = tempDir();
    const spool = new Spool({ dir, maxBytes: 1 << 20, segmentBytes: 4096 });
    spool.append([message(0)]);
    const alone = Array.from({ length: 40 }, (_, i) => message(i + 1));
    spool.append(alone, true);
    spool.append([message(50)]);
    assert.equal(readdirSync(dir).length, 3);
    const offered: SpooledMessage[][] = [];
    while (await spool.replayOldest(async (msgs) => void offered.push(msgs)));
    assert.deepEqual(offered, [[message(0)], alone, [message(50)]]);
  });

  it('drops the oldest messages beyond the size limit and counts them and their records', async () => {
    const spool = new Spool({ dir: tempDir(), maxBytes: 16 * 1024, segmentBytes: 4096 });
    const sent = Array.from({ length: 200 }, (_, i) => message(i));
    for (const m of sent) spool.append([m]);
    assert.ok(spool.stats.bytes <= 16 * 1024 + 4096);
    assert.ok(spool.stats.droppedMessages > 0);
    const kept = await replayAll(spool);
    // What was kept is exactly the newest messages; what was dropped is exactly counted.
    assert.deepEqual(kept, sent.slice(sent.length - kept.length));
    assert.equal(spool.stats.droppedMessages + kept.length, sent.length);
    const records = (ms: SpooledMessage[]) => ms.reduce((n, m) => n + decodeFrame(m.value).records.length, 0);
    assert.equal(spool.stats.droppedRecords, records(sent.slice(0, sent.length - kept.length)));
  });

  it('drops and counts the messages a full disk refuses, keeps the rest readable, and goes on when space returns', async () => {
    const dir = tempDir();
    // A disk of its own, 64 KiB, so the test fills it and nothing else.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'meshlens-spool-test', dir]);
    try {
      const spool = new Spool({ dir, maxBytes: 10 * 1024 * 1024 });
      const sent = Array.from({ length: 300 }, (_, i) => message(i));
      const refused: SpooledMessage[] = [];
      for (const m of sent) {
        const before = spool.stats.writeErrors;
        spool.append([m]);
        if (spool.stats.writeErrors > before) refused.push(m);
      }
      assert.ok(refused.length > 0, 'the disk should have filled');
      assert.equal(spool.stats.droppedMessages, refused.length);
      const records = (ms: SpooledMessage[]) => ms.reduce((n, m) => n + decodeFrame(m.value).records.length, 0);
      assert.equal(spool.stats.droppedRecords, records(refused));
      assert.deepEqual(await replayAll(spool), sent.filter((m) => !refused.includes(m)), 'every message kept, readable, in order');
      assert.equal(spool.stats.corruptEntries, 0, 'no torn entry left behind');
      spool.append([message(500)]);
      assert.deepEqual(await replayAll(spool), [message(500)]);
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  it('cuts off a torn write at the end of a segment, counts it, and keeps what came before', async () => {
    const dir = tempDir();
    const spool = new Spool({ dir, maxBytes: 1 << 20 });
    spool.append([message(1), message(2)]);
    const [seg] = readdirSync(dir);
    appendFileSync(join(dir, seg!), Buffer.from([200, 0, 0, 0, 1, 2, 3]));
    const reopened = new Spool({ dir, maxBytes: 1 << 20 });
    // A failed replay reads the segment again next time; the torn tail is still one.
    await assert.rejects(reopened.replayOldest(() => Promise.reject(new Error('broker away'))));
    assert.deepEqual(await replayAll(reopened), [message(1), message(2)]);
    assert.equal(reopened.stats.corruptEntries, 1);
  });
});
