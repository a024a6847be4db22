/**
 * One end of a connection in one slot as the matcher holds it until its slot closes: the
 * record's fields a flow row reads, flat. A decoded TcpRecord is four objects besides its
 * histogram arrays (the record, two or three endpoints, the histogram); the matcher holds
 * every record for a grace period, so each of those objects was copied by every scavenge it
 * survived and then marked in the old generation. Here the endpoints are fields, the owner
 * stays the frame's shared object, the histogram's arrays are the decoder's own, and the
 * record itself dies young.
 */
import { mergeHistograms, type Owner, type TcpRecord } from '@meshlens/schemas';

export class HeldSide {
  /** The record's own slot: an end adopted from a later slot keeps it (matcher.ts). */
  readonly slot_start_ms: number;
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

  constructor(r: TcpRecord) {
    this.slot_start_ms = r.slot_start_ms;
    this.owner = r.owner;
    this.local_ip = r.local.ip;
    this.local_port = r.local.port;
    this.remote_ip = r.remote.ip;
    this.remote_port = r.remote.port;
    this.orig_ip = r.remote_orig === null ? '' : r.remote_orig.ip;
    this.bytes_sent = r.bytes_sent;
    this.bytes_received = r.bytes_received;
    this.segs_sent = r.segs_sent;
    this.segs_received = r.segs_received;
    this.retrans_segs = r.retrans_segs;
    this.rto_count = r.rto_count;
    this.resets_sent = r.resets_sent;
    this.resets_received = r.resets_received;
    this.srtt_us = r.srtt_us;
    this.min_rtt_us = r.min_rtt_us;
    this.rtt_idx = r.rtt_hist.idx;
    this.rtt_cnt = r.rtt_hist.cnt;
    this.opened = r.opened;
    this.closed = r.closed;
  }

  /** Two records of one side in one slot (a 4-tuple reused within the slot): `b`'s fields, counters added up. */
  static merge(a: HeldSide, b: TcpRecord): HeldSide {
    const hist = mergeHistograms({ idx: a.rtt_idx, cnt: a.rtt_cnt }, b.rtt_hist);
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
      rtt_hist: hist,
      opened: a.opened || b.opened,
      closed: a.closed || b.closed,
    });
  }
}
