/**
 * ClickHouse rows from matched groups, events and DNS records. Column names are those of the
 * tables as schemas/migrations/ leave them; every label is resolved as of the record's time.
 * Times are epoch milliseconds: the RowBinary encoder writes them as the column's ticks.
 */
import { bucketOf, type DnsRecord, type Owner, type TcpEvent } from '@meshlens/schemas';
import { Enricher, type SideLabel } from './enrich.js';
import { HeldSide } from './held-side.js';
import type { FlowGroup } from './matcher.js';
import { SparseRun, StringMapEntries, type ByteWriter } from './row-binary.js';

/** Each side's attrs keys as RowBinary Strings (a one-byte length: all are short ASCII). */
function attrKeys(side: 'client' | 'server') {
  const key = (name: string) => Buffer.from([name.length, ...Buffer.from(name, 'latin1')]);
  return { pid: key(`${side}_pid`), cgroup: key(`${side}_cgroup_id`), netns: key(`${side}_netns`), container: key(`${side}_container`) };
}

const ATTR_KEYS = { client: attrKeys('client'), server: attrKeys('server') };

/**
 * The attrs map of a flow row (pid, cgroup, netns, container of each instrumented side), written
 * straight from the owners: no object, key list or number-to-string per row.
 */
class OwnerAttrs extends StringMapEntries {
  client: Owner | null = null;
  server: Owner | null = null;

  get size(): number {
    const c = this.client;
    const s = this.server;
    return (c ? (c.container_id ? 4 : 3) : 0) + (s ? (s.container_id ? 4 : 3) : 0);
  }

  writeEntries(out: ByteWriter): void {
    if (this.client) OwnerAttrs.side(out, ATTR_KEYS.client, this.client);
    if (this.server) OwnerAttrs.side(out, ATTR_KEYS.server, this.server);
  }

  private static side(out: ByteWriter, k: (typeof ATTR_KEYS)['client'], o: Owner): void {
    out.raw(k.pid);
    out.decimal(o.pid);
    out.raw(k.cgroup);
    out.decimal(o.cgroup_id);
    out.raw(k.netns);
    out.decimal(o.netns);
    if (o.container_id) {
      out.raw(k.container);
      out.repeated(o.container_id);
    }
  }
}

export type FlowRow = Record<string, unknown>;

/**
 * Why a one-sided row has one side: the peer is not ours, or it is ours and did not report
 * (in time), or its slot was closed early because the partition held too many records.
 */
export type UnmatchedReason = 'peer_not_instrumented' | 'peer_missing' | 'memory_cap';

/**
 * Flow rows built into one object, overwritten by the next: rows are encoded as soon as they
 * are added to a unit (sink.ts), so none outlives its `add`, and a row per group would only
 * feed the young generation, whose every scavenge copies the records the matcher holds.
 */
export class FlowRows {
  readonly row: FlowRow = {};
  private readonly attrs = new OwnerAttrs();
  private readonly clientRun = new SparseRun();
  private readonly serverRun = new SparseRun();

  constructor(private readonly enrich: Enricher) {}

