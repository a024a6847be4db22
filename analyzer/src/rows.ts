/**
 * ClickHouse rows from matched groups, events and DNS records. Column names are those of the
 * tables as schemas/migrations/ leave them; every label is resolved as of the record's time.
 * Times are epoch milliseconds: the RowBinary encoder writes them as the column's ticks.
 */
import { bucketOf, toBucketRun, type BucketRun, type DnsRecord, type Owner, type TcpEvent } from '@meshlens/schemas';
import { Enricher, type SideLabel } from './enrich.js';
import type { FlowGroup } from './matcher.js';

const ATTR_KEYS = {
  client: { pid: 'client_pid', cgroup: 'client_cgroup_id', netns: 'client_netns', container: 'client_container' },
  server: { pid: 'server_pid', cgroup: 'server_cgroup_id', netns: 'server_netns', container: 'server_container' },
} as const;

function ownerAttrs(side: 'client' | 'server', o: Owner, out: Record<string, string>): void {
  const k = ATTR_KEYS[side];
  out[k.pid] = String(o.pid);
  out[k.cgroup] = String(o.cgroup_id);
  out[k.netns] = String(o.netns);
  if (o.container_id) out[k.container] = o.container_id;
}

export type FlowRow = Record<string, unknown>;

export interface BuiltFlow {
  row: FlowRow;
  /**
   * Why a one-sided row has one side: the peer is not ours, or it is ours and did not report
   * (in time), or its slot was closed early because the partition held too many records.
   */
  unmatchedReason: 'peer_not_instrumented' | 'peer_missing' | 'memory_cap' | null;
}

const NO_RUN: BucketRun = { first: 0, counts: [] };

export function flowRow(g: FlowGroup, enrich: Enricher): BuiltFlow {
  const c = g.client;
  const s = g.server;
  const any = (c ?? s)!;
  const w = { fromMs: g.slotStartMs, toMs: g.slotStartMs + g.slotMs };
  const clientEp = c ? c.local : any.remote;
  const serverEp = s ? s.local : any.remote;
  const cl: SideLabel = c ? enrich.local(c.owner, c.local, w) : enrich.remote(s!.remote, w);
  const sl: SideLabel = s ? enrich.local(s.owner, s.local, w) : enrich.remote(c!.remote, w, c!.remote_orig);
  const sameNetns = c !== null && s !== null && c.owner.node === s.owner.node && c.owner.netns === s.owner.netns;
  const attrs: Record<string, string> = {};
  if (c) ownerAttrs('client', c.owner, attrs);
  if (s) ownerAttrs('server', s.owner, attrs);
  const peer = c ? sl : cl;
  // tcp_flows stores histograms as runs (migration 0008); the sparse column names are aliases.
  const cRun = c ? toBucketRun(c.rtt_hist) : NO_RUN;
  const sRun = s ? toBucketRun(s.rtt_hist) : NO_RUN;
  return {
    unmatchedReason: c && s ? null : g.capFlushed ? 'memory_cap' : peer.kind === 'pod' ? 'peer_missing' : 'peer_not_instrumented',
    row: {
      slot_start: g.slotStartMs,
      slot_ms: g.slotMs,
      observed: c && s ? 'both' : c ? 'client' : 'server',
      late: g.late,
      path: Enricher.path(clientEp.ip, serverEp.ip, cl, sl, sameNetns),
      client_ip: clientEp.ip,
      client_port: clientEp.port,
      server_ip: serverEp.ip,
      server_port: serverEp.port,
      service_ip: c?.remote_orig?.ip ?? '',
      client_node: cl.node,
      client_zone: cl.zone,
      client_namespace: cl.namespace,
      client_workload: cl.workload,
      client_service: cl.service,
      client_pod: cl.pod,
      client_comm: c?.owner.comm ?? '',
      server_node: sl.node,
      server_zone: sl.zone,
      server_namespace: sl.namespace,
      server_workload: sl.workload,
      server_service: sl.service,
      server_pod: sl.pod,
      server_comm: s?.owner.comm ?? '',
      bytes_c2s: c ? c.bytes_sent : s!.bytes_received,
      bytes_s2c: c ? c.bytes_received : s!.bytes_sent,
      segs_c2s: c ? c.segs_sent : s!.segs_received,
      segs_s2c: c ? c.segs_received : s!.segs_sent,
      client_retrans: c?.retrans_segs ?? 0,
      server_retrans: s?.retrans_segs ?? 0,
      client_rto: c?.rto_count ?? 0,
      server_rto: s?.rto_count ?? 0,
      resets_by_client: c ? c.resets_sent : s!.resets_received,
      resets_by_server: s ? s.resets_sent : c!.resets_received,
      client_srtt_us: c?.srtt_us ?? 0,
      server_srtt_us: s?.srtt_us ?? 0,
      client_min_rtt_us: c?.min_rtt_us ?? 0,
      server_min_rtt_us: s?.min_rtt_us ?? 0,
      client_rtt_first_bucket: cRun.first,
      client_rtt_bucket_counts: cRun.counts,
      server_rtt_first_bucket: sRun.first,
      server_rtt_bucket_counts: sRun.counts,
      opened: Boolean(c?.opened || s?.opened),
      closed: Boolean(c?.closed || s?.closed),
      attrs,
    },
  };
}

export function eventRow(e: TcpEvent, enrich: Enricher): Record<string, unknown> {
  const w = { fromMs: e.ts_ms, toMs: e.ts_ms + 1 };
  const l = enrich.local(e.owner, e.local, w);
  const r = enrich.remote(e.remote, w, e.remote_orig);
  return {
    ts: e.ts_ms,
    kind: e.kind,
    errno: e.errno,
    errno_class: e.errno_class,
    syn_retrans: e.syn_retrans,
    role: e.role,
    local_ip: e.local.ip,
    local_port: e.local.port,
    remote_ip: e.remote.ip,
    remote_port: e.remote.port,
    service_ip: e.remote_orig?.ip ?? '',
    node: l.node,
    zone: l.zone,
    namespace: l.namespace,
    workload: l.workload,
    pod: l.pod,
    comm: e.owner.comm,
    remote_node: r.node,
    remote_zone: r.zone,
    remote_namespace: r.namespace,
    remote_workload: r.workload,
    remote_service: r.service,
  };
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const QTYPES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 65: 'HTTPS' };

export function dnsRow(d: DnsRecord, enrich: Enricher): Record<string, unknown> {
  const w = { fromMs: d.ts_ms, toMs: d.ts_ms + 1 };
  const l = enrich.local(d.owner, d.client, w);
  const server = enrich.remote(d.server, w);
  return {
    ts: d.ts_ms,
    client_ip: d.client.ip,
    client_port: d.client.port,
    server_ip: d.server.ip,
    server_port: d.server.port,
    transport: d.transport,
    qname: d.qname,
    qtype: QTYPES[d.qtype] ?? `TYPE${d.qtype}`,
    rcode: d.timed_out || d.rcode === null ? 'TIMEOUT' : (RCODES[d.rcode] ?? `RCODE${d.rcode}`),
    latency_us: d.latency_us,
    latency_bucket: d.latency_us === null ? 0 : bucketOf(d.latency_us),
    answers: d.answers,
    ttl_min_s: d.ttl_min_s,
    node: l.node,
    zone: l.zone,
    namespace: l.namespace,
    workload: l.workload,
    pod: l.pod,
    comm: d.owner.comm,
    server_name: server.service || server.workload,
  };
}
