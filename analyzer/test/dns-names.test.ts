// The DNS-learnt names stay within their bound: least recently used addresses go first,
// every eviction is reported, and a name in use survives names learnt later.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sampleDnsRecords, type DnsRecord } from '@meshlens/schemas';
import { DnsNames } from '../src/index.js';

const answer = (qname: string, ip: string, tsMs: number): DnsRecord => ({ ...sampleDnsRecords(1, 7, tsMs)[0]!, rcode: 0, timed_out: false, qname, answers: [ip] });

describe('DnsNames', () => {
  it('evicts the least recently learnt or looked-up address past its bound, and counts each eviction', () => {
    let evicted = 0;
    const names = new DnsNames(2, () => evicted++);
    names.learn(answer('a.example.', '203.0.113.1', 1000));
    names.learn(answer('b.example.', '203.0.113.2', 1000));
    // Looking a up makes b the least recently used.
    assert.equal(names.nameOf('203.0.113.1', 2000), 'a.example');
    names.learn(answer('c.example.', '203.0.113.3', 1000));
    assert.equal(evicted, 1);
    assert.equal(names.size, 2);
    assert.equal(names.nameOf('203.0.113.2', 2000), null);
    assert.equal(names.nameOf('203.0.113.1', 2000), 'a.example');
    assert.equal(names.nameOf('203.0.113.3', 2000), 'c.example');

    // A new name for a known address is no new entry: nothing more is evicted.
    names.learn(answer('a2.example.', '203.0.113.1', 1500));
    assert.equal(evicted, 1);
    assert.equal(names.nameOf('203.0.113.1', 2000), 'a2.example');
    assert.equal(names.nameOf('203.0.113.1', 1200), 'a.example');
  });
});
