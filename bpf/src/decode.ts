/**
 * Decoders for the kernel's socket summaries and ring-buffer events, built from the
 * object's BTF (see layout.ts) when the probes open.
 */
import { fromDense, HIST_BUCKETS, type SparseHistogram } from '@meshlens/schemas';
import { ipv4, ipv6 } from './ip.js';
import { parseDnsPayload, type DnsMessage } from './dns.js';
import { readEnum, readStruct, type Struct } from './layout.js';
import type { NativeProbes } from './native.js';

const AF_INET6 = 10;
const IPPROTO_TCP = 6;

export interface Endpoint {
  ip: string;
  port: number;
}

export interface Owner {
  netns: number;
  cgroupId: number;
  /** Process (tgid) and thread; 0 when unknown (sockets open before attach). */
  pid: number;
  tid: number;
  comm: string;
}

export type SocketRole = 'client' | 'server' | 'unknown';

/** One TCP socket's cumulative counters since it was first seen (see `preexisting`). */
export interface SocketStats {
  cookie: number;
  owner: Owner;
  role: SocketRole;
  family: 4 | 6;
  local: Endpoint;
  remote: Endpoint;
  /** Kernel TCP state number (1 ESTABLISHED ... 7 CLOSE) at the last update. */
  state: number;
  closed: boolean;
  /** Open before the probes attached: counters are lifetime totals of the socket. */
  preexisting: boolean;
  /** pid/comm are not the socket's own yet: the listener's (accepted socket) or 0 (adopted), until it is first read. */
  ownerProvisional: boolean;
  /** CLOCK_MONOTONIC microseconds; see monoUsToEpochMs. */
  openedUs: number;
  closedUs: number | null;
  updatedUs: number;
  /** Payload bytes sent once (retransmissions excluded). */
  bytesSent: number;
  bytesRetrans: number;
  bytesReceived: number;
  segsOut: number;
  segsIn: number;
  dataSegsOut: number;
  dataSegsIn: number;
  retransSegs: number;
  rtoCount: number;
  resetsSent: number;
  resetsReceived: number;
  srttUs: number;
  minRttUs: number | null;
  rttSamples: number;
  synRetrans: number;
  rttHist: SparseHistogram;
}

export type ErrnoClass = 'timeout' | 'refused' | 'unreachable' | 'other';

export interface TcpEvent {
  type: 'tcp';
  kind: 'open' | 'close' | 'connect_failed' | 'reset_sent' | 'reset_received';
  tsUs: number;
  cookie: number;
  owner: Owner;
  role: SocketRole;
  family: 4 | 6;
  local: Endpoint;
  remote: Endpoint;
  /** sk_err for connect_failed (0: the application gave up), else 0. */
  errno: number;
  errnoClass: ErrnoClass | null;
  synRetrans: number;
  state: number;
}

export interface DnsPacketEvent {
  type: 'dns';
  tsUs: number;
  /** Socket that sent (egress) or received (ingress) the packet. */
  cookie: number;
  netns: number;
  cgroupId: number;
  /** Sender's pid for egress in process context, else 0. */
  pid: number;
  egress: boolean;
  transport: 'udp' | 'tcp';
  family: 4 | 6;
  local: Endpoint;
  remote: Endpoint;
  /** L4 payload length on the wire; `payload` holds at most the first 512 bytes. */
  payloadLen: number;
  payload: Buffer;
  /** Parsed message, or null when the capture does not start a DNS message. */
  message: DnsMessage | null;
}

export type ProbeEvent = TcpEvent | DnsPacketEvent;

/** ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH/ENETUNREACH; an app that gave up mid-SYN-retry timed out. */
export function errnoClass(errno: number, synRetrans: number): ErrnoClass {
  if (errno === 110) return 'timeout';
  if (errno === 111) return 'refused';
  if (errno === 113 || errno === 101) return 'unreachable';
  if (errno === 0 && synRetrans > 0) return 'timeout';
  return 'other';
}

function roleOf(v: number): SocketRole {
  return v === 1 ? 'client' : v === 2 ? 'server' : 'unknown';
}

/** Owners remembered at most: bounded, as threads come and go. */
const OWNERS_KEPT = 4096;

/**
 * An owner is decoded once and then shared by every socket and event of its thread while
 * its fields stay the same: most sockets of a sweep belong to a handful of threads, and an
 * owner and its comm string per socket per sweep were garbage for V8's collector.
 */