  /** Fills `row` with the group's flow and returns why it has one side only (null: both). */
  build(g: FlowGroup): UnmatchedReason | null {
    const enrich = this.enrich;
    const c = g.client;
    const s = g.server;
    const from = g.slotStartMs;
    const to = g.slotStartMs + g.slotMs;
    const one = (c ?? s)!;
    const clientIp = c ? c.local_ip : one.remote_ip;
    const serverIp = s ? s.local_ip : one.remote_ip;
    const cl: SideLabel = c ? enrich.local(c.owner, c.local_ip, from, to) : enrich.remote(s!.remote_ip, from, to);
    const sl: SideLabel = s ? enrich.local(s.owner, s.local_ip, from, to) : enrich.remote(c!.remote_ip, from, to, c!.orig_ip);
    const sameNetns = c !== null && s !== null && c.owner.node === s.owner.node && c.owner.netns === s.owner.netns;
    this.attrs.client = c ? c.owner : null;
    this.attrs.server = s ? s.owner : null;
    const peer = c ? sl : cl;
    // tcp_flows stores histograms as runs (migration 0008), written from the sparse arrays,
    // read into the runs' own arrays; the sparse column names are aliases.
    const cRun = this.clientRun;
    const sRun = this.serverRun;
    cRun.n = c ? HeldSide.readHistogram(c, cRun.idx, cRun.cnt) : 0;
    sRun.n = s ? HeldSide.readHistogram(s, sRun.idx, sRun.cnt) : 0;
    // Every property is set on every call, in one order: the object keeps one shape, and the
    // sink names the table's columns from the first row's keys.
    const row = this.row;
    row.slot_start = g.slotStartMs;
    row.slot_ms = g.slotMs;
    row.observed = c && s ? 'both' : c ? 'client' : 'server';
    row.late = g.late;
    row.path = Enricher.path(clientIp, serverIp, cl, sl, sameNetns);
    row.client_ip = clientIp;
    row.client_port = c ? c.local_port : one.remote_port;
    row.server_ip = serverIp;
    row.server_port = s ? s.local_port : one.remote_port;
    row.service_ip = c ? c.orig_ip : '';
    row.client_node = cl.node;
    row.client_zone = cl.zone;
    row.client_namespace = cl.namespace;
    row.client_workload = cl.workload;
    row.client_service = cl.service;
    row.client_pod = cl.pod;
    row.client_comm = c?.owner.comm ?? '';
    row.server_node = sl.node;
    row.server_zone = sl.zone;
    row.server_namespace = sl.namespace;
    row.server_workload = sl.workload;
    row.server_service = sl.service;
    row.server_pod = sl.pod;
    row.server_comm = s?.owner.comm ?? '';
    row.bytes_c2s = c ? c.bytes_sent : s!.bytes_received;
    row.bytes_s2c = c ? c.bytes_received : s!.bytes_sent;
    row.segs_c2s = c ? c.segs_sent : s!.segs_received;
    row.segs_s2c = c ? c.segs_received : s!.segs_sent;
    row.client_retrans = c?.retrans_segs ?? 0;
    row.server_retrans = s?.retrans_segs ?? 0;
    row.client_rto = c?.rto_count ?? 0;
    row.server_rto = s?.rto_count ?? 0;
    row.resets_by_client = c ? c.resets_sent : s!.resets_received;
    row.resets_by_server = s ? s.resets_sent : c!.resets_received;
    row.client_srtt_us = c?.srtt_us ?? 0;
    row.server_srtt_us = s?.srtt_us ?? 0;
    row.client_min_rtt_us = c?.min_rtt_us ?? 0;
    row.server_min_rtt_us = s?.min_rtt_us ?? 0;
    row.client_rtt_first_bucket = cRun.n > 0 ? cRun.idx[0]! : 0;
    row.client_rtt_bucket_counts = cRun;
    row.server_rtt_first_bucket = sRun.n > 0 ? sRun.idx[0]! : 0;
    row.server_rtt_bucket_counts = sRun;
    row.opened = Boolean(c?.opened || s?.opened);
    row.closed = Boolean(c?.closed || s?.closed);
    row.attrs = this.attrs;
    return c && s ? null : g.capFlushed ? 'memory_cap' : peer.kind === 'pod' ? 'peer_missing' : 'peer_not_instrumented';
  }
}

export function eventRow(e: TcpEvent, enrich: Enricher): Record<string, unknown> {
  const l = enrich.local(e.owner, e.local.ip, e.ts_ms, e.ts_ms + 1);
  const r = enrich.remote(e.remote.ip, e.ts_ms, e.ts_ms + 1, e.remote_orig?.ip);
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
  const l = enrich.local(d.owner, d.client.ip, d.ts_ms, d.ts_ms + 1);
  const server = enrich.remote(d.server.ip, d.ts_ms, d.ts_ms + 1);
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
