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

const FNV_OFFSET = 0x811c9dc5;

function fnv(h: number, unit: number): number {
  return Math.imul(h ^ unit, 0x01000193);
}

/** `h` advanced over `endpointText(e)`'s units. */
function fnvEndpoint(h: number, e: Endpoint): number {
  const v6 = e.ip.includes(':');
  if (v6) h = fnv(h, 0x5b); // [
  for (let i = 0; i < e.ip.length; i++) h = fnv(h, e.ip.charCodeAt(i));
  if (v6) h = fnv(h, 0x5d); // ]
  h = fnv(h, 0x3a); // :
  const port = e.port;
  if (!(port >= 0 && port <= 0xffff && Math.floor(port) === port)) {
    const text = String(port);
    for (let i = 0; i < text.length; i++) h = fnv(h, text.charCodeAt(i));
    return h;
  }
  let unit = 1;
  while (unit * 10 <= port) unit *= 10;
  for (; unit >= 1; unit /= 10) h = fnv(h, 0x30 + (Math.floor(port / unit) % 10));
  return h;
}

/**
 * The partition of `connectionKey(a, b)`: FNV-1a over the key's UTF-16 units, made without
 * the key's strings (the agent asks it for every record it ships, and those strings were a
 * tenth of what a sweep allocated). FNV-1a: cheap, stable across processes and versions, and
 * spread well enough. Not kafkajs' murmur2 on purpose: we choose the partition ourselves so
 * that one message can carry many connections of one partition.
 */
export function connectionPartition(a: Endpoint, b: Endpoint, partitions: number): number {
  const aFirst = compareEndpoints(a, b) <= 0;
  let h = fnvEndpoint(FNV_OFFSET, aFirst ? a : b);
  h = fnv(h, 0x2d); // -
  h = fnvEndpoint(h, aFirst ? b : a);
  return (h >>> 0) % partitions;
}
