/**
 * Records -> one frame per (topic, partition): the partition comes from the canonical
 * connection key, so a connection's client and server records, sent by different agents,
 * land on one partition where one analyzer instance can match them.
 */
import { TcpFrameBuilder, Topics, connectionKey, encodeFrame, partitionOf, type RecordOf, type RecordTypeName, type TcpRecord } from '@meshlens/schemas';
import type { SpooledMessage } from './spool.js';

type AgentRecordType = Exclude<RecordTypeName, 'metadata'>;

/**
 * Records per frame at most: a message stays far below the broker's per-batch limit
 * (1 MiB by default) however many records a busy node makes in a slot; one over the limit
 * would be refused for good.
 */
const FRAME_RECORDS = 4096;

const keyOf: { [T in AgentRecordType]: (r: RecordOf[T]) => string } = {
  tcp: (r) => connectionKey(r.local, r.remote),
  tcp_event: (r) => connectionKey(r.local, r.remote),
  dns: (r) => connectionKey(r.client, r.server),
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
    const p = partitionOf(keyOf[type](r), partitions);
    const g = groups.get(p);
    if (g) g.push(r);
    else groups.set(p, [r]);
  }
  return [...groups].flatMap(([partition, rs]) =>
    Array.from({ length: Math.ceil(rs.length / maxRecords) }, (_, i) => ({
      topic,
      partition,
      value: encodeFrame(type, rs.slice(i * maxRecords, (i + 1) * maxRecords)),
    })),
  );
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
    const partition = partitionOf(keyOf.tcp(r), this.partitions);
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
