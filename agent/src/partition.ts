/**
 * Records -> one frame per (topic, partition): the partition comes from the canonical
 * connection key, so a connection's client and server records, sent by different agents,
 * land on one partition where one analyzer instance can match them.
 */
import { Topics, connectionKey, encodeFrame, partitionOf, type RecordOf, type RecordTypeName } from '@meshlens/schemas';
import type { SpooledMessage } from './spool.js';

type AgentRecordType = Exclude<RecordTypeName, 'metadata'>;

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
): SpooledMessage[] {
  const groups = new Map<number, RecordOf[T][]>();
  for (const r of records) {
    const p = partitionOf(keyOf[type](r), partitions);
    const g = groups.get(p);
    if (g) g.push(r);
    else groups.set(p, [r]);
  }
  return [...groups].map(([partition, rs]) => ({ topic, partition, value: encodeFrame(type, rs) }));
}
