/**
 * Rows to ClickHouse's RowBinary input format, driven by the column types the table itself
 * reports, so a migration that changes a type changes the encoding with it. JSON was the
 * largest single cost of an insert (bench/RESULTS.md): every number went to text and back.
 * Only the types our tables use are known; any other fails loudly when the encoder is built,
 * never silently mid-insert.
 */

/** Text this long is copied from its cached encoding instead of a character at a time. */
const CACHED_MIN_CHARS = 24;
/** Past this many entries the cache starts over: it is for text that repeats, not for all text. */
const CACHED_MAX_ENTRIES = 4096;
/** By text: its RowBinary String (length and UTF-8 bytes), for `repeated`. */
const encodedText = new Map<string, Buffer>();

/**
 * Blocks of memory for ByteWriters, handed back once what was written in them has been sent.
 * A unit's inserts run to megabytes: new buffers for every unit were pages the kernel had to
 * fault in and zero, and external memory that V8 counts towards scheduling its GCs.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly blockBytes: number,
    /** Most blocks kept unused: beyond it, blocks handed back are left to the GC. */
    private readonly maxFree: number,
  ) {}

  take(minBytes: number): Buffer {
    if (minBytes <= this.blockBytes) {
      const b = this.free.pop();
      if (b) return b;
    }
    return Buffer.allocUnsafe(Math.max(minBytes, this.blockBytes));
  }

  give(b: Buffer): void {
    if (b.length === this.blockBytes && this.free.length < this.maxFree) this.free.push(b);
  }
}

/**
 * A growable byte buffer written front to back. Growing starts a new buffer after the written
 * part of the current one instead of copying that part: a unit's inserts run to megabytes, and
 * the copies of a doubling buffer were a visible cost of the analyzer. The new buffer is twice
 * the size, or with a pool the pool's next block. Every write is preceded by `ensure` of its
 * length and reads `buf` and `pos` after it, so the bytes of one write are contiguous; the
 * stream as a whole may break between writes.
 */
export class ByteWriter {
  buf: Buffer;
  pos = 0;
  /** The buffers filled before `buf`, cut to their written parts. */
  private readonly filled: Buffer[] = [];
  private filledBytes = 0;
  /** With a pool: every buffer taken from it, for `release`. */
  private readonly taken: Buffer[] = [];

  constructor(
    initial = 64 * 1024,
    private readonly pool: BufferPool | null = null,
  ) {
    this.buf = this.take(initial);
  }

