/**
 * A fast acceptance check for tcp records, the hot path: zod costs ~12 us per record
 * (bench/RESULTS.md), more than decoding, matching and enriching together. This check only
 * ever says "certainly valid"; anything it does not accept goes through the zod schema,
 * which stays the one definition of validity and words the rejection reason. A test feeds
 * both the same mutated records and requires that this never accepts what zod rejects.
 */
import { isIP } from 'node:net';
import { isValidSparse, isValidSparsePrefix, type Owner, type TcpPayloadReader } from '@meshlens/schemas';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isUint = (v: unknown, max: number): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;

/**
 * The value of a dotted-quad IPv4 address in the one spelling node's isIP accepts (0-255, no
 * leading zeros), -1 for anything else (IPv6, or not an address): read without a regex, as
 * three addresses per record made isIP a visible cost. One spelling per address, so equal
 * values are equal strings (the matcher keys connections by it).
 */
export function plainIPv4(s: string): number {
  const n = s.length;
  let i = 0;
  let ip = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= n || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
    const start = i;
    let v = 0;
    while (i < n && i - start < 3) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      i++;
    }
    const len = i - start;
    if (len === 0 || v > 255 || (len > 1 && s.charCodeAt(start) === 48)) return -1;
    ip = ip * 256 + v;
  }
  return i === n ? ip : -1;
}

const isAddress = (s: string): boolean => plainIPv4(s) >= 0 || isIP(s) !== 0;

function isEndpoint(v: unknown): boolean {
  return isObj(v) && typeof v.ip === 'string' && isAddress(v.ip) && isUint(v.port, 0xffff);
}

/** The checks of an owner beyond its types (all a decoded version-2 owner needs). */
const isOwnerInRange = (o: Owner): boolean => o.node.length > 0 && o.pid <= 0xffffffff && o.comm.length <= 16;

function isOwner(v: unknown): boolean {
  return (
    isObj(v) &&
    typeof v.node === 'string' &&
    isCount(v.netns) &&
    isCount(v.cgroup_id) &&
    isUint(v.pid, 0xffffffff) &&
    typeof v.comm === 'string' &&
    (v.container_id === null || typeof v.container_id === 'string') &&
    (v.pod_uid === null || typeof v.pod_uid === 'string') &&
    isOwnerInRange(v as Owner)
  );
}

/** isValidSparse checks every index and count (integer, in range, increasing, positive). */
function isHistogram(v: unknown): boolean {
  return isObj(v) && Array.isArray(v.idx) && Array.isArray(v.cnt) && isValidSparse(v as { idx: number[]; cnt: number[] });
}

export function certainlyValidTcpRecord(v: unknown): boolean {
  if (!isObj(v)) return false;
  // Named reads, not a loop over field names: every record has one shape, so each read stays monomorphic.
  return (
    isCount(v.bytes_sent) &&
    isCount(v.bytes_received) &&
    isCount(v.segs_sent) &&
    isCount(v.segs_received) &&
    isCount(v.retrans_segs) &&
    isCount(v.rto_count) &&
    isCount(v.resets_sent) &&
    isCount(v.resets_received) &&
    isCount(v.sock_cookie) &&
    isCount(v.slot_start_ms) &&
    Number.isInteger(v.slot_ms) &&
    (v.slot_ms as number) > 0 &&
    (v.slot_ms as number) <= 3_600_000 &&
    (v.role === 'client' || v.role === 'server') &&
    isUint(v.srtt_us, 0xffffffff) &&
    isUint(v.min_rtt_us, 0xffffffff) &&
    typeof v.opened === 'boolean' &&
    typeof v.closed === 'boolean' &&
    isOwner(v.owner) &&
    isEndpoint(v.local) &&
    isEndpoint(v.remote) &&
    (v.remote_orig === null || isEndpoint(v.remote_orig)) &&
    isHistogram(v.rtt_hist)
  );
}

/** By string or owner index: 0 not checked yet, 1 valid, 2 not. */
type Verdicts = Uint8Array;

function remember(verdicts: Verdicts, i: number, ok: boolean): boolean {
  verdicts[i] = ok ? 1 : 2;
  return ok;
}

/**
 * The fast check for the records of a version-2 tcp payload, on the reader's flat fields:
 * the decoder already guarantees every type and that every number is a non-negative safe
 * integer, so what is left are ranges. Addresses and owners are the frame's shared strings
 * and objects, each checked once per frame however many records use it.
 */
export class TcpPayloadCheck {
  private reader: TcpPayloadReader | null = null;
  private addresses: Verdicts = new Uint8Array(0);
  private owners: Verdicts = new Uint8Array(0);

  /** Whether the record the reader is on is certainly valid; false leaves it to zod. */
  valid(r: TcpPayloadReader): boolean {
    if (r !== this.reader) {
      this.reader = r;
      this.addresses = new Uint8Array(r.strings.length);
      this.owners = new Uint8Array(r.owners.length);
    }
    return (
      r.slot_ms > 0 &&
      r.slot_ms <= 3_600_000 &&
      r.srtt_us <= 0xffffffff &&
      r.min_rtt_us <= 0xffffffff &&
      r.local_port <= 0xffff &&
      r.remote_port <= 0xffff &&
      r.orig_port <= 0xffff &&
      this.address(r.local_ip_index) &&
      this.address(r.remote_ip_index) &&
      (r.orig_ip_index < 0 || this.address(r.orig_ip_index)) &&
      this.owner(r) &&
      isValidSparsePrefix(r.rtt_idx, r.rtt_cnt, r.rtt_n)
    );
  }

  private address(i: number): boolean {
    const v = this.addresses[i];
    return v === 0 ? remember(this.addresses, i, isAddress(this.reader!.strings[i]!)) : v === 1;
  }

  private owner(r: TcpPayloadReader): boolean {
    const v = this.owners[r.owner_index];
    return v === 0 ? remember(this.owners, r.owner_index, isOwnerInRange(r.owner)) : v === 1;
  }
}
