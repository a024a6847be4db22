/**
 * One Kafka message in, valid records and dead letters out. A bad frame or a bad record
 * is data, not an exception: it is handed to the dead-letter topic with its reason and the
 * partition moves on.
 */
import type { IHeaders } from 'kafkajs';
import { FrameError, decodeFrame, recordSchemas, type InvalidRecord, type RecordOf, type RecordTypeName } from '@meshlens/schemas';
import { certainlyValidTcpRecord } from './fast-validate.js';

export interface DeadLetter {
  kind: 'frame' | 'record';
  /** A short class for metrics (frame error code, or the failing field). */
  reason: string;
  /** The whole explanation, for the header. */
  detail: string;
  value: Buffer;
  recordIndex: number | null;
}

export interface Ingested<T extends RecordTypeName> {
  records: RecordOf[T][];
  dead: DeadLetter[];
}

export function ingest<T extends RecordTypeName>(expected: T, value: Buffer | null): Ingested<T> {
  if (value === null) return { records: [], dead: [frameDeadLetter('empty', 'message has no value', Buffer.alloc(0))] };
  try {
    const fast = expected === 'tcp';
    const frame = decodeFrame(value, { validate: !fast });
    if (frame.header.type !== expected) {
      return { records: [], dead: [frameDeadLetter('wrong_record_type', `${frame.header.type} records on a topic of ${expected} records`, value)] };
    }
    const { records, invalid } = fast ? validateTcp(frame.records) : { records: frame.records, invalid: frame.invalid };
    return {
      records: records as RecordOf[T][],
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

/** The fast check first; zod decides (and explains) whatever the fast check does not accept outright. */
function validateTcp(decoded: unknown[]): { records: unknown[]; invalid: InvalidRecord[] } {
  const records: unknown[] = [];
  const invalid: InvalidRecord[] = [];
  for (let i = 0; i < decoded.length; i++) {
    const r = decoded[i];
    if (certainlyValidTcpRecord(r)) {
      records.push(r);
      continue;
    }
    const parsed = recordSchemas.tcp.safeParse(r);
    if (parsed.success) {
      records.push(r);
    } else {
      const issue = parsed.error.issues[0];
      invalid.push({ index: i, reason: `tcp record ${i}: ${issue ? `${issue.path.join('.') || '(record)'}: ${issue.message}` : 'invalid'}`, record: r });
    }
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
