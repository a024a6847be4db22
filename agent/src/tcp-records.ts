/**
 * Cumulative kernel socket summaries -> one `tcp` record per socket per slot, as deltas.
 * The kernel keeps lifetime counters per socket; this keeps the previous reading and
 * emits only sockets that did something in the slot (a close alone is not something).
 * Sockets that were open before the probes attached carry lifetime totals on first sight,
 * so their first reading is only a baseline: measuring starts from there, never with a
 * burst of old history.
 */
import type { SocketStats } from '@meshlens/bpf';
import { emptyHistogram, subtractHistograms, type Endpoint, type Owner, type SparseHistogram, type TcpEvent, type TcpRecord } from '@meshlens/schemas';

interface Reading {
  bytesSent: number;
  bytesReceived: number;
  segsOut: number;
  segsIn: number;
  retransSegs: number;
  rtoCount: number;
  resetsSent: number;
  resetsReceived: number;
  rttHist: SparseHistogram;
  /**
   * The backend of a translated client socket: NAT does not change over a connection's life,
   * and the table it came from forgets entries long before a long-lived connection ends.
   */
  backend: Endpoint | null;
}

const ZERO: Reading = {
  bytesSent: 0, bytesReceived: 0, segsOut: 0, segsIn: 0, retransSegs: 0, rtoCount: 0, resetsSent: 0, resetsReceived: 0,
  rttHist: emptyHistogram(), backend: null,
};

export interface SweepContext {
  slotStartMs: number;
  slotMs: number;
  ownerOf: (s: SocketStats) => Owner;
  /** The backend behind a dialled service address, if NAT translated this client socket. */
  translate: (s: SocketStats) => Endpoint | null;
  /** Monotonic microseconds -> epoch milliseconds. */
  toEpochMs: (monoUs: number) => number;
}

export interface SweptSocket {
  record: TcpRecord;
  /** The connection got through only after SYN retransmissions. */
  synTimeout: TcpEvent | null;
}

/** Whether a socket of unknown role dialled out: its local port is in the ephemeral range. */
export type EphemeralPortTest = (port: number) => boolean;

export class TcpSweeper {
  private readonly prev = new Map<number, Reading>();

  constructor(private readonly isEphemeral: EphemeralPortTest) {}

  get tracked(): number {
    return this.prev.size;
  }

  /** Forgets a socket the kernel deleted from its map by itself (a connect that failed). */
  forget(cookie: number): void {
    this.prev.delete(cookie);
  }

  /**
   * Forgets every socket but `seen`, the cookies of a read of the whole map: the others are
   * gone from it without this sweeper having read them closed.
   */
  retainOnly(seen: ReadonlySet<number>): void {
    for (const cookie of this.prev.keys()) if (!seen.has(cookie)) this.prev.delete(cookie);
  }

  /**
   * One socket at a time, so that a sweep of a full map never holds all its records at once.
   * Sockets left out of `stats` did nothing since their last reading.
   */
  *sweep(stats: Iterable<SocketStats>, ctx: SweepContext): Generator<SweptSocket> {
    for (const s of stats) {
      const before = this.prev.get(s.cookie);
      let kept = before;
      // Most closed sockets of a busy host opened since the last sweep: nothing to delete.
      if (s.closed) {
        if (before !== undefined) this.prev.delete(s.cookie);
      } else if (before === undefined) this.prev.set(s.cookie, (kept = reading(s)));
      if (before === undefined && s.preexisting) continue;
      const base = before ?? ZERO;
      // A counter that went down means the kernel entry was recreated under the same cookie:
      // such a delta is 0.
      const bytesSent = s.bytesSent - base.bytesSent;
      const bytesReceived = s.bytesReceived - base.bytesReceived;
      const segsSent = s.segsOut - base.segsOut;
      const segsReceived = s.segsIn - base.segsIn;
      const retransSegs = s.retransSegs - base.retransSegs;
      const rtoCount = s.rtoCount - base.rtoCount;
      const resetsSent = s.resetsSent - base.resetsSent;
      const resetsReceived = s.resetsReceived - base.resetsReceived;
      const opened = before === undefined;
      const beforeHist = base.rttHist;
      // The reading of an open socket is updated in place (it has lived long: a new one
      // per sweep would be garbage for the old generation's collector).
      if (before !== undefined && !s.closed) assign(before, s);
      // A close alone is not activity: a socket whose only change since its last record is
      // its close emits nothing. Its peer's close has usually landed in that last record's
      // slot already (both ends close within microseconds, the sweep runs in between), so a
      // zero record here would be one-sided. `closed` is therefore set only on a record that
      // also carries the socket's last traffic; the analyzer ORs it over both ends.
      if (
        !opened &&
        bytesSent === 0 && bytesReceived === 0 && segsSent === 0 && segsReceived === 0 &&
        retransSegs === 0 && rtoCount === 0 && resetsSent === 0 && resetsReceived === 0
      ) {
        continue;
      }
      const role = s.role === 'unknown' ? (this.isEphemeral(s.local.port) ? 'client' : 'server') : s.role;
      const backend = role === 'client' ? (base.backend ?? ctx.translate(s)) : null;
      if (kept) kept.backend = backend;
      const owner = ctx.ownerOf(s);
      const record: TcpRecord = {
        slot_start_ms: ctx.slotStartMs,
        slot_ms: ctx.slotMs,
        owner,
        sock_cookie: s.cookie,
        role,
        local: s.local,
        remote: backend ?? s.remote,
        remote_orig: backend ? s.remote : null,
        bytes_sent: Math.max(0, bytesSent),
        bytes_received: Math.max(0, bytesReceived),
        segs_sent: Math.max(0, segsSent),
        segs_received: Math.max(0, segsReceived),
        retrans_segs: Math.max(0, retransSegs),
        rto_count: Math.max(0, rtoCount),
        resets_sent: Math.max(0, resetsSent),
        resets_received: Math.max(0, resetsReceived),
        srtt_us: s.srttUs,
        min_rtt_us: s.minRttUs ?? 0,
        rtt_hist: before ? subtractHistograms(s.rttHist, beforeHist) : s.rttHist,
        opened,
        closed: s.closed,
      };
      let synTimeout: TcpEvent | null = null;
      if (opened && role === 'client' && s.synRetrans > 0 && (s.segsIn > 0 || s.bytesReceived > 0 || s.srttUs > 0)) {
        synTimeout = {
          ts_ms: ctx.toEpochMs(s.openedUs),
          owner,
          sock_cookie: s.cookie,
          kind: 'syn_timeout',
          role,
          errno: null,
          errno_class: null,
          syn_retrans: Math.min(s.synRetrans, 255),
          local: record.local,
          remote: record.remote,
          remote_orig: record.remote_orig,
        };
      }
      yield { record, synTimeout };
    }
  }
}

function assign(r: Reading, s: SocketStats): void {
  r.bytesSent = s.bytesSent;
  r.bytesReceived = s.bytesReceived;
  r.segsOut = s.segsOut;
  r.segsIn = s.segsIn;
  r.retransSegs = s.retransSegs;
  r.rtoCount = s.rtoCount;
  r.resetsSent = s.resetsSent;
  r.resetsReceived = s.resetsReceived;
  r.rttHist = s.rttHist;
}

function reading(s: SocketStats): Reading {
  return {
    bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, segsOut: s.segsOut, segsIn: s.segsIn,
    retransSegs: s.retransSegs, rtoCount: s.rtoCount, resetsSent: s.resetsSent, resetsReceived: s.resetsReceived,
    rttHist: s.rttHist, backend: null,
  };
}
