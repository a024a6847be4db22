/**
 * One end of a connection in one slot as the analyzer holds it from decoding until the other
 * end arrives or its slot closes: the record's fields a flow row reads, flat. A decoded
 * TcpRecord is four objects besides its histogram arrays (the record, two or three endpoints,
 * the histogram); the matcher holds many records for a slot or more, so each of those objects would be copied by
 * every scavenge it survived and then marked in the old generation. A version-2 tcp payload
 * is read straight into this form (ingest.ts: no TcpRecord is made for a valid record), the
 * owner stays the frame's shared object and the histogram stays where it is in the payload
 * (its bytes are outside the JS heap, which scavenges do not copy), read when the row is made.
 *
 * A held side is a plain object made by one object literal (`HeldSide.from`), not a class
 * instance: V8 tracks where literals are allocated and, when most of them outlive several
 * scavenges, allocates them in the old generation directly, so scavenges stop copying them (a
 * class's `new` has no such tracking). Since a connection comes out when its second end
 * arrives, fewer sides live that long; whether V8 still pretenures them was not measured.
 */
import { encodeSparseHistogram, mergeHistograms, readSparseHistogram, type Owner, type Role, type SparseHistogram, type TcpRecord } from '@meshlens/schemas';

export interface HeldSide {
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
  /** The sparse RTT histogram as the tcp payload lays it out, at `rtt_pos` of `rtt_bytes` (see `histogram`). */
  readonly rtt_bytes: Uint8Array;
  readonly rtt_pos: number;
  readonly opened: boolean;
  readonly closed: boolean;
}

export const HeldSide = {
  /** The held side of `f`'s fields (TcpPayloadReader has them all): every held side is made here. */
  from(f: HeldSide): HeldSide {
    return {
      slot_start_ms: f.slot_start_ms,
      slot_ms: f.slot_ms,
      role: f.role,
      owner: f.owner,
      local_ip: f.local_ip,
      local_port: f.local_port,
      remote_ip: f.remote_ip,
      remote_port: f.remote_port,
      orig_ip: f.orig_ip,
      bytes_sent: f.bytes_sent,
      bytes_received: f.bytes_received,
      segs_sent: f.segs_sent,
      segs_received: f.segs_received,
      retrans_segs: f.retrans_segs,
      rto_count: f.rto_count,
      resets_sent: f.resets_sent,
      resets_received: f.resets_received,
      srtt_us: f.srtt_us,
      min_rtt_us: f.min_rtt_us,
      rtt_bytes: f.rtt_bytes,
      rtt_pos: f.rtt_pos,
      opened: f.opened,
      closed: f.closed,
    };
  },

  /** A record that came as an object (a version-1 frame, or one the fast check left to zod). */
  of(r: TcpRecord): HeldSide {
    return HeldSide.from({
      ...r,
      local_ip: r.local.ip,
      local_port: r.local.port,
      remote_ip: r.remote.ip,
      remote_port: r.remote.port,
      orig_ip: r.remote_orig === null ? '' : r.remote_orig.ip,
      ...histogramBytes(r.rtt_hist),
    });
  },

  /** The RTT histogram into the first entries of `idx` and `cnt` (arrays the caller reuses); returns its bucket count. */
  readHistogram(s: HeldSide, idx: number[], cnt: number[]): number {
    return readSparseHistogram(s.rtt_bytes, s.rtt_pos, idx, cnt);
  },

  /** The RTT histogram in arrays of its own. */
  histogram(s: HeldSide): SparseHistogram {
    const h: SparseHistogram = { idx: [], cnt: [] };
    HeldSide.readHistogram(s, h.idx, h.cnt);
    return h;
  },

  /** Two records of one side (a 4-tuple reused within a slot, or one socket's records of adjacent slots joined): `b`'s fields, counters added up. */
  merge(a: HeldSide, b: HeldSide): HeldSide {
    const hist = mergeHistograms(HeldSide.histogram(a), HeldSide.histogram(b));
    return HeldSide.from({
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
      ...histogramBytes(hist),
      opened: a.opened || b.opened,
      closed: a.closed || b.closed,
    });
  },
};

/**
 * A validated histogram, or one merged from two, in the payload's layout. Only a merged count
 * past 2^53 fails to encode: it is clamped there (the column keeps 32 bits of it anyway).
 */
function histogramBytes(h: SparseHistogram): { rtt_bytes: Uint8Array; rtt_pos: number } {
  const bytes = encodeSparseHistogram(h) ?? encodeSparseHistogram({ idx: h.idx, cnt: h.cnt.map((c) => Math.min(c, Number.MAX_SAFE_INTEGER)) })!;
  return { rtt_bytes: bytes, rtt_pos: 0 };
}
