/**
 * One Kafka message in, valid records and dead letters out. A bad frame or a bad record
 * is data, not an exception: it is handed to the dead-letter topic with its reason and the
 * partition moves on.
 */
import type { IHeaders } from 'kafkajs';
import { FrameError, decodeFrame, recordSchemas, type InvalidRecord, type RecordOf, type RecordTypeName, type TcpPayloadReader, type TcpRecord } from '@meshlens/schemas';
import { certainlyValidTcpRecord, TcpPayloadCheck } from './fast-validate.js';
import { HeldSide } from './held-side.js';

export interface DeadLetter {
  kind: 'frame' | 'record';
  /** A short class for metrics (frame error code, or the failing field). */
  reason: string;
  /** The whole explanation, for the header. */
  detail: string;
  value: Buffer;
  recordIndex: number | null;
}

/** What the analyzer works on: tcp records as the matcher holds them, every other type as decoded. */
export type IngestedRecord<T extends RecordTypeName> = T extends 'tcp' ? HeldSide : RecordOf[T];

export interface Ingested<T extends RecordTypeName> {
  records: IngestedRecord<T>[];
  dead: DeadLetter[];
}

export function ingest<T extends RecordTypeName>(expected: T, value: Buffer | null): Ingested<T> {
  if (value === null) return { records: [], dead: [frameDeadLetter('empty', 'message has no value', Buffer.alloc(0))] };
  try {
    const fast = expected === 'tcp';
    const reading = fast ? new TcpReading() : null;
    const frame = decodeFrame(value, { validate: !fast, tcpRecord: reading?.read });
    if (frame.header.type !== expected) {
      return { records: [], dead: [frameDeadLetter('wrong_record_type', `${frame.header.type} records on a topic of ${expected} records`, value)] };
    }
    const { records, invalid } = reading ? validateTcp(frame.records, reading.held) : { records: frame.records, invalid: frame.invalid };
    return {
      records: records as IngestedRecord<T>[],
      dead: invalid.map((bad) => ({
        kind: 'record',
        reason: /record \d+: ([^:]*)/.exec(bad.reason)?.[1] ?? 'invalid',
        detail: bad.reason,
        value: Buffer.from(JSON.stringify(bad.record) ?? 'null'),
        recordIndex: bad.index,
      })),
    };
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    return { records: [], dead: [{ kind: 'frame', reason: err.code, detail: err.message, value, recordIndex: null }] };
  }
}

/**
 * A version-2 tcp record the fast check accepts is read straight into its held form; any
 * other becomes a TcpRecord for validateTcp (and zod) to decide on. A held side is a plain
 * object, so which records were read held is kept beside them (a version-1 frame's records
 * are never read here: none is held).
 */
class TcpReading {
  private readonly check = new TcpPayloadCheck();
  /** By record index: read held. */
  readonly held: boolean[] = [];

  readonly read = (r: TcpPayloadReader): HeldSide | TcpRecord => {
    const ok = this.check.valid(r);
    this.held.push(ok);
    return ok ? HeldSide.from(r) : r.record();
  };
}

/** The fast check first (already done for sides read held); zod decides (and explains) whatever the fast check does not accept outright. */
function validateTcp(decoded: unknown[], held: readonly boolean[]): { records: HeldSide[]; invalid: InvalidRecord[] } {
  const records: HeldSide[] = [];
  const invalid: InvalidRecord[] = [];
  for (let i = 0; i < decoded.length; i++) {
    const r = decoded[i];
    if (held[i] === true) {
      records.push(r as HeldSide);
      continue;
    }
    const parsed = certainlyValidTcpRecord(r) ? null : recordSchemas.tcp.safeParse(r);
    if (parsed === null || parsed.success) {
      records.push(HeldSide.of(r as TcpRecord));
      continue;
    }
    const issue = parsed.error.issues[0];
    invalid.push({ index: i, reason: `tcp record ${i}: ${issue ? `${issue.path.join('.') || '(record)'}: ${issue.message}` : 'invalid'}`, record: r });
  }
  return { records, invalid };
}

/** Same wording as FrameError's, so one reason format covers every frame-level failure. */
function frameDeadLetter(reason: string, message: string, value: Buffer): DeadLetter {
  return { kind: 'frame', reason, detail: `frame ${reason}: ${message}`, value, recordIndex: null };
}

export function deadLetterHeaders(d: DeadLetter, source: { topic: string; partition: number; offset: string }): IHeaders {
  const h: IHeaders = {
    'meshlens-kind': d.kind,
    'meshlens-reason': d.detail,
    'meshlens-source-topic': source.topic,
    'meshlens-source-partition': String(source.partition),
    'meshlens-source-offset': source.offset,
  };
  if (d.recordIndex !== null) h['meshlens-record-index'] = String(d.recordIndex);
  return h;
}
