/**
 * The payload of a version-2 tcp frame: a hand-laid binary form of TcpRecord instead of
 * msgpack. The analyzer decodes every tcp record it stores, and msgpack made that, and the
 * garbage it leaves, its largest cost after the insert (bench/RESULTS.md, issue 6): every
 * record carried its own copy of each string and its own owner object. Here each distinct
 * string and each owner appear once per frame, so decoded records share them.
 *
 *   varint n, n x (varint byte length, UTF-8 bytes)            strings
 *   varint n, n x owner                                        owners
 *     node, comm: string index; netns, cgroup_id, pid: varint;
 *     container_id, pod_uid: string index + 1, 0 for null
 *   count x record
 *     u8 flags: 1 server, 2 opened, 4 closed, 8 remote_orig present
 *     varint slot_start_ms, slot_ms, owner index, sock_cookie
 *     local, remote [, remote_orig]: string index of the ip, varint port
 *     varint bytes_sent, bytes_received, segs_sent, segs_received, retrans_segs,
 *       rto_count, resets_sent, resets_received, srtt_us, min_rtt_us
 *     varint n, n x varint bucket step (first from -1), n x varint count
 *
 * Varints are unsigned LEB128 up to 2^53. The encoder takes only records it can write
 * exactly (non-negative safe integers, booleans, the two roles) and says so by returning
 * null otherwise: the caller then sends msgpack, so a malformed record still reaches the
 * analyzer's validation and its dead-letter reason. The decoder trusts nothing: any
 * out-of-range length, index or varint is a TcpCodecError, and the records it builds are
 * still validated by the analyzer like any other.
 */
import type { SparseHistogram } from './histogram.js';
import type { Endpoint, Owner, Role, TcpRecord } from './records.js';

export class TcpCodecError extends Error {
  override name = 'TcpCodecError';
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

class Writer {
  buf: Buffer;
  pos = 0;

