/**
 * The one RTT histogram layout used everywhere: in the kernel (bpf/), on the wire, in
 * ClickHouse rows and in every rollup. Buckets are log-linear over microseconds:
 * values below 2^SUB_BITS are exact, above that every power of two is split into
 * 2^SUB_BITS equal sub-buckets, so a bucket is never wider than 1/16 (6.25%) of its
 * lower bound. Because the layout is fixed, histograms from any two sockets, slots or
 * rollups add bucket by bucket and percentiles stay exact to one bucket at every level.
 *
 * The C side (bpf/src/hist.h) computes the same index; a test checks both agree.
 */
export const HIST_SUB_BITS = 4;
const SUB = 1 << HIST_SUB_BITS;
/** Highest power of two that still gets its own buckets; larger values clamp to the last bucket. */
export const HIST_MAX_EXP = 25;
/** 16 exact buckets + 16 sub-buckets for each exponent 4..25: covers 0 us .. ~67 s. */
export const HIST_BUCKETS = SUB + (HIST_MAX_EXP - HIST_SUB_BITS + 1) * SUB;

/** Bucket index for a value in microseconds. */
export function bucketOf(us: number): number {
  if (!(us >= 0)) return 0;
  const v = Math.floor(us);
  if (v < SUB) return v;
  const e = Math.floor(Math.log2(v));
  if (e > HIST_MAX_EXP) return HIST_BUCKETS - 1;
  // Math.log2 can round up just below a power of two; correct it with exact integer checks.
  const exp = 2 ** e > v ? e - 1 : e;
  const sub = Math.floor(v / 2 ** (exp - HIST_SUB_BITS)) - SUB;
  return SUB + (exp - HIST_SUB_BITS) * SUB + sub;
}

/** Inclusive lower bound of bucket i in microseconds. */
export function bucketLower(i: number): number {
  if (i < SUB) return i;
  const exp = HIST_SUB_BITS + Math.floor((i - SUB) / SUB);
  const sub = (i - SUB) % SUB;
  return (SUB + sub) * 2 ** (exp - HIST_SUB_BITS);
}

/** Exclusive upper bound of bucket i in microseconds. */
export function bucketUpper(i: number): number {
  return i + 1 < HIST_BUCKETS ? bucketLower(i + 1) : Number.POSITIVE_INFINITY;
}

/**
 * Sparse form: only non-empty buckets, `idx` strictly increasing, `cnt` > 0.
 * Records and ClickHouse rows carry this; the dense form is only a working buffer.
 */
export interface SparseHistogram {
  idx: number[];
  cnt: number[];
}

export function emptyHistogram(): SparseHistogram {
  return { idx: [], cnt: [] };
}

/** `dense[i]` is the count of bucket `first + i` (0 for a whole histogram, a run's `first` for a run). */
export function fromDense(dense: ArrayLike<number>, first = 0): SparseHistogram {
  const out = emptyHistogram();
  for (let i = 0; i < dense.length; i++) {
    const c = dense[i]!;
    if (c > 0) {
      out.idx.push(first + i);
      out.cnt.push(c);
    }
  }
  return out;
}

/**
 * Run form, as tcp_flows stores a histogram (migration 0008): the counts of every bucket from
 * the lowest occupied one to the highest, zeros in between. One connection's samples in one
 * slot sit in neighbouring buckets, so this needs no index per bucket and compresses smaller.
 */
export interface BucketRun {
  first: number;
  counts: number[];
}

export function toBucketRun(h: SparseHistogram): BucketRun {
  const n = h.idx.length;
  if (n === 0) return { first: 0, counts: [] };
  const first = h.idx[0]!;
  const counts = new Array<number>(h.idx[n - 1]! - first + 1).fill(0);
  for (let k = 0; k < n; k++) counts[h.idx[k]! - first] = h.cnt[k]!;
  return { first, counts };
}

export function fromSamples(samplesUs: Iterable<number>): SparseHistogram {
  const dense = new Float64Array(HIST_BUCKETS);
  for (const s of samplesUs) dense[bucketOf(s)]! += 1;
  return fromDense(dense);
}

/** Bucket-wise sum; the inputs are not modified. */
export function mergeHistograms(...hs: SparseHistogram[]): SparseHistogram {
  const dense = new Float64Array(HIST_BUCKETS);
  for (const h of hs) for (let k = 0; k < h.idx.length; k++) dense[h.idx[k]!]! += h.cnt[k]!;
  return fromDense(dense);
}

export function histogramCount(h: SparseHistogram): number {
  let n = 0;
  for (const c of h.cnt) n += c;
  return n;
}

/**
 * The q-quantile (0..1) in microseconds, interpolated linearly inside the bucket that
 * holds the rank, so the answer is within one bucket width of the true sample quantile.
 * Returns null for an empty histogram.
 */
export function histogramQuantile(h: SparseHistogram, q: number): number | null {
  const total = histogramCount(h);
  if (total === 0) return null;
  const rank = Math.min(Math.max(q, 0), 1) * total;
  let seen = 0;
  for (let k = 0; k < h.idx.length; k++) {
    const c = h.cnt[k]!;
    if (seen + c >= rank) {
      const i = h.idx[k]!;
      const lo = bucketLower(i);
      const hi = i + 1 < HIST_BUCKETS ? bucketUpper(i) : lo;
      return lo + ((hi - lo) * (rank - seen)) / c;
    }
    seen += c;
  }
  return bucketLower(h.idx[h.idx.length - 1]!);
}

export function isValidSparse(h: SparseHistogram): boolean {
  return h.idx.length === h.cnt.length && isValidSparsePrefix(h.idx, h.cnt, h.idx.length);
}

/** isValidSparse of the histogram in the first `n` entries of `idx` and `cnt` (arrays a reader reuses). */
export function isValidSparsePrefix(idx: readonly number[], cnt: readonly number[], n: number): boolean {
  let prev = -1;
  for (let k = 0; k < n; k++) {
    const i = idx[k]!;
    if (!Number.isInteger(i) || i <= prev || i >= HIST_BUCKETS) return false;
    const c = cnt[k]!;
    if (!Number.isSafeInteger(c) || c <= 0) return false;
    prev = i;
  }
  return true;
}

/**
 * `now - before`, bucket by bucket, for cumulative histograms read at two instants (the
 * kernel's per-socket histogram only grows). A bucket that shrank means the source was
 * reset; it is clamped to zero rather than going negative.
 */
export function subtractHistograms(now: SparseHistogram, before: SparseHistogram): SparseHistogram {
  const out = emptyHistogram();
  let j = 0;
  for (let k = 0; k < now.idx.length; k++) {
    const i = now.idx[k]!;
    while (j < before.idx.length && before.idx[j]! < i) j++;
    const prev = j < before.idx.length && before.idx[j] === i ? before.cnt[j]! : 0;
    const d = now.cnt[k]! - prev;
    if (d > 0) {
      out.idx.push(i);
      out.cnt.push(d);
    }
  }
  return out;
}