  private take(n: number): Buffer {
    if (!this.pool) return Buffer.allocUnsafe(n);
    const b = this.pool.take(n);
    this.taken.push(b);
    return b;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > 0) this.filled.push(this.buf.subarray(0, this.pos));
    this.filledBytes += this.pos;
    this.buf = this.take(this.pool ? n : Math.max(this.buf.length * 2, n));
    this.pos = 0;
  }

  /** Hands the buffers back to the pool: the writer and every chunk it gave out are done with. */
  release(): void {
    if (!this.pool) return;
    for (const b of this.taken) this.pool.give(b);
    this.taken.length = 0;
    this.filled.length = 0;
    this.filledBytes = 0;
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.filledBytes + this.pos;
  }

  /** The bytes written so far, in order, as views of the buffers (not copies). */
  chunks(): Buffer[] {
    return [...this.filled, this.buf.subarray(0, this.pos)];
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  varint(v: number): void {
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  string(s: string): void {
    const n = s.length;
    if (n < 128) {
      // Labels, addresses, IDs and numbers-as-text are short ASCII: copying chars beats a native call.
      this.ensure(1 + n);
      const b = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[start + i] = c;
      }
      if (i === n) {
        b[this.pos] = n;
        this.pos = start + n;
        return;
      }
    }
    const bytes = Buffer.byteLength(s);
    this.varint(bytes);
    this.ensure(bytes);
    this.pos += this.buf.write(s, this.pos, bytes, 'utf8');
  }

  /**
   * A String of text that repeats from row to row (labels, container IDs). The character loop
   * of `string` costs ~2-3 ns a character, a 64-character container ID ~150 ns; copying its
   * encoding from a cache by one native call ~60 ns, lookup included. Short text stays with
   * the loop, which beats the lookup there.
   */
  repeated(s: string): void {
    if (s.length < CACHED_MIN_CHARS) return this.string(s);
    let e = encodedText.get(s);
    if (e === undefined) {
      const w = new ByteWriter(s.length * 3 + 5);
      w.string(s);
      e = w.buf.subarray(0, w.pos);
      if (encodedText.size >= CACHED_MAX_ENTRIES) encodedText.clear();
      encodedText.set(s, e);
    }
    this.ensure(e.length);
    this.buf.set(e, this.pos);
    this.pos += e.length;
  }

  /**
   * A String of the decimal text of `v`, as `String(v)` spells it, without making the string
   * (per-row ids in attrs: most are distinct, so V8's number-string cache misses). Integers
   * below 2^32 take 32-bit arithmetic (about a quarter of the time of `String`); others the string.
   */
  decimal(v: number): void {
    if (!(v >= 0 && v <= 0xffffffff && v === Math.floor(v))) return this.string(String(v));
    const digits = v < 1e5 ? (v < 10 ? 1 : v < 100 ? 2 : v < 1e3 ? 3 : v < 1e4 ? 4 : 5) : v < 1e6 ? 6 : v < 1e7 ? 7 : v < 1e8 ? 8 : v < 1e9 ? 9 : 10;
    this.ensure(1 + digits);
    const b = this.buf;
    b[this.pos] = digits;
    let p = this.pos + digits;
    this.pos = p + 1;
    let x = v >>> 0;
    do {
      const q = (x / 10) >>> 0;
      b[p--] = 48 + x - q * 10;
      x = q;
    } while (x !== 0);
  }

  /** Bytes encoded elsewhere (short constants), copied by a loop as `string` copies short text. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const b = this.buf;
    const p = this.pos;
    for (let i = 0; i < n; i++) b[p + i] = bytes[i]!;
    this.pos = p + n;
  }
}

export type ColumnWriter = (out: ByteWriter, v: unknown) => void;

/**
 * A value for a Map column of string keys and values that writes its own entries, for a map
 * made per row from a few fields (a flow row's attrs): cheaper than an object per row that the
 * writer then lists, and its numbers need no string. Any other Map column refuses it.
 */
export abstract class StringMapEntries {
  abstract readonly size: number;
  /** Writes `size` key/value pairs, each a RowBinary String. */
  abstract writeEntries(out: ByteWriter): void;
}

/**
 * A value for an Array(UInt16) or Array(UInt32) column given as the non-zero entries of a run
 * (a sparse histogram's `idx` and `cnt`, their first `n` entries: the arrays are reused from
 * row to row): written as every element from `idx[0]` to the last index, zeros between,
 * without making that array per row. Any other column refuses it.
 */
export class SparseRun {
  n = 0;
  readonly idx: number[] = [];
  readonly cnt: number[] = [];
}

export class RowBinaryTypeError extends Error {
  override name = 'RowBinaryTypeError';
}

/** Splits "A, B(C, D), 'x, y'" at top-level commas. */
function topLevelArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "'" && s[i - 1] !== '\\') quoted = !quoted;
    else if (quoted) continue;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

/**
 * A fixed-width column type as source code, for the row encoder to write inline: `bytes` wide;
 * `code(at)` is statements writing the value `v` into Buffer `b` at `p + at`, with the
 * column's `helper` as `h`. A row's runs of fixed-width columns then cost one `ensure` and no
 * call per column: for a flow row (30 of its 48 columns) that is 6-9% less time building and
 * encoding it (bench/flow-rows.bench.ts, bench/RESULTS.md).
 */
interface FixedWidth {
  bytes: number;
  code: (at: number) => string;
  helper?: unknown;
}

/** Little-endian bytes of the 32-bit value `x` at `p + at` (Buffer stores keep the low 8 bits). */
const le32 = (x: string, at: number) => `b[p + ${at}] = ${x}; b[p + ${at + 1}] = ${x} >>> 8; b[p + ${at + 2}] = ${x} >>> 16; b[p + ${at + 3}] = ${x} >>> 24;`;

/** UInt64 of the number `x`, exact up to 2^53, which every counter here stays below; most fit 32 bits and skip the division. */
const le64 = (x: string, at: number) =>
  `if (${x} <= 0xffffffff) { ${le32(x, at)} ${le32('0', at + 4)} } else { const lo = ${x} % 0x100000000; const hi = (${x} - lo) / 0x100000000; ${le32('lo', at)} ${le32('hi', at + 4)} }`;

const UINTS: Record<string, FixedWidth> = {
  UInt8: { bytes: 1, code: (at) => `b[p + ${at}] = v;` },
  UInt16: { bytes: 2, code: (at) => `b[p + ${at}] = v; b[p + ${at + 1}] = v >>> 8;` },
  UInt32: { bytes: 4, code: (at) => le32('v', at) },
  UInt64: { bytes: 8, code: (at) => le64('v', at) },
};

