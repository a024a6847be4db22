/**
 * `--output stdout`: records as JSON lines, `{"type":...}` then the record's own fields, the
 * text of JSON.stringify({ type, ...record }). tcp records, one per active socket per slot,
 * are most of the output: they are written field by field straight into the bytes that go
 * out, each owner's text (shared by the sockets of one process) encoded once. Built as
 * strings, a tcp line cost ~3 KB of V8 heap (number strings, concatenations, the flattened
 * line, its share of the joined write) and the young-generation collections that came with
 * it were most of the loaded agent's CPU (bench/RESULTS.md, issue 4).
 */
import type { Endpoint, Owner, TcpRecord } from '@meshlens/schemas';

export function jsonLine(type: string, record: object): string {
  const body = JSON.stringify(record);
  return `{"type":${JSON.stringify(type)}${body.length > 2 ? ',' : ''}${body.slice(1)}`;
}

/**
 * Bytes per chunk handed to the sink. Chunks live outside V8's heap, so their size costs no
 * collections: only the number of writes.
 */
const CHUNK = 64 * 1024;
/**
 * Room a tcp line needs besides its owner and histogram: its keys and punctuation (~400
 * bytes), three endpoints (45-character IPv6 texts) and 17 numbers (at most 24 characters
 * each, as String gives them).
 */
const TCP_FIXED = 1024;
/** Per histogram bucket: two numbers and two commas. */
const PER_BUCKET = 50;

const ascii = (s: string) => Buffer.from(s, 'latin1');
const K = {
  slotStart: ascii('{"type":"tcp","slot_start_ms":'),
  slotMs: ascii(',"slot_ms":'),
  owner: ascii(',"owner":'),
  cookie: ascii(',"sock_cookie":'),
  role: ascii(',"role":"'),
  local: ascii('","local":'),
  remote: ascii(',"remote":'),
  remoteOrig: ascii(',"remote_orig":'),
  bytesSent: ascii(',"bytes_sent":'),
  bytesReceived: ascii(',"bytes_received":'),
  segsSent: ascii(',"segs_sent":'),
  segsReceived: ascii(',"segs_received":'),
  retransSegs: ascii(',"retrans_segs":'),
  rtoCount: ascii(',"rto_count":'),
  resetsSent: ascii(',"resets_sent":'),
  resetsReceived: ascii(',"resets_received":'),
  srtt: ascii(',"srtt_us":'),
  minRtt: ascii(',"min_rtt_us":'),
  hist: ascii(',"rtt_hist":{"idx":['),
  histCnt: ascii('],"cnt":['),
  opened: ascii(']},"opened":'),
  closed: ascii(',"closed":'),
  ip: ascii('{"ip":"'),
  port: ascii('","port":'),
  true: ascii('true'),
  false: ascii('false'),
  null: ascii('null'),
};

/**
 * JSON lines written into chunks of bytes; `sink` receives each chunk as it fills and at
 * `flush`, and owns it from then on.
 */
export class JsonLines {
  private buf = Buffer.allocUnsafe(CHUNK);
  private at = 0;
  private readonly ownerText = new WeakMap<Owner, Buffer>();

  constructor(private readonly sink: (chunk: Buffer) => void) {}

  tcp(r: TcpRecord): void {
    const owner = this.ownerJson(r.owner);
    this.room(TCP_FIXED + owner.length + PER_BUCKET * r.rtt_hist.idx.length);
    this.bytes(K.slotStart);
    this.num(r.slot_start_ms);
    this.bytes(K.slotMs);
    this.num(r.slot_ms);
    this.bytes(K.owner);
    this.bytes(owner);
    this.bytes(K.cookie);
    this.num(r.sock_cookie);
    this.bytes(K.role);
    this.text(r.role);
    this.bytes(K.local);
    this.endpoint(r.local);
    this.bytes(K.remote);
    this.endpoint(r.remote);
    this.bytes(K.remoteOrig);
    if (r.remote_orig) this.endpoint(r.remote_orig);
    else this.bytes(K.null);
    this.bytes(K.bytesSent);
    this.num(r.bytes_sent);
    this.bytes(K.bytesReceived);
    this.num(r.bytes_received);
    this.bytes(K.segsSent);
    this.num(r.segs_sent);
    this.bytes(K.segsReceived);
    this.num(r.segs_received);
    this.bytes(K.retransSegs);
    this.num(r.retrans_segs);
    this.bytes(K.rtoCount);
    this.num(r.rto_count);
    this.bytes(K.resetsSent);
    this.num(r.resets_sent);
    this.bytes(K.resetsReceived);
    this.num(r.resets_received);
    this.bytes(K.srtt);
    this.num(r.srtt_us);
    this.bytes(K.minRtt);
    this.num(r.min_rtt_us);
    this.bytes(K.hist);
    this.nums(r.rtt_hist.idx);
    this.bytes(K.histCnt);
    this.nums(r.rtt_hist.cnt);
    this.bytes(K.opened);
    this.bytes(r.opened ? K.true : K.false);
    this.bytes(K.closed);
    this.bytes(r.closed ? K.true : K.false);
    this.buf[this.at++] = 0x7d; // }
    this.buf[this.at++] = 0x0a;
  }

  /** Any other record, as `jsonLine` gives it. */
  line(type: string, record: object): void {
    const s = jsonLine(type, record);
    this.room(Buffer.byteLength(s) + 1);
    this.at += this.buf.write(s, this.at);
    this.buf[this.at++] = 0x0a;
  }

  /** Hands over what was written since the last chunk went. */
  flush(): void {
    if (this.at === 0) return;
    this.sink(this.buf.subarray(0, this.at));
    this.buf = Buffer.allocUnsafe(CHUNK);
    this.at = 0;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  private ownerJson(o: Owner): Buffer {
    let t = this.ownerText.get(o);
    if (t === undefined) this.ownerText.set(o, (t = Buffer.from(JSON.stringify(o))));
    return t;
  }

  private bytes(b: Uint8Array): void {
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** Text the agent made itself (roles, dotted quads, RFC 5952): ASCII, nothing to escape. */
  private text(s: string): void {
    for (let i = 0; i < s.length; i++) this.buf[this.at++] = s.charCodeAt(i);
  }

  private endpoint(e: Endpoint): void {
    this.bytes(K.ip);
    this.text(e.ip);
    this.bytes(K.port);
    this.num(e.port);
    this.buf[this.at++] = 0x7d; // }
  }

  private nums(xs: readonly number[]): void {
    for (let i = 0; i < xs.length; i++) {
      if (i > 0) this.buf[this.at++] = 0x2c; // ,
      this.num(xs[i]!);
    }
  }

  /** As String(n) writes it; digit by digit for the non-negative integers records hold. */
  private num(n: number): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) {
      this.text(String(n));
      return;
    }
    let len = 1;
    for (let p = 10; p <= n; p *= 10) len++;
    let i = (this.at += len);
    let v = n;
    while (v >= 10) {
      const q = Math.floor(v / 10);
      this.buf[--i] = 0x30 + (v - q * 10);
      v = q;
    }
    this.buf[--i] = 0x30 + v;
  }
}
