/**
 * The canonical connection key: both endpoints after NAT, sorted, so the client's and the
 * server's record of one connection produce the same key and therefore the same Kafka
 * partition, where one analyzer instance can match them.
 */
import type { Endpoint } from './records.js';

function endpointText(e: Endpoint): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

export function connectionKey(a: Endpoint, b: Endpoint): string {
  return compareEndpoints(a, b) <= 0 ? `${endpointText(a)}-${endpointText(b)}` : `${endpointText(b)}-${endpointText(a)}`;
}

/**
 * FNV-1a over the key's UTF-16 units: cheap, stable across processes and versions, and
 * spread well enough for partitioning. Not kafkajs' murmur2 on purpose: we choose the
 * partition ourselves so that one message can carry many connections of one partition.
 */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