function ownerDecoder(s: Struct) {
  const cgroup = s.scalar('cgroup_id', 'u64');
  const netns = s.scalar('netns', 'u32');
  const pid = s.scalar('pid', 'u32');
  const tid = s.scalar('tid', 'u32');
  const comm = s.array('comm', 1);
  const byTid = new Map<number, Owner>();
  // Equal only if every byte up to the NUL is the character at its place: a comm with
  // multi-byte UTF-8 never matches and is decoded each time.
  const sameComm = (text: string, b: Buffer, start: number) => {
    let i = 0;
    for (; i < text.length; i++) if (b[start + i] !== text.charCodeAt(i)) return false;
    return i === comm.count || b[start + i] === 0;
  };
  return (b: Buffer, base: number): Owner => {
    const start = base + comm.offset;
    const t = tid(b, base);
    const known = byTid.get(t);
    if (known !== undefined && known.pid === pid(b, base) && known.netns === netns(b, base) && known.cgroupId === cgroup(b, base) && sameComm(known.comm, b, start)) {
      return known;
    }
    let end = start;
    while (end < start + comm.count && b[end] !== 0) end++;
    const o: Owner = {
      netns: netns(b, base),
      cgroupId: cgroup(b, base),
      pid: pid(b, base),
      tid: t,
      comm: b.toString('utf8', start, end),
    };
    if (byTid.size >= OWNERS_KEPT) byTid.clear();
    byTid.set(t, o);
    return o;
  };
}

/**
 * Text form of an IPv4 address, remembered: a host's sockets share few addresses, and every
 * socket is decoded again each sweep. Bounded, as remote addresses are not.
 */
const v4Text = new Map<number, string>();
function ipv4Cached(b: Buffer, off: number): string {
  const k = b.readUInt32LE(off);
  let t = v4Text.get(k);
  if (t === undefined) {
    if (v4Text.size >= 16_384) v4Text.clear();
    v4Text.set(k, (t = ipv4(b, off)));
  }
  return t;
}

function endpointsDecoder(s: Struct) {
  const family = s.scalar('family', 'u16');
  const lport = s.scalar('local_port', 'u16');
  const rport = s.scalar('remote_port', 'u16');
  const la = s.array('local_addr', 1).offset;
  const ra = s.array('remote_addr', 1).offset;
  return (b: Buffer, base: number) => {
    const v6 = family(b, base) === AF_INET6;
    const fmt = v6 ? ipv6 : ipv4Cached;
    return {
      family: (v6 ? 6 : 4) as 4 | 6,
      local: { ip: fmt(b, base + la), port: lport(b, base) },
      remote: { ip: fmt(b, base + ra), port: rport(b, base) },
    };
  };
}

const nsToUs = (ns: number) => Math.floor(ns / 1000);

/** Where a socket's spilled full histogram sits in a read. */
export interface SpillRef {
  buf: Buffer;
  base: number;
}

export class Decoders {
  readonly sock: Struct;
  private readonly kinds: Map<number, string>;
  readonly counterNames: Map<number, string>;
  private readonly decodeSockFn: (b: Buffer, base: number, cookie: number, spill?: SpillRef) => SocketStats;
  private readonly decodeTcpFn: (b: Buffer) => TcpEvent;
  private readonly decodeDnsFn: (b: Buffer) => DnsPacketEvent;
  private readonly kindOffset: number;