/** Int64 ticks, little-endian two's complement: times before 1970 take BigInt in `h.negative`. */
function int64Ticks(ticks: string, helper: { negative: (b: Buffer, at: number, v: number) => void; scale: number }): FixedWidth {
  return { bytes: 8, helper, code: (at) => `{ const t = ${ticks}; if (t >= 0) { ${le64('t', at)} } else h.negative(b, p + ${at}, t); }` };
}

/** The fixed-width encoding of a column type, as `system.columns.type` spells it; null for a type of variable width. */
function fixedWidth(type: string): FixedWidth | null {
  const m = /^(\w+)(?:\((.*)\))?$/s.exec(type.trim());
  if (!m) return null;
  const [, name, inner = ''] = m;
  const uint = UINTS[name!];
  if (uint && inner === '') return uint;
  switch (name) {
    case 'Bool':
      return { bytes: 1, code: (at) => `b[p + ${at}] = v ? 1 : 0;` };
    case 'LowCardinality':
      // On the wire LowCardinality is its inner type: the dictionary is the server's business.
      return fixedWidth(inner);
    case 'Enum8': {
      const codes = new Map<string, number>();
      for (const item of topLevelArgs(inner)) {
        const e = /^'((?:[^'\\]|\\.)*)'\s*=\s*(-?\d+)$/.exec(item);
        if (!e) throw new RowBinaryTypeError(`cannot parse enum item ${item} of ${type}`);
        codes.set(e[1]!.replace(/\\(.)/g, '$1'), Number(e[2]));
      }
      const helper = {
        codes,
        unknown: (v: unknown): never => {
          throw new RowBinaryTypeError(`${String(v)} is not a value of ${type}`);
        },
      };
      return { bytes: 1, helper, code: (at) => `{ const c = h.codes.get(v); b[p + ${at}] = (c === undefined ? h.unknown(v) : c) & 0xff; }` };
    }
    case 'DateTime64': {
      // Rows carry epoch milliseconds; the column stores ticks of 10^-precision seconds.
      const precision = Number(topLevelArgs(inner)[0]);
      if (!Number.isInteger(precision) || precision < 0 || precision > 9) throw new RowBinaryTypeError(`cannot parse column type ${type}`);
      const helper = { scale: 10 ** (precision - 3), negative: (b: Buffer, at: number, v: number) => b.writeBigInt64LE(BigInt(v), at) };
      return int64Ticks(precision === 3 ? 'v' : 'Math.round(v * h.scale)', helper);
    }
    case 'DateTime':
      return { bytes: 4, code: (at) => `{ const s = Math.floor(v / 1000); ${le32('s', at)} }` };
    default:
      return null;
  }
}

/** One fixed-width column's writer on its own (array elements, a Nullable's value). */
function fixedWriter(f: FixedWidth): ColumnWriter {
  return new Function('h', `return (o, v) => { o.ensure(${f.bytes}); const b = o.buf; const p = o.pos; ${f.code(0)} o.pos = p + ${f.bytes}; };`)(f.helper) as ColumnWriter;
}

/** Arrays of plain unsigned integers (histograms) without a call per element; also from a SparseRun. */
function uintArrayWriter(width: 'UInt16' | 'UInt32'): ColumnWriter {
  const bytes = width === 'UInt16' ? 2 : 4;
  const put = (b: Buffer, p: number, x: number) => {
    b[p] = x;
    b[p + 1] = x >>> 8;
    if (bytes === 4) {
      b[p + 2] = x >>> 16;
      b[p + 3] = x >>> 24;
    }
  };
  return (o, v) => {
    if (v instanceof SparseRun) {
      const { idx, cnt } = v;
      const k = v.n;
      const first = k === 0 ? 0 : idx[0]!;
      const n = k === 0 ? 0 : idx[k - 1]! - first + 1;
      o.varint(n);
      o.ensure(n * bytes);
      const b = o.buf;
      const p = o.pos;
      const end = p + n * bytes;
      // A run is a few buckets wide: a loop beats fill's native call.
      for (let i = p; i < end; i++) b[i] = 0;
      for (let i = 0; i < k; i++) put(b, p + (idx[i]! - first) * bytes, cnt[i]!);
      o.pos = end;
      return;
    }
    const a = v as number[];
    const n = a.length;
    o.varint(n);
    o.ensure(n * bytes);
    const b = o.buf;
    let p = o.pos;
    for (let i = 0; i < n; i++) {
      put(b, p, a[i]!);
      p += bytes;
    }
    o.pos = p;
  };
}

