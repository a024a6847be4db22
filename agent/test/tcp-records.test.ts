// What the sweep makes of a socket's successive readings, for translation through NAT: the
// NAT table is stood in for by a function whose answers the test changes between sweeps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SocketStats } from '@meshlens/bpf';
import type { Endpoint, Owner } from '@meshlens/schemas';
import { TcpSweeper } from '../src/tcp-records.js';
import { socket } from './support/socket-stats.js';

const owner: Owner = { node: 'n1', netns: 4026531840, cgroup_id: 77, pid: 1234, comm: 'curl', container_id: null, pod_uid: null };
const backend = { ip: '10.244.1.7', port: 8080 };

describe('tcp records through NAT', () => {
  it('keeps a client socket\'s translation for its whole life, and asks again while it has none', () => {
    const sweeper = new TcpSweeper((p) => p >= 32768);
    let known = new Map<number, Endpoint>();
    let slot = 1_763_600_000_000;
    const sweep = (readings: SocketStats[]) => {
      slot += 10_000;
      const ctx = { slotStartMs: slot, slotMs: 10_000, ownerOf: () => owner, toEpochMs: (us: number) => us / 1000, translate: (s: SocketStats) => known.get(s.cookie) ?? null };
      return new Map([...sweeper.sweep(readings, ctx)].map(({ record }) => [record.sock_cookie, record]));
    };
    const service = { ip: '10.96.0.10', port: 80 };
    // 1: translated when first read; 2: its entry not read yet; 3: a server socket.
    known = new Map([[1, backend], [3, backend]]);
    let r = sweep([socket({ cookie: 1 }), socket({ cookie: 2, local: { ip: '10.0.0.1', port: 40001 } }), socket({ cookie: 3, role: 'server' })]);
    assert.deepEqual([r.get(1)?.remote, r.get(1)?.remote_orig], [backend, service]);
    assert.deepEqual([r.get(2)?.remote, r.get(2)?.remote_orig], [service, null]);
    assert.deepEqual([r.get(3)?.remote, r.get(3)?.remote_orig], [service, null], 'a server socket is never translated');

    // The table has forgotten 1 (a connection outlives its retention) and learnt 2.
    known = new Map([[2, backend]]);
    r = sweep([socket({ cookie: 1, bytesSent: 200 }), socket({ cookie: 2, local: { ip: '10.0.0.1', port: 40001 }, bytesSent: 200 })]);
    assert.deepEqual([r.get(1)?.remote, r.get(1)?.remote_orig], [backend, service]);
    assert.deepEqual([r.get(2)?.remote, r.get(2)?.remote_orig], [backend, service]);

    known = new Map();
    r = sweep([socket({ cookie: 1, bytesSent: 300, closed: true, closedUs: 5_000 }), socket({ cookie: 2, local: { ip: '10.0.0.1', port: 40001 }, bytesSent: 300 })]);
    assert.deepEqual([r.get(1)?.remote, r.get(1)?.closed], [backend, true], 'the closing record too');
    assert.deepEqual(r.get(2)?.remote, backend);
    // A new socket under a cookie the closed one had (the kernel never reuses them, but the
    // reading must have gone with the close).
    r = sweep([socket({ cookie: 1, bytesSent: 10 })]);
    assert.deepEqual([r.get(1)?.remote, r.get(1)?.remote_orig, r.get(1)?.opened], [service, null, true]);
  });
});
