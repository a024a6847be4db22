/**
 * One end of a connection in one slot as the analyzer holds it from decoding until its slot
 * closes: the record's fields a flow row reads, flat. A decoded TcpRecord is four objects
 * besides its histogram arrays (the record, two or three endpoints, the histogram); the
 * matcher holds every record for a grace period, so each of those objects would be copied by
 * every scavenge it survived and then marked in the old generation. A version-2 tcp payload
 * is read straight into this form (ingest.ts: no TcpRecord is made for a valid record), the
 * owner stays the frame's shared object and the histogram's arrays are the decoder's own.
 */
import { mergeHistograms, type Owner, type Role, type TcpRecord } from '@meshlens/schemas';

/** What a held side is made of: TcpPayloadReader has these fields, a TcpRecord flattens to them. */
export type HeldFields = { readonly [K in keyof HeldSide]: HeldSide[K] };

export class HeldSide {
  /** The record's own slot: an end adopted from a later slot keeps it (matcher.ts). */
  readonly slot_start_ms: number;
  readonly slot_ms: number;
  readonly role: Role;
  readonly owner: Owner;
  readonly local_ip: string;
  readonly local_port: number;
  readonly remote_ip: string;
  readonly remote_port: number;
  /** The dialled (pre-DNAT) address, '' when the record has none (an address is never ''). */
  readonly orig_ip: string;
  readonly bytes_sent: number;
  readonly bytes_received: number;
  readonly segs_sent: number;
  readonly segs_received: number;
  readonly retrans_segs: number;
  readonly rto_count: number;
  readonly resets_sent: number;
  readonly resets_received: number;
  readonly srtt_us: number;
  readonly min_rtt_us: number;
  /** The sparse RTT histogram's arrays (`SparseHistogram`), not copied. */
  readonly rtt_idx: number[];
  readonly rtt_cnt: number[];
  readonly opened: boolean;
  readonly closed: boolean;

  constructor(f: HeldFields) {
    this.slot_start_ms = f.slot_start_ms;
    this.slot_ms = f.slot_ms;
    this.role = f.role;
    this.owner = f.owner;
    this.local_ip = f.local_ip;
    this.local_port = f.local_port;
    this.remote_ip = f.remote_ip;
    this.remote_port = f.remote_port;
    this.orig_ip = f.orig_ip;
    this.bytes_sent = f.bytes_sent;
    this.bytes_received = f.bytes_received;
    this.segs_sent = f.segs_sent;
    this.segs_received = f.segs_received;
    this.retrans_segs = f.retrans_segs;
    this.rto_count = f.rto_count;
    this.resets_sent = f.resets_sent;
    this.resets_received = f.resets_received;
    this.srtt_us = f.srtt_us;
    this.min_rtt_us = f.min_rtt_us;
    this.rtt_idx = f.rtt_idx;
    this.rtt_cnt = f.rtt_cnt;
    this.opened = f.opened;
    this.closed = f.closed;
  }

  /** A record that came as an object (a version-1 frame, or one the fast check left to zod). */
  static of(r: TcpRecord): HeldSide {
    return new HeldSide({
      ...r,
      local_ip: r.local.ip,
      local_port: r.local.port,
      remote_ip: r.remote.ip,
      remote_port: r.remote.port,
      orig_ip: r.remote_orig === null ? '' : r.remote_orig.ip,
      rtt_idx: r.rtt_hist.idx,
      rtt_cnt: r.rtt_hist.cnt,
    });
  }

  /** Two records of one side in one slot (a 4-tuple reused within the slot): `b`'s fields, counters added up. */
  static merge(a: HeldSide, b: HeldSide): HeldSide {
    const hist = mergeHistograms({ idx: a.rtt_idx, cnt: a.rtt_cnt }, { idx: b.rtt_idx, cnt: b.rtt_cnt });
    return new HeldSide({
      ...b,
      bytes_sent: a.bytes_sent + b.bytes_sent,
      bytes_received: a.bytes_received + b.bytes_received,
      segs_sent: a.segs_sent + b.segs_sent,
      segs_received: a.segs_received + b.segs_received,
      retrans_segs: a.retrans_segs + b.retrans_segs,
      rto_count: a.rto_count + b.rto_count,
      resets_sent: a.resets_sent + b.resets_sent,
      resets_received: a.resets_received + b.resets_received,
      min_rtt_us: Math.min(a.min_rtt_us, b.min_rtt_us),
      rtt_idx: hist.idx,
      rtt_cnt: hist.cnt,
      opened: a.opened || b.opened,
      closed: a.closed || b.closed,
    });
  }
}