/** String on the wire: String itself or LowCardinality of it. */
function isStringType(type: string): boolean {
  const t = type.trim();
  return t === 'String' || t === 'LowCardinality(String)';
}

/** The writer for one ClickHouse column type, as `system.columns.type` spells it. */
export function columnWriter(type: string): ColumnWriter {
  const m = /^(\w+)(?:\((.*)\))?$/s.exec(type.trim());
  if (!m) throw new RowBinaryTypeError(`cannot parse column type ${type}`);
  const fixed = fixedWidth(type);
  if (fixed) return fixedWriter(fixed);
  const [, name, inner = ''] = m;
  switch (name) {
    case 'String':
      return (o, v) => o.string(v as string);
    case 'LowCardinality':
      // Its values repeat by definition.
      return inner === 'String' ? (o, v) => o.repeated(v as string) : columnWriter(inner);
    case 'Nullable': {
      const w = columnWriter(inner);
      return (o, v) => {
        if (v === null || v === undefined) return o.u8(1);
        o.u8(0);
        w(o, v);
      };
    }
    case 'Array': {
      if (inner === 'UInt16' || inner === 'UInt32') return uintArrayWriter(inner);
      const w = columnWriter(inner);
      return (o, v) => {
        if (v instanceof SparseRun) throw new RowBinaryTypeError(`${type} cannot take a sparse run`);
        const a = v as unknown[];
        o.varint(a.length);
        for (let i = 0; i < a.length; i++) w(o, a[i]);
      };
    }
    case 'Map': {
      const [k, val] = topLevelArgs(inner);
      if (!k || !val) throw new RowBinaryTypeError(`cannot parse column type ${type}`);
      const wk = columnWriter(k);
      const wv = columnWriter(val);
      const strings = isStringType(k) && isStringType(val);
      return (o, v) => {
        if (v instanceof StringMapEntries) {
          if (!strings) throw new RowBinaryTypeError(`${type} cannot take string entries`);
          o.varint(v.size);
          v.writeEntries(o);
          return;
        }
        const m = v as Record<string, unknown>;
        const keys = Object.keys(m);
        o.varint(keys.length);
        for (const key of keys) {
          wk(o, key);
          wv(o, m[key]);
        }
      };
    }
    default:
      throw new RowBinaryTypeError(`column type ${type} has no RowBinary writer here`);
  }
}

/** Encodes one row into `out`; rows are written as they are produced, none is held for the insert. */
export type RowEncoder = (out: ByteWriter, row: Record<string, unknown>) => void;

/**
 * Encodes a row carrying `columns` as properties for `INSERT ... (columns) FORMAT RowBinary`.
 * The column sequence is generated once per encoder as straight-line code: each column then
 * has its own property read and call site, which V8 keeps monomorphic, where one generic
 * loop reads ~50 different names at one site (megamorphic) and calls ~10 different writers
 * through one call site. Consecutive fixed-width columns are written inline after one
 * `ensure` for all of them. Column names are checked to be plain identifiers first.
 */
export function rowEncoder(columns: { name: string; type: string }[]): RowEncoder {
  for (const c of columns) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(c.name)) throw new RowBinaryTypeError(`column name ${JSON.stringify(c.name)} is not a plain identifier`);
  /** By column: a fixed-width column's helper, any other column's writer. */
  const helpers: unknown[] = [];
  const body: string[] = [];
  let run: string[] = [];
  let runBytes = 0;
  const endRun = () => {
    if (runBytes === 0) return;
    body.push(`out.ensure(${runBytes}); b = out.buf; p = out.pos;`, ...run, `out.pos = p + ${runBytes};`);
    run = [];
    runBytes = 0;
  };
  columns.forEach((c, i) => {
    const fixed = fixedWidth(c.type);
    if (fixed) {
      helpers.push(fixed.helper);
      run.push(`{ const v = row.${c.name}; const h = h${i}; ${fixed.code(runBytes)} }`);
      runBytes += fixed.bytes;
    } else {
      helpers.push(columnWriter(c.type));
      endRun();
      body.push(`h${i}(out, row.${c.name});`);
    }
  });
  endRun();
  return new Function(
    'helpers',
    `${columns.map((_, i) => `const h${i} = helpers[${i}];`).join(' ')}
     return (out, row) => {
       let b, p;
       ${body.join('\n       ')}
     };`,
  )(helpers) as RowEncoder;
}
