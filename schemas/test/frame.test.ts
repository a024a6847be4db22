import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { compress, decompress } from 'zstd-napi';
import {
  FRAME_HEADER_BYTES,
  FrameError,
  TcpFrameBuilder,
  decodeFrame,
  encodeFrame,
  readFrameHeader,
  sampleDnsRecords,
  sampleTcpEvents,
  sampleTcpRecords,
  seededRandom,
  type FrameErrorCode,
  type TcpRecord,
} from '@meshlens/schemas';

function expectFrameError(fn: () => unknown, code: FrameErrorCode, text: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FrameError, `expected FrameError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, text);
    return true;
  });
}

/** Rewrites header fields of a valid frame, to build frames that lie about themselves. */
function withHeader(frame: Buffer, edit: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(frame);
  edit(copy);
  return copy;
}

describe('frame codec', () => {
  it('round-trips every record type exactly', () => {
    const cases = [
      ['tcp', sampleTcpRecords(500)],
      ['tcp_event', sampleTcpEvents(100)],
      ['dns', sampleDnsRecords(300)],
    ] as const;
    for (const [type, records] of cases) {
      const frame = encodeFrame(type, records);
      const out = decodeFrame(frame);
      assert.equal(out.header.type, type);
      assert.equal(out.header.count, records.length);
      assert.deepEqual(out.invalid, []);
      assert.deepEqual(out.records, records);
    }
  });

  it('round-trips an empty frame', () => {
    const out = decodeFrame(encodeFrame('tcp', []));
    assert.deepEqual(out.records, []);
  });

  it('rejects truncated frames, at every cut point of the header and in the payload', () => {
    const frame = encodeFrame('tcp', sampleTcpRecords(20));
    for (const cut of [0, 1, 4, FRAME_HEADER_BYTES - 1]) {
      expectFrameError(() => decodeFrame(frame.subarray(0, cut)), 'truncated', /shorter than the 20-byte header/);
    }
    expectFrameError(() => decodeFrame(frame.subarray(0, frame.length - 1)), 'truncated', /payload bytes/);
  });

  it('rejects frames that are not ours or not of a version or type it knows', () => {
    const frame = encodeFrame('dns', sampleDnsRecords(3));
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt32LE(0xdeadbeef, 0))), 'bad_magic', /not a meshlens frame/);
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt8(99, 4))), 'unsupported_version', /version 99/);
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt8(0, 4))), 'unsupported_version', /version 0/);
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt8(77, 5))), 'unknown_record_type', /record type 77/);
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt16LE(1, 6))), 'bad_flags', /flags 0x1/);
  });

  it('rejects oversized frames before allocating or decompressing anything', () => {
    const frame = encodeFrame('tcp', sampleTcpRecords(50));
    const header = readFrameHeader(frame);
    expectFrameError(() => decodeFrame(frame, { maxRawBytes: header.rawBytes - 1 }), 'oversized', /exceeds the/);
    // A header that claims a 4 GiB payload is refused by the default limit.
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt32LE(0xffffffff, 12))), 'oversized', /4294967295 bytes/);
  });

  it('rejects a frame whose zstd payload lies about its size or is garbage', () => {
    const frame = encodeFrame('tcp', sampleTcpRecords(50));
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt32LE(readFrameHeader(frame).rawBytes - 1, 12))), 'corrupt_payload', /content size/);
    const garbled = withHeader(frame, (b) => {
      for (let i = FRAME_HEADER_BYTES + 8; i < b.length; i += 7) b[i] = b[i]! ^ 0x5a;
    });
    expectFrameError(() => decodeFrame(garbled), 'corrupt_payload', /zstd|msgpack/);
    const extra = Buffer.concat([frame, Buffer.from([1, 2, 3])]);
    expectFrameError(() => decodeFrame(extra), 'length_mismatch', /payload bytes/);
  });

  it('rejects a payload that is valid zstd but not msgpack records, or has the wrong count', () => {
    const frame = encodeFrame('tcp', sampleTcpRecords(2));
    const notRecords = compress(Buffer.from('{"hello": "world"}'));
    const forged = Buffer.alloc(FRAME_HEADER_BYTES + notRecords.length);
    frame.copy(forged, 0, 0, FRAME_HEADER_BYTES);
    forged.writeUInt32LE(18, 12);
    forged.writeUInt32LE(notRecords.length, 16);
    notRecords.copy(forged, FRAME_HEADER_BYTES);
    expectFrameError(() => decodeFrame(forged), 'corrupt_payload', /.+/);
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt32LE(3, 8))), 'count_mismatch', /3 records, payload has 2/);
  });

  it('returns the good records of a frame and names each bad one with its field', () => {
    const records = sampleTcpRecords(5);
    const bad = structuredClone(records);
    (bad[1] as { local: { ip: string } }).local.ip = 'not-an-ip';
    (bad[3] as { srtt_us: number }).srtt_us = -1;
    const out = decodeFrame(encodeFrame('tcp', bad));
    assert.deepEqual(out.records, [records[0], records[2], records[4]]);
    assert.deepEqual(
      out.invalid.map((x) => [x.index, x.reason]),
      [
        [1, 'tcp record 1: local.ip: not an IP address'],
        [3, 'tcp record 3: srtt_us: Too small: expected number to be >=0'],
      ],
    );
  });
});

/** A frame around `raw` as the header of `like` describes it, with `version` and `count` set. */
function forge(like: Buffer, version: number, count: number, raw: Buffer): Buffer {
  const payload = compress(raw);
  const out = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
  like.copy(out, 0, 0, FRAME_HEADER_BYTES);
  out.writeUInt8(version, 4);
  out.writeUInt32LE(count, 8);
  out.writeUInt32LE(raw.length, 12);
  out.writeUInt32LE(payload.length, 16);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

describe('tcp frames in the binary form (version 2)', () => {
  it('are what encodeFrame sends for tcp records, and decode to the same records as msgpack', () => {
    const records = sampleTcpRecords(300, 7);
    assert.ok(records.some((r) => r.remote_orig === null) && records.some((r) => r.remote_orig !== null));
    const frame = encodeFrame('tcp', records);
    assert.equal(readFrameHeader(frame).version, 2);
    assert.deepEqual(decodeFrame(frame).records, records);
    // The same records as a version-1 frame, which agents of the previous release send.
    const v1 = forge(frame, 1, records.length, new Packr({ useRecords: true }).pack(records));
    assert.deepEqual(decodeFrame(v1).records, records);
    // Other record types keep msgpack: version 1.
    assert.equal(readFrameHeader(encodeFrame('dns', sampleDnsRecords(3))).version, 1);
  });

  it('keep odd but representable values exactly: nulls, empty histograms, non-ASCII, 2^53 - 1', () => {
    const [r] = sampleTcpRecords(1, 8);
    const odd: TcpRecord = {
      ...r!,
      owner: { ...r!.owner, container_id: null, pod_uid: null, comm: 'wörker' },
      local: { ip: '2001:db8::1', port: 0 },
      rtt_hist: { idx: [], cnt: [] },
      bytes_sent: Number.MAX_SAFE_INTEGER,
      sock_cookie: 2 ** 40 + 3,
    };
    const frame = encodeFrame('tcp', [odd]);
    assert.equal(readFrameHeader(frame).version, 2);
    assert.deepEqual(decodeFrame(frame).records, [odd]);
  });

  it('send one owner object per owner, and decode records that share it', () => {
    const records = sampleTcpRecords(100, 9);
    const shared = records.map((r) => ({ ...r, owner: records[0]!.owner }));
    const out = decodeFrame(encodeFrame('tcp', shared)).records as TcpRecord[];
    assert.deepEqual(out, shared);
    assert.ok(out.every((r) => r.owner === out[0]!.owner));
    assert.ok(encodeFrame('tcp', shared).length < encodeFrame('tcp', records).length);
  });

  it('fall back to version 1 for a record the binary form cannot hold, so it is validated and named', () => {
    const records = sampleTcpRecords(3, 10);
    const bad = structuredClone(records) as unknown as Record<string, unknown>[];
    bad[1]!.bytes_sent = 1.5;
    const frame = encodeFrame('tcp', bad as unknown as TcpRecord[]);
    assert.equal(readFrameHeader(frame).version, 1);
    const out = decodeFrame(frame);
    assert.deepEqual(out.records, [records[0], records[2]]);
    assert.deepEqual(out.invalid.map((x) => x.index), [1]);
    // A missing nullable field is not read as null: zod rejects it, so the binary form must not hide it.
    const missing = structuredClone(records) as unknown as Record<string, unknown>[];
    delete missing[2]!.remote_orig;
    const m = encodeFrame('tcp', missing as unknown as TcpRecord[]);
    assert.equal(readFrameHeader(m).version, 1);
    assert.deepEqual(decodeFrame(m).invalid.map((x) => x.index), [2]);
  });

  it('built a record at a time decode to the same records as encodeFrame, and start afresh after finish', () => {
    const records = sampleTcpRecords(300, 14);
    const b = new TcpFrameBuilder();
    for (const r of records) b.add(r);
    assert.equal(b.count, 300);
    const [frame, ...rest] = b.finish();
    assert.equal(rest.length, 0);
    assert.equal(readFrameHeader(frame!).version, 2);
    assert.deepEqual(decodeFrame(frame!).records, decodeFrame(encodeFrame('tcp', records)).records);
    // Owners are written once each, as encodeFrame does.
    const shared = records.map((r) => ({ ...r, owner: records[0]!.owner }));
    for (const r of shared) b.add(r);
    const [again] = b.finish();
    assert.equal(again!.length, encodeFrame('tcp', shared).length);
    assert.deepEqual(decodeFrame(again!).records, shared);
    assert.equal(b.count, 0);
    assert.deepEqual(b.finish(), []);
    // Its buffers are kept from frame to frame: grown by a large frame, shrunk after a small
    // one, every frame decodes to its own records.
    for (const n of [5000, 1, 1, 40]) {
      const batch = sampleTcpRecords(n, 16 + n);
      for (const r of batch) b.add(r);
      const [f] = b.finish();
      assert.deepEqual(decodeFrame(f!).records, batch, `a frame of ${n}`);
    }
  });

  it('built a record at a time send a record the binary form cannot hold in a version-1 frame beside the rest', () => {
    const records = sampleTcpRecords(4, 15);
    const bad = structuredClone(records[1]!) as unknown as Record<string, unknown>;
    // Fails after its owner and endpoints were written: nothing of it may stay in the payload.
    bad.rtt_hist = { idx: [3, 2], cnt: [1, 1] };
    const b = new TcpFrameBuilder();
    for (const r of [records[0]!, bad as unknown as TcpRecord, records[2]!, records[3]!]) b.add(r);
    const frames = b.finish();
    assert.deepEqual(frames.map((f) => readFrameHeader(f).version), [2, 1]);
    assert.deepEqual(decodeFrame(frames[0]!).records, [records[0], records[2], records[3]]);
    const odd = decodeFrame(frames[1]!);
    assert.deepEqual(odd.records, []);
    assert.equal(odd.invalid.length, 1);
  });

  it('are refused for other record types', () => {
    const frame = encodeFrame('dns', sampleDnsRecords(3));
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt8(2, 4))), 'unsupported_version', /version 2 is for tcp records, not dns/);
  });

  it('report a wrong count, trailing bytes and out-of-range indexes and varints as frame errors', () => {
    const frame = encodeFrame('tcp', sampleTcpRecords(5, 11));
    const raw = decompress(frame.subarray(FRAME_HEADER_BYTES));
    expectFrameError(() => decodeFrame(withHeader(frame, (b) => b.writeUInt32LE(6, 8))), 'count_mismatch', /6 records, payload has 5/);
    expectFrameError(() => decodeFrame(forge(frame, 2, 5, Buffer.concat([raw, Buffer.from([0])]))), 'corrupt_payload', /tcp payload: 1 bytes after record 5/);
    // One string, "x", then one owner whose node is string 7.
    expectFrameError(() => decodeFrame(forge(frame, 2, 1, Buffer.from([1, 1, 0x78, 1, 7]))), 'corrupt_payload', /string index 7 of 1/);
    // No strings, then an owner count that is a 10-byte varint.
    expectFrameError(() => decodeFrame(forge(frame, 2, 1, Buffer.from([0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]))), 'corrupt_payload', /varint/);
  });

  it('turn any damaged payload into a frame error or valid-shaped records, never a crash', () => {
    const frame = encodeFrame('tcp', sampleTcpRecords(40, 12));
    const raw = decompress(frame.subarray(FRAME_HEADER_BYTES));
    const rnd = seededRandom(13);
    for (let i = 0; i < 500; i++) {
      const damaged = Buffer.from(raw.subarray(0, i % 5 === 0 ? Math.floor(rnd() * raw.length) : raw.length));
      for (let k = 0; k < 3; k++) damaged[Math.floor(rnd() * damaged.length)] = Math.floor(rnd() * 256);
      try {
        const out = decodeFrame(forge(frame, 2, 40, damaged));
        assert.equal(out.records.length + out.invalid.length, 40);
      } catch (err) {
        assert.ok(err instanceof FrameError, `not a FrameError: ${String(err)}`);
      }
    }
  });
});
