import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compress } from 'zstd-napi';
import {
  FRAME_HEADER_BYTES,
  FrameError,
  decodeFrame,
  encodeFrame,
  readFrameHeader,
  sampleDnsRecords,
  sampleTcpEvents,
  sampleTcpRecords,
  type FrameErrorCode,
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
