import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  HIST_BUCKETS,
  bucketLower,
  bucketOf,
  bucketUpper,
  fromDense,
  fromSamples,
  histogramCount,
  histogramQuantile,
  mergeHistograms,
  seededRandom,
  subtractHistograms,
  toBucketRun,
} from '@meshlens/schemas';

describe('RTT histogram layout', () => {
  it('places every value inside its bucket bounds, across the whole range', () => {
    const values = [0, 1, 15, 16, 31, 32, 33, 1000, 40_000, 2 ** 25, 2 ** 26 - 1];
    for (let e = 4; e <= 26; e++) values.push(2 ** e - 1, 2 ** e, 2 ** e + 1);
    for (const v of values) {
      const i = bucketOf(v);
      assert.ok(i >= 0 && i < HIST_BUCKETS, `bucket ${i} of ${v} out of range`);
      assert.ok(bucketLower(i) <= v && v < bucketUpper(i), `${v} not in [${bucketLower(i)}, ${bucketUpper(i)}) of bucket ${i}`);
    }
  });

  it('is monotonic and contiguous: each bucket starts where the previous ends', () => {
    for (let i = 1; i < HIST_BUCKETS; i++) {
      assert.equal(bucketLower(i), bucketUpper(i - 1));
      assert.equal(bucketOf(bucketLower(i)), i);
      assert.equal(bucketOf(bucketLower(i) - 1), i - 1);
    }
  });

  it('keeps every bucket within 1/16 of its lower bound', () => {
    for (let i = 16; i < HIST_BUCKETS - 1; i++) {
      assert.ok((bucketUpper(i) - bucketLower(i)) / bucketLower(i) <= 1 / 16 + 1e-12);
    }
  });

  it('clamps values beyond the range to the last bucket', () => {
    assert.equal(bucketOf(2 ** 30), HIST_BUCKETS - 1);
    assert.equal(bucketOf(-5), 0);
  });

  it('gives quantiles within one bucket of the exact sample quantile, also after merging', () => {
    const rnd = seededRandom(7);
    const a = Array.from({ length: 5000 }, () => 300 + rnd() * 40_000);
    const b = Array.from({ length: 3000 }, () => 20_000 + rnd() * 500);
    const merged = mergeHistograms(fromSamples(a), fromSamples(b));
    assert.equal(histogramCount(merged), 8000);
    const all = [...a, ...b].sort((x, y) => x - y);
    for (const q of [0.1, 0.5, 0.9, 0.99]) {
      const exact = all[Math.ceil(q * all.length) - 1]!;
      const est = histogramQuantile(merged, q)!;
      const width = bucketUpper(bucketOf(exact)) - bucketLower(bucketOf(exact));
      assert.ok(Math.abs(est - exact) <= width, `q${q}: estimate ${est} vs exact ${exact}, bucket width ${width}`);
    }
    assert.equal(histogramQuantile(fromSamples([]), 0.5), null);
  });
});

describe('histogram deltas', () => {
  it('subtracts an earlier reading of a cumulative histogram bucket by bucket', () => {
    const before = fromSamples([100, 100, 5000]);
    const now = mergeHistograms(before, fromSamples([100, 300, 300, 70_000]));
    assert.deepEqual(subtractHistograms(now, before), fromSamples([100, 300, 300, 70_000]));
    assert.deepEqual(subtractHistograms(now, now), { idx: [], cnt: [] });
    // A reset source (counts went down) yields no negative counts.
    assert.deepEqual(subtractHistograms(before, now), { idx: [], cnt: [] });
  });
});

describe('RTT histogram run form (how tcp_flows stores it)', () => {
  it('round-trips any sparse histogram, empty and single-bucket ones included', () => {
    const rnd = seededRandom(7);
    const cases = [fromSamples([]), fromSamples([500]), fromSamples([0, 2 ** 26])];
    for (let n = 0; n < 200; n++) cases.push(fromSamples(Array.from({ length: 1 + Math.floor(rnd() * 50) }, () => 50 * 2 ** (rnd() * 12))));
    for (const h of cases) {
      const run = toBucketRun(h);
      assert.equal(run.counts.length, h.idx.length === 0 ? 0 : h.idx.at(-1)! - h.idx[0]! + 1);
      if (h.idx.length > 0) assert.ok(run.counts[0]! > 0 && run.counts.at(-1)! > 0, 'a run starts and ends on an occupied bucket');
      assert.deepEqual(fromDense(run.counts, run.first), h);
    }
  });
});
