// --output stdout writes tcp records field by field for speed: the text must stay exactly
// what JSON.stringify({ type, ...record }) gives, for every field the schema has.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SocketStats } from '@meshlens/bpf';
import { HIST_BUCKETS, tcpRecordSchema, type Owner, type TcpRecord } from '@meshlens/schemas';
import { JsonLines, jsonLine } from '../src/json-lines.js';
import { TcpSweeper } from '../src/tcp-records.js';
import { socket } from './support/socket-stats.js';

/** What JsonLines hands its sink for `write`, as text, and how many chunks it took. */
function written(write: (w: JsonLines) => void): { lines: string[]; chunks: number } {
  const chunks: Buffer[] = [];
  const w = new JsonLines((c) => chunks.push(c));
  write(w);
  w.flush();
  const text = Buffer.concat(chunks).toString();
  assert.ok(text.endsWith('\n'));
  return { lines: text.slice(0, -1).split('\n'), chunks: chunks.length };
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
    }
    assert.deepEqual(written((w) => records.forEach((r) => w.tcp(r))).lines, records.map((r) => JSON.stringify({ type: 'tcp', ...r })));
  });

  it('writes lines of any length across chunks whole, numbers up to 2^53 as JSON has them', () => {
    const r: TcpRecord = {
      slot_start_ms: 1_763_600_000_000, slot_ms: 10_000,
      owner: { node: 'n'.repeat(3000), netns: 1, cgroup_id: 2, pid: 3, comm: 'c', container_id: null, pod_uid: null },
      sock_cookie: Number.MAX_SAFE_INTEGER, role: 'server', local: { ip: 'fd00:1234:5678:9abc:def0:1234:5678:9abc', port: 65535 },
      remote: { ip: '255.255.255.255', port: 0 }, remote_orig: null,
      bytes_sent: 2 ** 53 - 2, bytes_received: 10, segs_sent: 9, segs_received: 99, retrans_segs: 100, rto_count: 1e15, resets_sent: 0,
      resets_received: 4_294_967_295, srtt_us: 1, min_rtt_us: 0,
      rtt_hist: { idx: Array.from({ length: HIST_BUCKETS }, (_, i) => i), cnt: Array.from({ length: HIST_BUCKETS }, (_, i) => 4_294_967_295 - i) },
      opened: false, closed: true,
    };
    tcpRecordSchema.parse(r);
    const small = { ...r, owner: { ...r.owner, node: 'n1' }, rtt_hist: { idx: [7], cnt: [1] } };
    const records = Array.from({ length: 300 }, (_, i) => (i % 100 === 50 ? r : { ...small, sock_cookie: i, bytes_sent: i * 1_000_003 }));
    const out = written((w) => {
      records.forEach((x) => w.tcp(x));
      w.line('dns', { qname: 'é.example' });
    });
    assert.ok(out.chunks > 1, `${out.chunks} chunk(s)`);
    assert.deepEqual(out.lines, [...records.map((x) => JSON.stringify({ type: 'tcp', ...x })), JSON.stringify({ type: 'dns', qname: 'é.example' })]);
  });

  it('writes any other record with its type first', () => {
    const r = { ts_ms: 5, owner: null, answers: ['a', 'b"'], rcode: null };
    assert.equal(jsonLine('dns', r), JSON.stringify({ type: 'dns', ...r }));
    assert.equal(jsonLine('x', {}), JSON.stringify({ type: 'x' }));
  });
});
