import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectionKey, connectionPartition, sampleDnsRecords, sampleTcpRecords, seededRandom, type Endpoint } from '../src/index.js';

/** FNV-1a (32 bit) over a string's UTF-16 units, as the textbook states it: the oracle. */
function fnv1aPartition(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % partitions;
}

describe('connection partition', () => {
  it("is the partition of the connection key's text, for every address form and port", () => {
    const rnd = seededRandom(7);
    const hex = () => Math.floor(rnd() * 0x10000).toString(16);
    const ips = [
      '10.0.0.1',
      '10.0.0.10',
      '127.0.0.1',
      '::1',
      '::ffff:10.0.0.1',
      'fd00::1',
      `fd00:${hex()}:${hex()}::${hex()}`,
      `2001:db8:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}`,
    ];
    // The last three are no port a socket has: the key still spells them as String() does.
    const ports = [0, 1, 9, 10, 53, 99, 100, 443, 999, 1000, 8080, 9999, 10000, 32768, 65535, Math.floor(rnd() * 65536), -1, 70000, 1.5];
    const ends: Endpoint[] = ips.flatMap((ip) => ports.map((port) => ({ ip, port })));
    ends.push(...sampleTcpRecords(200).flatMap((r) => [r.local, r.remote]), ...sampleDnsRecords(50).flatMap((r) => [r.client, r.server]));
    let pairs = 0;
    const seen = new Set<number>();
    for (let i = 0; i < ends.length; i++) {
      for (const j of [i, (i * 7 + 3) % ends.length, (i * 13 + 5) % ends.length]) {
        const [a, b] = [ends[i]!, ends[j]!];
        for (const n of [1, 12, 64, 1000]) {
          const p = connectionPartition(a, b, n);
          assert.equal(p, fnv1aPartition(connectionKey(a, b), n), `${connectionKey(a, b)} over ${n}`);
          assert.equal(connectionPartition(b, a, n), p, 'either end first');
          if (n === 1000) seen.add(p);
        }
        pairs++;
      }
    }
    assert.ok(pairs > 1000);
    assert.ok(seen.size > 500, `spread: ${seen.size} of 1000 partitions used`);
  });
});
