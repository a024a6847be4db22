/**
 * Deterministic, realistic records for tests and benchmarks (a seeded generator, so a
 * failing test or a benchmark run can be reproduced exactly).
 */
import { fromSamples } from './histogram.js';
import type { DnsRecord, Owner, TcpEvent, TcpRecord } from './records.js';

/** mulberry32: tiny, fast, good enough to make varied test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

const comms = ['nginx', 'envoy', 'java', 'node', 'python3', 'redis-server', 'postgres'];

function owner(rnd: () => number, i: number): Owner {
  const podNo = i % 200;
  return {
    node: `node-${podNo % 12}`,
    netns: 4026531840 + podNo,
    cgroup_id: 10_000 + podNo,
    pid: 1000 + podNo * 7,
    comm: pick(rnd, comms),
    container_id: `c0ffee${podNo.toString(16).padStart(58, '0')}`,
    pod_uid: `6f1c2a4e-0000-4000-8000-${podNo.toString(16).padStart(12, '0')}`,
  };
}

function podIp(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export function sampleTcpRecords(n: number, seed = 1, slotStartMs = 1_763_600_000_000): TcpRecord[] {
  const rnd = seededRandom(seed);
  const out: TcpRecord[] = [];
  for (let i = 0; i < n; i++) {
    const base = 200 + Math.floor(rnd() * 3000);
    const samples = Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => base * (0.9 + rnd() * 0.5));
    const segsSent = Math.floor(rnd() * 5000);
    out.push({
      slot_start_ms: slotStartMs,
      slot_ms: 10_000,
      owner: owner(rnd, i),
      sock_cookie: 1_000_000 + i,
      role: rnd() < 0.5 ? 'client' : 'server',
      local: { ip: podIp(1000 + (i % 200)), port: 30000 + (i % 30000) },
      remote: { ip: podIp(5000 + Math.floor(rnd() * 200)), port: pick(rnd, [80, 443, 5432, 6379, 8080]) },
      remote_orig: rnd() < 0.3 ? { ip: `172.20.0.${1 + Math.floor(rnd() * 250)}`, port: 80 } : null,
      bytes_sent: segsSent * 1200,
      bytes_received: Math.floor(rnd() * 10_000_000),
      segs_sent: segsSent,
      segs_received: Math.floor(rnd() * 8000),
      retrans_segs: rnd() < 0.1 ? Math.floor(rnd() * 20) : 0,
      rto_count: rnd() < 0.02 ? 1 : 0,
      resets_sent: 0,
      resets_received: rnd() < 0.01 ? 1 : 0,
      srtt_us: Math.round(base * 1.1),
      min_rtt_us: Math.round(base * 0.9),
      rtt_hist: fromSamples(samples),
      opened: rnd() < 0.2,
      closed: rnd() < 0.2,
    });
  }
  return out;
}

export function sampleTcpEvents(n: number, seed = 2, tsMs = 1_763_600_000_000): TcpEvent[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const failed = rnd() < 0.5;
    return {
      ts_ms: tsMs + i,
      owner: owner(rnd, i),
      sock_cookie: 2_000_000 + i,
      kind: failed ? 'connect_failed' : pick(rnd, ['syn_timeout', 'reset_sent', 'reset_received'] as const),
      role: 'client',
      errno: failed ? pick(rnd, [110, 111, 113]) : null,
      errno_class: failed ? pick(rnd, ['timeout', 'refused', 'unreachable'] as const) : null,
      syn_retrans: Math.floor(rnd() * 6),
      local: { ip: podIp(1000 + (i % 200)), port: 40000 + i },
      remote: { ip: podIp(5000 + (i % 50)), port: 8080 },
      remote_orig: null,
    } satisfies TcpEvent;
  });
}

export function sampleDnsRecords(n: number, seed = 3, tsMs = 1_763_600_000_000): DnsRecord[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const timedOut = rnd() < 0.02;
    const rcode = timedOut ? null : pick(rnd, [0, 0, 0, 0, 3, 2]);
    return {
      ts_ms: tsMs + i,
      owner: owner(rnd, i),
      client: { ip: podIp(1000 + (i % 200)), port: 30000 + (i % 30000) },
      server: { ip: '10.96.0.10', port: 53 },
      transport: 'udp',
      id: i & 0xffff,
      qname: `svc-${i % 40}.default.svc.cluster.local`,
      qtype: pick(rnd, [1, 28]),
      rcode,
      latency_us: timedOut ? null : 200 + Math.floor(rnd() * 5000),
      timed_out: timedOut,
      answers: rcode === 0 ? [podIp(5000 + (i % 200))] : [],
      ttl_min_s: rcode === 0 ? 30 : null,
    } satisfies DnsRecord;
  });
}