  constructor(native: NativeProbes) {
    const ownerS = readStruct(native, 'ml_owner');
    const epS = readStruct(native, 'ml_endpoints');
    const owner = ownerDecoder(ownerS);
    const ep = endpointsDecoder(epS);
    this.kinds = readEnum(native, 'ml_event_kind', 'ML_EV_');
    this.counterNames = readEnum(native, 'ml_stat', 'ML_STAT_');
    const flags = readEnum(native, 'ml_sock_flag', 'ML_SOCK_');
    const flag = (name: string) => {
      for (const [v, n] of flags) if (n === name) return v;
      throw new Error(`BTF: enum ml_sock_flag has no ML_SOCK_${name.toUpperCase()}`);
    };
    const CLOSED = flag('closed');
    const PREEXISTING = flag('preexisting');
    const PROVISIONAL = flag('owner_provisional');

    this.sock = readStruct(native, 'ml_sock');
    const s = this.sock;
    const o = { owner: s.nested('owner', 'ml_owner'), ep: s.nested('ep', 'ml_endpoints') };
    const u64 = (n: string) => s.scalar(n, 'u64');
    const u32 = (n: string) => s.scalar(n, 'u32');
    const f = {
      opened: u64('opened_ns'),
      closed: u64('closed_ns'),
      updated: u64('updated_ns'),
      bytesSent: u64('bytes_sent'),
      bytesRetrans: u64('bytes_retrans'),
      bytesReceived: u64('bytes_received'),
      segsOut: u32('segs_out'),
      segsIn: u32('segs_in'),
      dataSegsOut: u32('data_segs_out'),
      dataSegsIn: u32('data_segs_in'),
      retrans: u32('total_retrans'),
      rto: u32('rto_count'),
      rstOut: u32('resets_sent'),
      rstIn: u32('resets_received'),
      srtt: u32('srtt_us'),
      minRtt: u32('min_rtt_us'),
      samples: u32('rtt_samples'),
      synRetrans: u32('syn_retrans'),
      role: s.scalar('role', 'u8'),
      state: s.scalar('state', 'u8'),
      flags: s.scalar('flags', 'u8'),
    };
    const slotIdx = s.array('hist_idx', 2);
    const slotCnt = s.array('hist_cnt', 4);
    const spillS = readStruct(native, 'ml_hist');
    const spill = spillS.array('cnt', 4);
    if (spill.count !== HIST_BUCKETS) throw new Error(`BTF: kernel histogram has ${spill.count} buckets, schemas ${HIST_BUCKETS}`);
    // Sparse from the start: a dense array of every bucket per socket per sweep cost more
    // than the rest of the decoding. Slots hold distinct buckets, unordered. The arrays are
    // made at their final length: grown by assignment from empty, each took room for 16.
    const inlineHist = (b: Buffer, base: number): SparseHistogram => {
      let used = 0;
      let n = 0;
      for (; used < slotCnt.count && b.readUInt32LE(base + slotCnt.offset + used * 4) !== 0; used++) {
        if (b.readUInt16LE(base + slotIdx.offset + used * 2) < HIST_BUCKETS) n++;
      }
      const idx = new Array<number>(n);
      const cnt = new Array<number>(n);
      let m = 0;
      for (let i = 0; i < used; i++) {
        const x = b.readUInt16LE(base + slotIdx.offset + i * 2);
        if (x >= HIST_BUCKETS) continue;
        let j = m++;
        for (; j > 0 && idx[j - 1]! > x; j--) {
          idx[j] = idx[j - 1]!;
          cnt[j] = cnt[j - 1]!;
        }
        idx[j] = x;
        cnt[j] = b.readUInt32LE(base + slotCnt.offset + i * 4);
      }
      return { idx, cnt };
    };
    const spilledHist = (b: Buffer, base: number, sp: SpillRef): SparseHistogram => {
      const dense = new Float64Array(HIST_BUCKETS);
      for (let i = 0; i < slotCnt.count; i++) {
        const c = b.readUInt32LE(base + slotCnt.offset + i * 4);
        if (c === 0) break;
        dense[b.readUInt16LE(base + slotIdx.offset + i * 2)]! += c;
      }
      for (let i = 0; i < spill.count; i++) dense[i]! += sp.buf.readUInt32LE(sp.base + spill.offset + i * 4);
      return fromDense(dense);
    };
    this.decodeSockFn = (b, base, cookie, sp) => {
      const fl = f.flags(b, base);
      const e = ep(b, base + o.ep);
      const closedNs = f.closed(b, base);
      const samples = f.samples(b, base);
      const sent = f.bytesSent(b, base);
      const retrans = f.bytesRetrans(b, base);
      return {
        cookie,
        owner: owner(b, base + o.owner),
        role: roleOf(f.role(b, base)),
        family: e.family,
        local: e.local,
        remote: e.remote,
        state: f.state(b, base),
        closed: (fl & CLOSED) !== 0,
        preexisting: (fl & PREEXISTING) !== 0,
        ownerProvisional: (fl & PROVISIONAL) !== 0,
        openedUs: nsToUs(f.opened(b, base)),
        closedUs: closedNs ? nsToUs(closedNs) : null,
        updatedUs: nsToUs(f.updated(b, base)),
        bytesSent: sent - retrans,
        bytesRetrans: retrans,
        bytesReceived: f.bytesReceived(b, base),
        segsOut: f.segsOut(b, base),
        segsIn: f.segsIn(b, base),
        dataSegsOut: f.dataSegsOut(b, base),
        dataSegsIn: f.dataSegsIn(b, base),
        retransSegs: f.retrans(b, base),
        rtoCount: f.rto(b, base),
        resetsSent: f.rstOut(b, base),
        resetsReceived: f.rstIn(b, base),
        srttUs: f.srtt(b, base),
        minRttUs: samples ? f.minRtt(b, base) : null,
        rttSamples: samples,
        synRetrans: f.synRetrans(b, base),
        rttHist: sp ? spilledHist(b, base, sp) : inlineHist(b, base),
      };
    };

    const t = readStruct(native, 'ml_tcp_event');
    this.kindOffset = t.member('kind').offset;
    const tf = {
      kind: t.scalar('kind', 'u32'),
      err: t.scalar('err', 'u32'),
      ts: t.scalar('ts_ns', 'u64'),
      cookie: t.scalar('cookie', 'u64'),
      synRetrans: t.scalar('syn_retrans', 'u32'),
      role: t.scalar('role', 'u8'),
      state: t.scalar('state', 'u8'),
      owner: t.nested('owner', 'ml_owner'),
      ep: t.nested('ep', 'ml_endpoints'),
    };
    this.decodeTcpFn = (b) => {
      const kind = this.kinds.get(tf.kind(b, 0)) as TcpEvent['kind'];
      const errno = tf.err(b, 0);
      const synRetrans = tf.synRetrans(b, 0);
      return {
        type: 'tcp',
        kind,
        tsUs: nsToUs(tf.ts(b, 0)),
        cookie: tf.cookie(b, 0),
        owner: owner(b, tf.owner),
        role: roleOf(tf.role(b, 0)),
        ...ep(b, tf.ep),
        errno,
        errnoClass: kind === 'connect_failed' ? errnoClass(errno, synRetrans) : null,
        synRetrans,
        state: tf.state(b, 0),
      };
    };

    const d = readStruct(native, 'ml_dns_event');
    const df = {
      ts: d.scalar('ts_ns', 'u64'),
      cookie: d.scalar('cookie', 'u64'),
      cgroup: d.scalar('cgroup_id', 'u64'),
      netns: d.scalar('netns', 'u32'),
      pid: d.scalar('pid', 'u32'),
      payloadLen: d.scalar('payload_len', 'u32'),
      egress: d.scalar('egress', 'u8'),
      protocol: d.scalar('protocol', 'u8'),
      capLen: d.scalar('cap_len', 'u16'),
      data: d.array('data', 1),
      ep: d.nested('ep', 'ml_endpoints'),
    };
    this.decodeDnsFn = (b) => {
      const cap = Math.min(df.capLen(b, 0), df.data.count);
      const payload = Buffer.from(b.subarray(df.data.offset, df.data.offset + cap));
      const transport = df.protocol(b, 0) === IPPROTO_TCP ? 'tcp' : 'udp';
      return {
        type: 'dns',
        tsUs: nsToUs(df.ts(b, 0)),
        cookie: df.cookie(b, 0),
        netns: df.netns(b, 0),
        cgroupId: df.cgroup(b, 0),
        pid: df.pid(b, 0),
        egress: df.egress(b, 0) !== 0,
        transport,
        ...ep(b, df.ep),
        payloadLen: df.payloadLen(b, 0),
        payload,
        message: parseDnsPayload(payload, transport),
      };
    };
  }

  /** One ml_socks value; `spill` is the socket's ml_hist_spill value when it has one. */
  socket(b: Buffer, base: number, cookie: number, spill?: SpillRef): SocketStats {
    return this.decodeSockFn(b, base, cookie, spill);
  }

  /** One ring-buffer record; null for a kind this decoder does not know (newer object). */
  event(b: Buffer): ProbeEvent | null {
    const kind = this.kinds.get(b.readUInt32LE(this.kindOffset));
    if (kind === 'dns') return this.decodeDnsFn(b);
    if (kind === undefined) return null;
    return this.decodeTcpFn(b);
  }
}
