/**
 * The frame: what one Kafka message value carries.
 *
 *   offset size
 *   0      4    magic "MLNS"
 *   4      1    format version: 1 = msgpack payload; 2 = tcp records in the binary form of
 *                tcp-codec.ts (tcp frames only). Decoders read both.
 *   5      1    record type (RecordType)
 *   6      2    flags, must be 0 (reserved for other compressions)
 *   8      4    record count, u32 LE
 *   12     4    raw (uncompressed) payload length, u32 LE
 *   16     4    compressed payload length, u32 LE
 *   20     ...  zstd(msgpack(array of records)), or zstd(tcp-codec payload) in version 2
 *
 * msgpack with record structures keeps every field name once per frame instead of once
 * per record, stays schemaless (the zod schemas remain the only definition), and decodes
 * faster than JSON.parse; bench/codec.bench.ts has the numbers behind that choice. Tcp
 * records, the analyzer's bulk, have their own binary form (version 2) that decodes several
 * times faster and shares repeated strings and owners; a tcp record that form cannot hold
 * exactly goes out as version 1, so the analyzer still validates and dead-letters it.
 * Every length is checked before anything is allocated, so a hostile or truncated frame
 * costs an error, never a crash or an unbounded buffer.
 */
import { Packr } from 'msgpackr';
import { compress, decompress } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import { RecordType, recordSchemas, type RecordOf, type RecordTypeName, type TcpRecord } from './records.js';
import { TcpCodecError, TcpPayloadBuilder, decodeTcpPayload, encodeTcpPayload, type TcpPayloadReader } from './tcp-codec.js';

export type { TcpPayloadReader } from './tcp-codec.js';
export { encodeSparseHistogram, readSparseHistogram } from './tcp-codec.js';

export const FRAME_MAGIC = 0x534e4c4d; // "MLNS" read as u32 LE
export const FRAME_VERSION = 2;
/** Oldest version a decoder of this build still reads: agents of the previous release send it. */
export const FRAME_MIN_VERSION = 1;
/** The version whose tcp payload is tcp-codec.ts's binary form. */
const TCP_BINARY_VERSION = 2;
export const FRAME_HEADER_BYTES = 20;
export const DEFAULT_MAX_RAW_BYTES = 64 * 1024 * 1024;
const ZSTD_LEVEL = 3;
// binding.js is CommonJS behind node-gyp-build, so ESM sees only its default export.
const { findFrameCompressedSize, getFrameContentSize } = zstdBinding;

export type FrameErrorCode =
  | 'truncated'
  | 'bad_magic'
  | 'unsupported_version'
  | 'unknown_record_type'
  | 'bad_flags'
  | 'oversized'
  | 'length_mismatch'
  | 'corrupt_payload'
  | 'count_mismatch';

export class FrameError extends Error {
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(`frame ${code}: ${message}`);
    this.name = 'FrameError';
  }
}

const typeByCode = new Map<number, RecordTypeName>(
  Object.entries(RecordType).map(([name, code]) => [code, name as RecordTypeName]),
);

// One Packr per direction: useRecords writes each object shape once per pack() call, and
// with no shared structures every frame is self-describing.
const packr = new Packr({ useRecords: true, int64AsType: 'number' });
const unpackr = new Packr({ useRecords: true, int64AsType: 'number' });

export interface FrameHeader {
  version: number;
  type: RecordTypeName;
  count: number;
  rawBytes: number;
  payloadBytes: number;
}

export function encodeFrame<T extends RecordTypeName>(type: T, records: readonly RecordOf[T][]): Buffer {
  const binary = type === 'tcp' ? encodeTcpPayload(records as readonly TcpRecord[]) : null;
  return frameOf(type, binary ? TCP_BINARY_VERSION : 1, records.length, binary ?? packr.pack(records));
}