  constructor(private readonly size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Starts over in the same buffer, unless the last use filled under a quarter of it. */
  reset(): void {
    if (this.buf.length > this.size && this.pos < this.buf.length / 4) this.buf = Buffer.allocUnsafe(Math.max(this.size, this.pos * 2));
    this.pos = 0;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(v: number): void {
    this.ensure(8);
    const b = this.buf;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A histogram as the payload lays it out (varint n, n bucket steps, n counts); false when it cannot be written exactly. */
function writeHistogram(w: Writer, h: SparseHistogram): boolean {
  if (typeof h !== 'object' || h === null || !Array.isArray(h.idx) || !Array.isArray(h.cnt) || h.idx.length !== h.cnt.length) return false;
  w.varint(h.idx.length);
  let prev = -1;
  for (const i of h.idx) {
    if (!isUint(i) || i <= prev) return false;
    w.varint(i - prev);
    prev = i;
  }
  for (const c of h.cnt) {
    if (!isUint(c)) return false;
    w.varint(c);
  }
  return true;
}

/**
 * A histogram alone in the payload's layout, for readSparseHistogram: a consumer that holds
 * histograms as their payload bytes (the analyzer) makes its others (merged, or from a
 * TcpRecord) the same way. Null when it cannot be written exactly.
 */
export function encodeSparseHistogram(h: SparseHistogram): Uint8Array | null {
  const w = new Writer(8 + 16 * h.idx.length);
  return writeHistogram(w, h) ? w.buf.subarray(0, w.pos) : null;
}

/** The payload for `records`, or null when one of them cannot be written exactly. */
export function encodeTcpPayload(records: readonly TcpRecord[]): Buffer | null {
  const b = new TcpPayloadBuilder();
  for (const r of records) if (!b.add(r)) return null;
  return b.finish();
}

/**
 * Builds one payload a record at a time, so that a producer holds the bytes of the records
 * it has made, not the records (the agent's sweep: records die young instead of living
 * until the frame is written). Each string and owner is written once, when first met.
 */
export class TcpPayloadBuilder {
  private readonly strings = new Map<string, number>();
  private readonly owners = new Map<Owner, number>();
  /** The owners' section: an owner is written when it is first met, its strings with it. */
  private readonly head = new Writer(1024);
  private readonly body = new Writer();
  private readonly out = new Writer(4096);
  /** Records written so far. */
  count = 0;

  private str(s: unknown): number {
    if (typeof s !== 'string') return -1;
    let i = this.strings.get(s);
    if (i === undefined) this.strings.set(s, (i = this.strings.size));
    return i;
  }

  private endpoint(e: Endpoint | null | undefined): boolean {
    if (typeof e !== 'object' || e === null) return false;
    const ip = this.str(e.ip);
    if (ip < 0 || !isUint(e.port)) return false;
    this.body.varint(ip);
    this.body.varint(e.port);
    return true;
  }

  private owner(o: Owner): number {
    let i = this.owners.get(o);
    if (i !== undefined) return i;
    const node = this.str(o.node);
    const comm = this.str(o.comm);
    if (node < 0 || comm < 0 || !isUint(o.netns) || !isUint(o.cgroup_id) || !isUint(o.pid)) return -1;
    if ((o.container_id !== null && typeof o.container_id !== 'string') || (o.pod_uid !== null && typeof o.pod_uid !== 'string')) return -1;
    const head = this.head;
    head.varint(node);
    head.varint(o.netns);
    head.varint(o.cgroup_id);
    head.varint(o.pid);
    head.varint(comm);
    head.varint(o.container_id === null ? 0 : this.str(o.container_id) + 1);
    head.varint(o.pod_uid === null ? 0 : this.str(o.pod_uid) + 1);
    this.owners.set(o, (i = this.owners.size));
    return i;
  }

  /**
   * Writes `r`, or writes nothing and returns false when it cannot be written exactly (a
   * string or owner it introduced may stay in the tables: unused, harmless to decoders).
   */
  add(r: TcpRecord): boolean {
    const body = this.body;
    const start = body.pos;
    if (this.write(r)) {
      this.count++;
      return true;
    }
    body.pos = start;
    return false;
  }

  private write(r: TcpRecord): boolean {
    const body = this.body;
    if (typeof r !== 'object' || r === null || (r.role !== 'client' && r.role !== 'server')) return false;
    if (typeof r.opened !== 'boolean' || typeof r.closed !== 'boolean' || typeof r.owner !== 'object' || r.owner === null) return false;
    const owner = this.owner(r.owner);
    if (owner < 0) return false;
    body.ensure(1);
    body.buf[body.pos++] = (r.role === 'server' ? 1 : 0) | (r.opened ? 2 : 0) | (r.closed ? 4 : 0) | (r.remote_orig !== null ? 8 : 0);
    // Field by field, not a loop over an array of them: that array per record was most of
    // what encoding allocated.
    if (!(this.uint(r.slot_start_ms) && this.uint(r.slot_ms) && this.uint(owner) && this.uint(r.sock_cookie))) return false;
    if (!this.endpoint(r.local) || !this.endpoint(r.remote) || (r.remote_orig !== null && !this.endpoint(r.remote_orig))) return false;
    if (!(this.uint(r.bytes_sent) && this.uint(r.bytes_received) && this.uint(r.segs_sent) && this.uint(r.segs_received) && this.uint(r.retrans_segs))) return false;
    if (!(this.uint(r.rto_count) && this.uint(r.resets_sent) && this.uint(r.resets_received) && this.uint(r.srtt_us) && this.uint(r.min_rtt_us))) return false;
    return writeHistogram(body, r.rtt_hist);
  }

  private uint(v: number): boolean {
    if (!isUint(v)) return false;
    this.body.varint(v);
    return true;
  }

  /**
   * The payload of the records added since the last call, and a fresh start. The bytes are
   * in the builder's own buffer, valid until its next finish(): buffers kept from frame to
   * frame are not external memory allocated anew each time, which V8 counts against the old
   * generation's limit until a full collection (bench/RESULTS.md, issue 4).
   */
  finish(): Buffer {
    const out = this.out;
    out.reset();
    out.varint(this.strings.size);
    for (const s of this.strings.keys()) {
      const n = Buffer.byteLength(s);
      out.varint(n);
      out.ensure(n);
      out.pos += out.buf.write(s, out.pos, n, 'utf8');
    }
    out.varint(this.owners.size);
    out.ensure(this.head.pos + this.body.pos);
    out.pos += this.head.buf.copy(out.buf, out.pos, 0, this.head.pos);
    out.pos += this.body.buf.copy(out.buf, out.pos, 0, this.body.pos);
    this.strings.clear();
    this.owners.clear();
    this.head.reset();
    this.body.reset();
    this.count = 0;
    return out.buf.subarray(0, out.pos);
  }
}

class Reader {
  p = 0;
  end: number;
  strings: string[] = [];

  constructor(public b: Uint8Array) {
    this.end = b.length;
  }

  varint(): number {
    const b = this.b;
    const p = this.p;
    // Up to four bytes (28 bits: indices, ports, most counters) in integer arithmetic; the
    // general loop's floating-point steps were a visible part of decoding.
    if (p + 4 <= this.end) {
      const x0 = b[p]!;
      if (x0 < 0x80) {
        this.p = p + 1;
        return x0;
      }
      const x1 = b[p + 1]!;
      if (x1 < 0x80) {
        this.p = p + 2;
        return (x0 & 0x7f) | (x1 << 7);
      }
      const x2 = b[p + 2]!;
      if (x2 < 0x80) {
        this.p = p + 3;
        return (x0 & 0x7f) | ((x1 & 0x7f) << 7) | (x2 << 14);
      }
      const x3 = b[p + 3]!;
      if (x3 < 0x80) {
        this.p = p + 4;
        return (x0 & 0x7f) | ((x1 & 0x7f) << 7) | ((x2 & 0x7f) << 14) | (x3 << 21);
      }
      // Up to seven bytes (49 bits: epoch milliseconds, namespace inodes, large counters): the
      // bits above 28 as one integer, scaled once.
      if (p + 7 <= this.end) {
        const low = (x0 & 0x7f) | ((x1 & 0x7f) << 7) | ((x2 & 0x7f) << 14) | ((x3 & 0x7f) << 21);
        const x4 = b[p + 4]!;
        if (x4 < 0x80) {
          this.p = p + 5;
          return low + x4 * 2 ** 28;
        }
        const x5 = b[p + 5]!;
        if (x5 < 0x80) {
          this.p = p + 6;
          return low + ((x4 & 0x7f) | (x5 << 7)) * 2 ** 28;
        }
        const x6 = b[p + 6]!;
        if (x6 < 0x80) {
          this.p = p + 7;
          return low + ((x4 & 0x7f) | ((x5 & 0x7f) << 7) | (x6 << 14)) * 2 ** 28;
        }
      }
    }
    return this.longVarint();
  }

  private longVarint(): number {
    const b = this.b;
    let v = 0;
    let scale = 1;
    for (;;) {
      if (this.p >= this.end) throw new TcpCodecError('truncated varint');
      const x = b[this.p++]!;
      v += (x & 0x7f) * scale;
      if (x < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 49) throw new TcpCodecError('varint longer than 53 bits');
    }
    if (v > MAX_SAFE) throw new TcpCodecError('varint larger than 2^53');
    return v;
  }

  strIndex(): number {
    const i = this.varint();
    if (i >= this.strings.length) throw new TcpCodecError(`string index ${i} of ${this.strings.length}`);
    return i;
  }

  str(): string {
    return this.strings[this.strIndex()]!;
  }

  optStr(): string | null {
    const i = this.varint();
    if (i > this.strings.length) throw new TcpCodecError(`string index ${i - 1} of ${this.strings.length}`);
    return i === 0 ? null : this.strings[i - 1]!;
  }
}

/** The bucket count of the histogram at the reader's position, read. */
function histogramLength(r: Reader): number {
  const n = r.varint();
  if (n > r.end - r.p) throw new TcpCodecError(`histogram of ${n} buckets runs past the payload`);
  return n;
}

/** The `n` buckets of a histogram after its length into `idx` and `cnt`, from index 0. */
function readBuckets(r: Reader, n: number, idx: number[], cnt: number[]): void {
  let prev = -1;
  for (let i = 0; i < n; i++) idx[i] = prev += r.varint();
  for (let i = 0; i < n; i++) cnt[i] = r.varint();
}

/** One reader, re-pointed for each histogram read back from bytes: reading one allocates nothing. */
const histogramReader = new Reader(new Uint8Array(0));

/**
 * The histogram at `pos` of `b` (a payload at a reader's `rtt_pos`, or encodeSparseHistogram's
 * bytes at 0), as TcpPayloadReader reads it, into the first entries of `idx` and `cnt`: arrays
 * a caller reuses, which may be longer (their lengths are left alone: setting one is a
 * runtime call). Returns the bucket count.
 */
export function readSparseHistogram(b: Uint8Array, pos: number, idx: number[], cnt: number[]): number {
  const r = histogramReader;
  r.b = b;
  r.p = pos;
  r.end = b.length;
  const n = histogramLength(r);
  readBuckets(r, n, idx, cnt);
  return n;
}

/**
 * Reads a payload one record at a time into its own fields, flat: each endpoint's address and
 * port side by side (an absent remote_orig is '' with index -1: an address is never ''), the
 * addresses also as their index into the frame's string table. A consumer that keeps its own
 * form of a record (the analyzer's held sides) copies what it needs and makes no TcpRecord,
 * no endpoint objects, no histogram object; `record()` makes the TcpRecord. Every field is a
 * non-negative safe integer, a string of the table, or the type it is declared as: ranges
 * (ports, slot lengths, addresses) are the consumer's to validate.
 */
export class TcpPayloadReader {
  readonly strings: string[];
  readonly owners: Owner[] = [];
  role: Role = 'client';
  opened = false;
  closed = false;
  slot_start_ms = 0;
  slot_ms = 0;
  owner_index = 0;
  owner!: Owner;
  sock_cookie = 0;
  local_ip = '';
  local_ip_index = 0;
  local_port = 0;
  remote_ip = '';
  remote_ip_index = 0;
  remote_port = 0;
  orig_ip = '';
  orig_ip_index = -1;
  orig_port = 0;
  bytes_sent = 0;
  bytes_received = 0;
  segs_sent = 0;
  segs_received = 0;
  retrans_segs = 0;
  rto_count = 0;
  resets_sent = 0;
  resets_received = 0;
  srtt_us = 0;
  min_rtt_us = 0;
  /**
   * The sparse RTT histogram: its first `rtt_n` entries. The arrays are the reader's, reused
   * for every record (the analyzer reads them only to validate, then keeps the bytes below);
   * `record()` copies them.
   */
  readonly rtt_idx: number[] = [];
  readonly rtt_cnt: number[] = [];
  rtt_n = 0;
  /**
   * The payload, and where the histogram is in it, for readSparseHistogram: the analyzer holds
   * each record until its connection's other end arrives or its slot closes, and holding two arrays per record made them much of
   * what its scavenges copied; it holds these instead.
   */
  readonly rtt_bytes: Uint8Array;
  rtt_pos = 0;
  private readonly r: Reader;

  /** Reads the string and owner tables; throws TcpCodecError on anything malformed. */
  constructor(b: Uint8Array) {
    const r = (this.r = new Reader(b));
    this.rtt_bytes = b;
    const end = b.length;
    const nStrings = r.varint();
    if (nStrings > end) throw new TcpCodecError(`${nStrings} strings in ${end} bytes`);
    const view = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < nStrings; i++) {
      const n = r.varint();
      if (n > end - r.p) throw new TcpCodecError('string runs past the payload');
      r.strings.push(view.toString('utf8', r.p, r.p + n));
      r.p += n;
    }
    this.strings = r.strings;
    const nOwners = r.varint();
    if (nOwners > end) throw new TcpCodecError(`${nOwners} owners in ${end} bytes`);
    for (let i = 0; i < nOwners; i++) {
      this.owners.push({ node: r.str(), netns: r.varint(), cgroup_id: r.varint(), pid: r.varint(), comm: r.str(), container_id: r.optStr(), pod_uid: r.optStr() });
    }
  }

  /** Reads the next record into the fields; false when the payload ended cleanly before one. */
  next(): boolean {
    const r = this.r;
    if (r.p >= r.end) return false;
    const flags = r.b[r.p++]!;
    if (flags > 15) throw new TcpCodecError(`record flags 0x${flags.toString(16)}`);
    this.role = flags & 1 ? 'server' : 'client';
    this.opened = (flags & 2) !== 0;
    this.closed = (flags & 4) !== 0;
    this.slot_start_ms = r.varint();
    this.slot_ms = r.varint();
    const o = r.varint();
    if (o >= this.owners.length) throw new TcpCodecError(`owner index ${o} of ${this.owners.length}`);
    this.owner_index = o;
    this.owner = this.owners[o]!;
    this.sock_cookie = r.varint();
    this.local_ip_index = r.strIndex();
    this.local_ip = r.strings[this.local_ip_index]!;
    this.local_port = r.varint();
    this.remote_ip_index = r.strIndex();
    this.remote_ip = r.strings[this.remote_ip_index]!;
    this.remote_port = r.varint();
    if (flags & 8) {
      this.orig_ip_index = r.strIndex();
      this.orig_ip = r.strings[this.orig_ip_index]!;
      this.orig_port = r.varint();
    } else {
      this.orig_ip_index = -1;
      this.orig_ip = '';
      this.orig_port = 0;
    }
    this.bytes_sent = r.varint();
    this.bytes_received = r.varint();
    this.segs_sent = r.varint();
    this.segs_received = r.varint();
    this.retrans_segs = r.varint();
    this.rto_count = r.varint();
    this.resets_sent = r.varint();
    this.resets_received = r.varint();
    this.srtt_us = r.varint();
    this.min_rtt_us = r.varint();
    this.rtt_pos = r.p;
    this.rtt_n = histogramLength(r);
    readBuckets(r, this.rtt_n, this.rtt_idx, this.rtt_cnt);
    return true;
  }

  /** The record last read, as a TcpRecord. */
  record(): TcpRecord {
    return {
      slot_start_ms: this.slot_start_ms,
      slot_ms: this.slot_ms,
      owner: this.owner,
      sock_cookie: this.sock_cookie,
      role: this.role,
      local: { ip: this.local_ip, port: this.local_port },
      remote: { ip: this.remote_ip, port: this.remote_port },
      remote_orig: this.orig_ip_index < 0 ? null : { ip: this.orig_ip, port: this.orig_port },
      bytes_sent: this.bytes_sent,
      bytes_received: this.bytes_received,
      segs_sent: this.segs_sent,
      segs_received: this.segs_received,
      retrans_segs: this.retrans_segs,
      rto_count: this.rto_count,
      resets_sent: this.resets_sent,
      resets_received: this.resets_received,
      srtt_us: this.srtt_us,
      min_rtt_us: this.min_rtt_us,
      rtt_hist: { idx: this.rtt_idx.slice(0, this.rtt_n), cnt: this.rtt_cnt.slice(0, this.rtt_n) },
      opened: this.opened,
      closed: this.closed,
    };
  }

  /** After the last record: throws unless the payload ends exactly there. */
  end(count: number): void {
    const r = this.r;
    if (r.p !== r.end) throw new TcpCodecError(`${r.end - r.p} bytes after record ${count}`);
  }
}

/**
 * Decodes up to `count` records, each built by `build` from the reader (default: a
 * TcpRecord): fewer when the payload ends cleanly before (the caller reports the count
 * mismatch); throws TcpCodecError on anything malformed.
 */
export function decodeTcpPayload<R = TcpRecord>(b: Uint8Array, count: number, build: (r: TcpPayloadReader) => R = (r) => r.record() as R): R[] {
  const reader = new TcpPayloadReader(b);
  const records: R[] = [];
  while (records.length < count && reader.next()) records.push(build(reader));
  reader.end(count);
  return records;
}
