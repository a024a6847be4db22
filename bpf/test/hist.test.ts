// The kernel (bpf/src/hist.h) and the schemas (bucketOf) must put every RTT sample in the
// same bucket, or histograms merged across the pipeline would be silently wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bucketOf, HIST_BUCKETS } from '@meshlens/schemas';

test('C bucket index equals bucketOf for every power-of-two boundary and a broad sweep', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mlbpf-hist-'));
  try {
    const exe = join(dir, 'hist');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', exe, fileURLToPath(new URL('./hist-harness.c', import.meta.url))]);
    const values = new Set<number>();
    for (let v = 0; v <= 70_000; v++) values.add(v);
    for (let e = 0; e < 32; e++) for (const d of [-1, 0, 1]) values.add(2 ** e + d);
    values.add(2 ** 32 - 1);
    // Deterministic spread over the whole u32 range (LCG), so no run differs from another.
    let x = 12345;
    for (let i = 0; i < 50_000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      values.add(x * 2 + (i & 1));
    }
    const input = [...values].filter((v) => v >= 0 && v < 2 ** 32);
    const out = execFileSync(exe, { input: input.join('\n') + '\n', maxBuffer: 64 << 20 }).toString().trim().split('\n').map(Number);
    assert.equal(out[0], HIST_BUCKETS, 'bucket count');
    assert.equal(out.length, input.length + 1);
    const mismatches = input.filter((v, i) => out[i + 1] !== bucketOf(v)).slice(0, 5);
    assert.deepEqual(mismatches.map((v) => ({ v, c: out[input.indexOf(v) + 1], ts: bucketOf(v) })), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
