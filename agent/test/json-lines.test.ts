// --output stdout writes tcp records field by field for speed: the text must stay exactly
// what JSON.stringify({ type, ...record }) gives, for every field the schema has.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SocketStats } from '@meshlens/bpf';
import { tcpRecordSchema, type Owner } from '@meshlens/schemas';
import { jsonLine, tcpJsonLine } from '../src/json-lines.js';
import { TcpSweeper } from '../src/tcp-records.js';

function socket(over: Partial<SocketStats>): SocketStats {
  return {
    cookie: 4097, owner: { netns: 4026531840, cgroupId: 77, pid: 1234, tid: 1234, comm: 'curl' },
    role: 'client', family: 4, local: { ip: '10.0.0.1', port: 40000 }, remote: { ip: '10.96.0.10', port: 80 },
    state: 1, closed: false, preexisting: false, ownerProvisional: false, openedUs: 1_000, closedUs: null, updatedUs: 2_000,
    bytesSent: 100, bytesRetrans: 0, bytesReceived: 2_000, segsOut: 3, segsIn: 4, dataSegsOut: 1, dataSegsIn: 2,
    retransSegs: 0, rtoCount: 0, resetsSent: 0, resetsReceived: 0, srttUs: 120, minRttUs: 80, rttSamples: 2, synRetrans: 0,
    rttHist: { idx: [3, 90], cnt: [1, 2] },
    ...over,
  };
}

describe('JSON lines', () => {
  it('writes tcp records as JSON.stringify({ type, ...record }) would', () => {
    const owners: Owner[] = [
      { node: 'n1', netns: 4026531840, cgroup_id: 77, pid: 1234, comm: 'curl', container_id: null, pod_uid: null },
      { node: 'n"1\\', netns: 1, cgroup_id: 2, pid: 0, comm: 'weird "\u00e9\n\u0001', container_id: 'a'.repeat(64), pod_uid: '0b6c3d2e-1f00-4a8b-9c7d-2e3f4a5b6c7d' },
    ];
    const sweeper = new TcpSweeper((p) => p >= 32768);
    const ctx = (slot: number, owner: Owner) => ({
      slotStartMs: slot, slotMs: 10_000, ownerOf: () => owner, toEpochMs: (us: number) => us / 1000,
      translate: (s: SocketStats) => (s.remote.port === 80 ? { ip: '10.244.1.7', port: 8080 } : null),
    });
    const first = [
      socket({}),
      socket({ cookie: 2, role: 'unknown', family: 6, local: { ip: 'fd00::1', port: 8080 }, remote: { ip: '::ffff:10.0.0.9', port: 51000 }, rttHist: { idx: [], cnt: [] } }),
    ];
    // The second reading: more traffic on one, a counter that went down and a close on the other.
    const second = [
      socket({ bytesSent: 250, segsOut: 5, rttHist: { idx: [3, 90, 100], cnt: [1, 5, 1] } }),
      { ...first[1]!, bytesReceived: 7, segsIn: 9, closed: true, closedUs: 3_000, resetsReceived: 1 },
    ];
    const records = [
      ...[...sweeper.sweep(first, ctx(1_763_600_000_000, owners[0]!))].map((s) => s.record),
      ...[...sweeper.sweep(second, ctx(1_763_600_010_000, owners[1]!))].map((s) => s.record),
    ];
    assert.equal(records.length, 4);
    assert.ok(records.some((r) => r.remote_orig !== null) && records.some((r) => r.closed));
    for (const r of records) {
      assert.deepEqual(Object.keys(r), Object.keys(tcpRecordSchema.shape), 'a record field the writer may not know');
      tcpRecordSchema.parse(r);
      assert.equal(tcpJsonLine(r), JSON.stringify({ type: 'tcp', ...r }));
    }
  });

  it('writes any other record with its type first', () => {
    const r = { ts_ms: 5, owner: null, answers: ['a', 'b"'], rcode: null };
    assert.equal(jsonLine('dns', r), JSON.stringify({ type: 'dns', ...r }));
    assert.equal(jsonLine('x', {}), JSON.stringify({ type: 'x' }));
  });
});