function frameOf(type: RecordTypeName, version: number, count: number, raw: Buffer): Buffer {
  const payload = compress(raw, { compressionLevel: ZSTD_LEVEL });
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32LE(FRAME_MAGIC, 0);
  frame.writeUInt8(version, 4);
  frame.writeUInt8(RecordType[type], 5);
  frame.writeUInt16LE(0, 6);
  frame.writeUInt32LE(count, 8);
  frame.writeUInt32LE(raw.length, 12);
  frame.writeUInt32LE(payload.length, 16);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * A version-2 tcp frame built a record at a time: what it holds is the records' bytes, not
 * the records. A record the binary form cannot hold is kept as it is and goes out in a
 * version-1 frame of its own beside it (encodeFrame would send the whole batch as version
 * 1), so it still reaches the analyzer's validation and dead-letter reason.
 */
export class TcpFrameBuilder {
  private readonly payload = new TcpPayloadBuilder();
  private odd: TcpRecord[] = [];

  /** Records added since the last finish(). */
  get count(): number {
    return this.payload.count + this.odd.length;
  }

  add(r: TcpRecord): void {
    if (!this.payload.add(r)) this.odd.push(r);
  }

  /** The frames of the records added since the last call (none if none), and a fresh start. */
  finish(): Buffer[] {
    if (this.count === 0) return [];
    const frames: Buffer[] = [];
    if (this.payload.count) frames.push(frameOf('tcp', TCP_BINARY_VERSION, this.payload.count, this.payload.finish()));
    if (this.odd.length) frames.push(frameOf('tcp', 1, this.odd.length, packr.pack(this.odd)));
    this.odd = [];
    return frames;
  }
}

export function readFrameHeader(frame: Uint8Array, maxRawBytes = DEFAULT_MAX_RAW_BYTES): FrameHeader {
  if (frame.length < FRAME_HEADER_BYTES) {
    throw new FrameError('truncated', `${frame.length} bytes is shorter than the ${FRAME_HEADER_BYTES}-byte header`);
  }
  const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const magic = view.readUInt32LE(0);
  if (magic !== FRAME_MAGIC) throw new FrameError('bad_magic', `magic 0x${magic.toString(16)} is not a meshlens frame`);
  const version = view.readUInt8(4);
  if (version < FRAME_MIN_VERSION || version > FRAME_VERSION) {
    throw new FrameError('unsupported_version', `version ${version}; this build reads ${FRAME_MIN_VERSION}..${FRAME_VERSION}`);
  }
  const code = view.readUInt8(5);
  const type = typeByCode.get(code);
  if (type === undefined) throw new FrameError('unknown_record_type', `record type ${code}`);
  if (version === TCP_BINARY_VERSION && type !== 'tcp') throw new FrameError('unsupported_version', `version ${version} is for tcp records, not ${type}`);
  const flags = view.readUInt16LE(6);
  if (flags !== 0) throw new FrameError('bad_flags', `flags 0x${flags.toString(16)}`);
  const count = view.readUInt32LE(8);
  const rawBytes = view.readUInt32LE(12);
  const payloadBytes = view.readUInt32LE(16);
  if (rawBytes > maxRawBytes) throw new FrameError('oversized', `payload of ${rawBytes} bytes exceeds the ${maxRawBytes}-byte limit`);
  if (frame.length - FRAME_HEADER_BYTES !== payloadBytes) {
    const kind = frame.length - FRAME_HEADER_BYTES < payloadBytes ? 'truncated' : 'length_mismatch';
    throw new FrameError(kind, `header says ${payloadBytes} payload bytes, frame has ${frame.length - FRAME_HEADER_BYTES}`);
  }
  return { version, type, count, rawBytes, payloadBytes };
}

export interface DecodeOptions {
  maxRawBytes?: number;
  /** Validate every record against its zod schema (default true). */
  validate?: boolean;
  /**
   * What each record of a version-2 tcp payload becomes, read from the reader positioned on
   * it (default: a TcpRecord): a consumer with its own form skips making the TcpRecord. With
   * `validate`, the zod schema checks whatever this returns.
   */
  tcpRecord?: (r: TcpPayloadReader) => unknown;
}

export interface DecodedFrame<T extends RecordTypeName = RecordTypeName> {
  header: FrameHeader & { type: T };
  records: RecordOf[T][];
  invalid: InvalidRecord[];
}

export interface InvalidRecord {
  index: number;
  reason: string;
  record: unknown;
}

export function decodeFrame(frame: Uint8Array, opts: DecodeOptions = {}): DecodedFrame {
  const header = readFrameHeader(frame, opts.maxRawBytes);
  const payload = frame.subarray(FRAME_HEADER_BYTES);
  let raw: Buffer;
  try {
    // Check the zstd frame's own size fields before decompressing: zstd-napi would
    // otherwise allocate whatever content size a hostile frame claims.
    if (findFrameCompressedSize(payload) !== payload.length) throw new Error('trailing bytes after the zstd frame');
    const contentSize = getFrameContentSize(payload);
    if (contentSize !== header.rawBytes) throw new Error(`zstd content size ${contentSize} != header ${header.rawBytes}`);
    raw = decompress(payload);
  } catch (err) {
    throw new FrameError('corrupt_payload', `zstd: ${(err as Error).message}`);
  }
  let decoded: unknown;
  try {
    decoded = header.version === TCP_BINARY_VERSION ? decodeTcpPayload<unknown>(raw, header.count, opts.tcpRecord) : unpackr.unpack(raw);
  } catch (err) {
    throw new FrameError('corrupt_payload', `${err instanceof TcpCodecError ? 'tcp payload' : 'msgpack'}: ${(err as Error).message}`);
  }
  if (!Array.isArray(decoded)) throw new FrameError('corrupt_payload', 'payload is not an array of records');
  if (decoded.length !== header.count) {
    throw new FrameError('count_mismatch', `header says ${header.count} records, payload has ${decoded.length}`);
  }
  if (opts.validate === false) return { header, records: decoded as RecordOf[RecordTypeName][], invalid: [] };
  // One bad record must not cost the good ones beside it: they are returned, and the bad
  // ones are handed back with the reason so the caller can dead-letter and count them.
  const schema = recordSchemas[header.type];
  const records: RecordOf[RecordTypeName][] = [];
  const invalid: InvalidRecord[] = [];
  for (let i = 0; i < decoded.length; i++) {
    const r = schema.safeParse(decoded[i]);
    if (r.success) {
      records.push(decoded[i] as RecordOf[RecordTypeName]);
    } else {
      const issue = r.error.issues[0];
      const where = issue ? `${issue.path.join('.') || '(record)'}: ${issue.message}` : 'invalid';
      invalid.push({ index: i, reason: `${header.type} record ${i}: ${where}`, record: decoded[i] });
    }
  }
  return { header, records, invalid };
}
