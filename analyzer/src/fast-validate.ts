/**
 * A fast acceptance check for tcp records, the hot path: zod costs ~12 us per record
 * (bench/RESULTS.md), more than decoding, matching and enriching together. This check only
 * ever says "certainly valid"; anything it does not accept goes through the zod schema,
 * which stays the one definition of validity and words the rejection reason. A test feeds
 * both the same mutated records and requires that this never accepts what zod rejects.
 */
import { isIP } from 'node:net';
import { isValidSparse } from '@meshlens/schemas';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isUint = (v: unknown, max: number): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;

/**
 * Dotted-quad IPv4 in the one spelling node's isIP accepts (0-255, no leading zeros), read
 * without a regex: three addresses per record made isIP a visible cost. Anything else
 * (IPv6, or not an address) is left to isIP.
 */
function isPlainIPv4(s: string): boolean {
  const n = s.length;
  let i = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= n || s.charCodeAt(i) !== 46) return false;
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
    if (len === 0 || v > 255 || (len > 1 && s.charCodeAt(start) === 48)) return false;
  }
  return i === n;
}

function isEndpoint(v: unknown): boolean {
  return isObj(v) && typeof v.ip === 'string' && (isPlainIPv4(v.ip) || isIP(v.ip) !== 0) && isUint(v.port, 0xffff);
}

function isOwner(v: unknown): boolean {
  return (
    isObj(v) &&
    typeof v.node === 'string' &&
    v.node.length > 0 &&
    isCount(v.netns) &&
    isCount(v.cgroup_id) &&
    isUint(v.pid, 0xffffffff) &&
    typeof v.comm === 'string' &&
    v.comm.length <= 16 &&
    (v.container_id === null || typeof v.container_id === 'string') &&
    (v.pod_uid === null || typeof v.pod_uid === 'string')
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
