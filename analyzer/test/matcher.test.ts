// The matching state machine on its own: what is held, what comes out when, and how a
// restored state skips what was already emitted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Matcher, type FlowGroup } from '../src/index.js';
import { SLOT_MS, T0, connection } from './harness.js';

const A = { ip: '10.0.0.1', port: 40000, node: 'n1' };
const B = { ip: '10.0.0.2', port: 80, node: 'n2' };

describe('Matcher', () => {
  it('holds both ends of a connection until the watermark passes their slot, then emits one group', () => {
    const m = new Matcher(SLOT_MS, { watermarkMs: 0, emittedThrough: -1 });
    const c = connection(1, A, B, T0);
    const out: FlowGroup[] = [];
    m.add(c.server, 5, out);
    m.add(c.client, 6, out);
    m.advance(out);
    assert.equal(m.held, 2);
    assert.equal(m.heldFromOffset(), 5);
    // One slot later is still within the grace period; two slots later closes it.
    m.add(connection(2, A, B, T0 + SLOT_MS).client, 7, out);
    m.advance(out);
    assert.equal(out.length, 0);
    m.add(connection(3, A, B, T0 + 2 * SLOT_MS).client, 8, out);
    m.advance(out);
    assert.equal(out.length, 1);
    assert.deepEqual([out[0]!.client, out[0]!.server, out[0]!.late], [c.client, c.server, false]);
    assert.equal(m.heldFromOffset(), 7);
  });

  it('emits a record for an already closed slot at once, flagged late', () => {
    const m = new Matcher(0, { watermarkMs: T0 + SLOT_MS, emittedThrough: -1 });
    const out: FlowGroup[] = [];
    m.add(connection(1, A, B, T0).server, 3, out);
    assert.deepEqual(out.map((g) => [g.late, g.client, g.server !== null]), [[true, null, true]]);
    assert.equal(m.held, 0);
  });

  it('after a restore, skips records already emitted and holds the rest again', () => {
    const m = new Matcher(SLOT_MS, { watermarkMs: T0 + SLOT_MS, emittedThrough: 10 });
    const out: FlowGroup[] = [];
    assert.equal(m.add(connection(1, A, B, T0).client, 9, out), false);
    assert.equal(m.add(connection(2, A, B, T0 + SLOT_MS).client, 10, out), true);
    assert.equal(m.add(connection(3, A, B, T0).client, 11, out), true);
    assert.deepEqual(out.map((g) => g.late), [true]);
    assert.equal(m.held, 1);
  });

  it('keeps loopback connections of different network namespaces apart', () => {
    const m = new Matcher(0, { watermarkMs: 0, emittedThrough: -1 });
    const lo = (netns: number) => connection(1, { ip: '127.0.0.1', port: 40000, node: 'n1', netns }, { ip: '127.0.0.1', port: 80, node: 'n1', netns }, T0);
    const out: FlowGroup[] = [];
    for (const c of [lo(1), lo(2)]) {
      m.add(c.client, 1, out);
      m.add(c.server, 1, out);
    }
    m.advanceTo(m.closeAllWatermark(), out);
    assert.deepEqual(out.map((g) => [g.client?.owner.netns, g.server?.owner.netns]), [[1, 1], [2, 2]]);
  });
});
