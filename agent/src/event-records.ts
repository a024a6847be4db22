/** Probe ring-buffer events -> `tcp_event` and `dns` records. */
import type { DnsExchange, TcpEvent as ProbeTcpEvent } from '@meshlens/bpf';
import type { DnsRecord, Endpoint, Owner, TcpEvent } from '@meshlens/schemas';

export interface EventContext {
  ownerOf: (o: { netns: number; cgroupId: number; pid: number; comm: string }) => Owner;
  translate: (local: Endpoint, remote: Endpoint) => Endpoint | null;
  toEpochMs: (monoUs: number) => number;
}

const kinds = { connect_failed: 'connect_failed', reset_sent: 'reset_sent', reset_received: 'reset_received' } as const;

/** Returns null for lifecycle events (open/close), which the socket summaries already cover. */
export function tcpEventRecord(e: ProbeTcpEvent, ctx: EventContext): TcpEvent | null {
  if (!(e.kind in kinds)) return null;
  const kind = kinds[e.kind as keyof typeof kinds];
  const role = e.role === 'unknown' ? (kind === 'connect_failed' ? 'client' : 'server') : e.role;
  const backend = role === 'client' ? ctx.translate(e.local, e.remote) : null;
  return {
    ts_ms: ctx.toEpochMs(e.tsUs),
    owner: ctx.ownerOf(e.owner),
    sock_cookie: e.cookie,
    kind,
    role,
    errno: kind === 'connect_failed' && e.errno > 0 ? e.errno : null,
    errno_class: kind === 'connect_failed' ? e.errnoClass : null,
    syn_retrans: Math.min(e.synRetrans, 255),
    local: e.local,
    remote: backend ?? e.remote,
    remote_orig: backend ? e.remote : null,
  };
}

export function dnsRecord(x: DnsExchange, ctx: EventContext): DnsRecord {
  const q = x.query;
  const msg = q.message!;
  const answers = x.response?.message?.answers ?? [];
  const ttls = answers.map((a) => a.ttl);
  return {
    ts_ms: ctx.toEpochMs(q.tsUs),
    owner: ctx.ownerOf({ netns: q.netns, cgroupId: q.cgroupId, pid: q.pid, comm: '' }),
    client: q.local,
    server: q.remote,
    transport: q.transport,
    id: msg.id,
    qname: msg.qname.slice(0, 255),
    qtype: msg.qtype,
    rcode: x.response?.message?.rcode ?? null,
    latency_us: x.latencyUs,
    timed_out: x.timedOut,
    answers: answers.flatMap((a) => (a.value === null ? [] : [a.value.slice(0, 255)])),
    ttl_min_s: ttls.length ? Math.min(...ttls) : null,
  };
}
