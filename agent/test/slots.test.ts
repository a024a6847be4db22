import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { everySlot, msUntilNextSlot, slotStart } from '../src/slots.js';

describe('wall-clock slots', () => {
  it('aligns any instant to the slot that contains it', () => {
    assert.equal(slotStart(1_763_600_009_999, 10_000), 1_763_600_000_000);
    assert.equal(slotStart(1_763_600_010_000, 10_000), 1_763_600_010_000);
    assert.equal(msUntilNextSlot(1_763_600_003_000, 10_000), 7_000);
  });

  it('fires just after each boundary and reports the slot that ended', async () => {
    const slotMs = 200;
    const fired: { ended: number; at: number }[] = [];
    await new Promise<void>((resolve) => {
      const stop = everySlot(slotMs, (ended) => {
        fired.push({ ended, at: Date.now() });
        if (fired.length === 3) {
          stop();
          resolve();
        }
      });
    });
    for (const f of fired) {
      assert.equal(f.ended % slotMs, 0);
      assert.ok(f.at >= f.ended + slotMs, 'fires only after the slot ended');
      assert.ok(f.at - (f.ended + slotMs) < 100, `late by ${f.at - (f.ended + slotMs)} ms`);
    }
    assert.deepEqual(fired.map((f, i) => f.ended - fired[0]!.ended - i * slotMs), [0, 0, 0]);
  });
});
