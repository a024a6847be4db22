/**
 * Records -> one frame per (topic, partition): the partition comes from the canonical
 * connection key, so a connection's client and server records, sent by different agents,
 * land on one partition where one analyzer instance can match them.
 */
import { TcpFrameBuilder, Topics, connectionPartition, encodeFrame, type RecordOf, type RecordTypeName, type TcpRecord } from '@meshlens/schemas';
import type { SpooledMessage } from './spool.js';

type AgentRecordType = Exclude<RecordTypeName, 'metadata'>;

/** Records per frame at most, so that one message is never a whole busy slot. */
const FRAME_RECORDS = 4096;

/**
 * Bytes per framed message at most: below the broker's default limit on a batch (1 MiB),
 * and what the shipper sends in one request, alone if need be. A message over the broker's
 * limit would be refused for good. tcp frames (fixed-size binary records) stay well under it
 * at FRAME_RECORDS; dns and tcp_event records carry names and answer lists of any length.
 */
const FRAME_BYTES = 512 * 1024;

/** The partition of a record's canonical connection key. */
const partitionOfRecord: { [T in AgentRecordType]: (r: RecordOf[T], partitions: number) => number } = {
  tcp: (r, n) => connectionPartition(r.local, r.remote, n),
  tcp_event: (r, n) => connectionPartition(r.local, r.remote, n),
  dns: (r, n) => connectionPartition(r.client, r.server, n),
};

export function framesByPartition<T extends AgentRecordType>(
  type: T,
  records: readonly RecordOf[T][],
  partitions: number,
  topic: string = Topics[type],
  maxRecords = FRAME_RECORDS,
): SpooledMessage[] {
  const groups = new Map<number, RecordOf[T][]>();
  for (const r of records) {
    const p = partitionOfRecord[type](r, partitions);
    const g = groups.get(p);
    if (g) g.push(r);
    else groups.set(p, [r]);
  }
  const out: SpooledMessage[] = [];
  // Halved until it fits; a single record too large for it goes alone (and fails alone).
  const frame = (partition: number, rs: RecordOf[T][]): void => {
    const value = encodeFrame(type, rs);
    if (value.length <= FRAME_BYTES || rs.length === 1) out.push({ topic, partition, value });
    else {
      frame(partition, rs.slice(0, rs.length >> 1));
      frame(partition, rs.slice(rs.length >> 1));
    }
  };
  for (const [partition, rs] of groups) for (let i = 0; i < rs.length; i += maxRecords) frame(partition, rs.slice(i, i + maxRecords));
  return out;
}

/**
 * tcp records -> frames per partition, a record at a time as a sweep makes them: the sweep
 * holds their encoded bytes, not the records (held for a whole sweep, records were promoted
 * to V8's old generation and collecting them cost more CPU than the sweep; bench/RESULTS.md,
 * issue 4). A partition's frame is closed early at `maxRecords`, which bounds a message.
 */
export class TcpFrames {
  private readonly builders = new Map<number, TcpFrameBuilder>();

  constructor(
    private readonly partitions: number,
    private readonly maxRecords = FRAME_RECORDS,
    private readonly topic: string = Topics.tcp,
  ) {}

  /** Adds `r`; returns its partition's message if that frame is now full, else null. */
  add(r: TcpRecord): SpooledMessage[] | null {
    const partition = partitionOfRecord.tcp(r, this.partitions);
    let b = this.builders.get(partition);
    if (!b) this.builders.set(partition, (b = new TcpFrameBuilder()));
    b.add(r);
    return b.count >= this.maxRecords ? this.messages(partition, b) : null;
  }

  /** One message per partition for everything added since the last call. */
  take(): SpooledMessage[] {
    return [...this.builders].flatMap(([partition, b]) => this.messages(partition, b));
  }

  private messages(partition: number, b: TcpFrameBuilder): SpooledMessage[] {
    return b.finish().map((value) => ({ topic: this.topic, partition, value }));
  }
}
