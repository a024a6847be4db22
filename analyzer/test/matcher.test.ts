// The matching state machine on its own: what is held, what comes out when, and how a
// restored state skips what was already emitted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeHistograms } from '@meshlens/schemas';
import { HeldSide, Matcher, type FlowGroup } from '../src/index.js';
import { SLOT_MS, T0, connection } from './harness.js';

const A = { ip: '10.0.0.1', port: 40000, node: 'n1' };
const B = { ip: '10.0.0.2', port: 80, node: 'n2' };

describe('Matcher', () => {
  it('emits a connection as soon as both ends are in, and holds a lone end until the watermark passes its slot', () => {
    const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
    const c = connection(1, A, B, T0);
    const lone = connection(2, { ...A, port: A.port + 1 }, B, T0);
    const out: FlowGroup[] = [];
    m.add(HeldSide.of(c.server), 5, out);
    m.add(HeldSide.of(lone.client), 6, out);
    m.advance(out);
    assert.equal(out.length, 0);
    assert.equal(m.held, 2);
    m.add(HeldSide.of(c.client), 7, out);
    assert.deepEqual(out.map((g) => [g.client, g.server, g.late]), [[HeldSide.of(c.client), HeldSide.of(c.server), false]]);
    assert.equal(m.held, 1);
    // The slot's first offset holds the commit back while any record of the slot could be replayed.
    assert.equal(m.heldFromOffset(), 5);
    // One slot later is still within the grace period; two slots later closes it.
    m.add(HeldSide.of(connection(3, A, B, T0 + SLOT_MS).client), 8, out);
    m.advance(out);
    assert.equal(out.length, 1);
    m.add(HeldSide.of(connection(4, A, B, T0 + 2 * SLOT_MS).client), 9, out);
    m.advance(out);
    assert.deepEqual(out.slice(1).map((g) => [g.client, g.server, g.late]), [[HeldSide.of(lone.client), null, false]]);
    assert.equal(m.heldFromOffset(), 8);
  });

  it('joins ends swept into different slots within the grace period, and only lone ends of opposite sides', () => {
    const m = new Matcher({ graceMs: 2 * SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
    const c = connection(1, A, B, T0);
    const late = connection(1, A, B, T0 + SLOT_MS); // the server's sweep ran a slot late
    const out: FlowGroup[] = [];
    m.add(HeldSide.of(c.client), 1, out);
    m.add(HeldSide.of(late.server), 2, out);
    // The same connection's client again in the next slot: a lone client cannot take a client.
    const D = { ip: '10.0.0.4', port: 41000, node: 'n1' };
    m.add(HeldSide.of(connection(2, D, B, T0).client), 3, out);
    m.add(HeldSide.of(connection(2, D, B, T0 + SLOT_MS).client), 4, out);
    // Beyond the grace period: stays apart.
    const E = { ip: '10.0.0.5', port: 42000, node: 'n1' };
    m.add(HeldSide.of(connection(3, E, B, T0).client), 5, out);
    m.add(HeldSide.of(connection(3, E, B, T0 + 3 * SLOT_MS).server), 6, out);
    m.advanceTo(m.closeAllWatermark(), out);
    const shape = (g: FlowGroup) => [g.slotStartMs - T0, g.client?.local_ip ?? null, g.server ? g.server.slot_start_ms - T0 : null];
    assert.deepEqual(out.map(shape).sort(), [
      [0, '10.0.0.1', SLOT_MS],
      [0, '10.0.0.4', null],
      [0, '10.0.0.5', null],
      [SLOT_MS, '10.0.0.4', null],
      [3 * SLOT_MS, null, 3 * SLOT_MS],
    ].sort());
    assert.equal(m.held, 0);
  });

  it('emits a record for an already closed slot at once, flagged late', () => {
    const m = new Matcher({ graceMs: 0, maxHeld: 1000 }, { watermarkMs: T0 + SLOT_MS, emittedThrough: -1 });
    const out: FlowGroup[] = [];
    m.add(HeldSide.of(connection(1, A, B, T0).server), 3, out);
    assert.deepEqual(out.map((g) => [g.late, g.client, g.server !== null]), [[true, null, true]]);
    assert.equal(m.held, 0);
  });

  it('after a restore, skips records already emitted and holds the rest again', () => {
    const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: T0 + SLOT_MS, emittedThrough: 10 });
    const out: FlowGroup[] = [];
    assert.equal(m.add(HeldSide.of(connection(1, A, B, T0).client), 9, out), false);
    assert.equal(m.add(HeldSide.of(connection(2, A, B, T0 + SLOT_MS).client), 10, out), true);
    assert.equal(m.add(HeldSide.of(connection(3, A, B, T0).client), 11, out), true);
    assert.deepEqual(out.map((g) => g.late), [true]);
    assert.equal(m.held, 1);
  });

  it('after a restore, drops a group completed at or before the committed offset and emits one completed after it', () => {
    const records = [connection(1, A, B, T0), connection(2, { ...A, port: A.port + 1 }, B, T0)].flatMap((c) => [c.client, c.server]);
    const run = (m: Matcher, from: number, to: number) => {
      const out: FlowGroup[] = [];
      for (let offset = from; offset <= to; offset++) m.add(HeldSide.of(records[offset]!), offset, out);
      return out;
    };
    const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
    // A unit through offset 2: the first connection came out, the second's client is held.
    assert.equal(run(m, 0, 2).length, 1);
    const committed = { watermarkMs: m.watermarkMs, emittedThrough: 2, offset: m.heldFromOffset()! };
    const rest = run(m, 3, 3);
    assert.equal(committed.offset, 0);
    const restored = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, committed);
    assert.deepEqual(
      [0, 1, 2].map((offset) => restored.add(HeldSide.of(records[offset]!), offset, [])),
      [true, false, true],
    );
    const replayed = run(restored, 3, 3);
    assert.deepEqual(replayed.map((g) => [g.key, g.client?.local_port, g.server?.local_port]), rest.map((g) => [g.key, g.client?.local_port, g.server?.local_port]));
    assert.equal(replayed.length, 1);
    assert.equal(restored.held, 0);
  });

  it('keeps loopback connections of different network namespaces apart', () => {
    const m = new Matcher({ graceMs: 0, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
    const lo = (netns: number) => connection(1, { ip: '127.0.0.1', port: 40000, node: 'n1', netns }, { ip: '127.0.0.1', port: 80, node: 'n1', netns }, T0);
    const out: FlowGroup[] = [];
    for (const c of [lo(1), lo(2)]) {
      m.add(HeldSide.of(c.client), 1, out);
      m.add(HeldSide.of(c.server), 1, out);
    }
    m.advanceTo(m.closeAllWatermark(), out);
    assert.deepEqual(out.map((g) => [g.client?.owner.netns, g.server?.owner.netns]), [[1, 1], [2, 2]]);
  });

  it('keeps connections apart that share the end it keys them by, within a slot and when joining ends across slots', () => {
    const m = new Matcher({ graceMs: 2 * SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
    // One client socket, A (the higher port: the end the matcher keys by), to three servers.
    const server = (n: number) => ({ ip: `10.0.1.${n}`, port: 80, node: `s${n}` });
    const c1 = connection(1, A, server(1), T0);
    const c2 = connection(2, A, server(2), T0);
    const c3 = connection(3, A, server(3), T0);
    const c3Later = connection(3, A, server(3), T0 + SLOT_MS);
    const out: FlowGroup[] = [];
    // Slot T0: c1 takes A; c2 and c3 find it taken (c2's ends in either order); c3's server comes a slot later, where A is free.
    for (const [r, offset] of [[c1.client, 1], [c2.server, 2], [c3.client, 3], [c2.client, 4], [c1.server, 5], [c3Later.server, 6]] as const) {
      m.add(HeldSide.of(r), offset, out);
    }
    // c1 and c2 came out as their second ends arrived; c3's ends are a slot apart, each alone.
    assert.deepEqual([out.length, m.held], [2, 2]);
    m.advanceTo(m.closeAllWatermark(), out);
    const shape = (g: FlowGroup) => [g.slotStartMs - T0, g.client?.remote_ip ?? null, g.server?.local_ip ?? null, g.server ? g.server.slot_start_ms - T0 : null];
    assert.deepEqual(out.map(shape).sort(), [
      [0, '10.0.1.1', '10.0.1.1', 0],
      [0, '10.0.1.2', '10.0.1.2', 0],
      [0, '10.0.1.3', '10.0.1.3', SLOT_MS],
    ]);
    assert.equal(m.held, 0);
  });

  it('past maxHeld closes the oldest slot early, flagged, and a replay from the committed state closes it at the same record', () => {
    const feed = Array.from({ length: 5 }, (_, i) => connection(10 + i, { ...A, port: A.port + i }, B, T0 + (i < 3 ? 0 : SLOT_MS)));
    // Clients first, then servers: with room for 4 held records the fifth client closes slot T0
    // before any server arrived, so its three connections come out one-sided.
    const records = [...feed.map((c) => c.client), ...feed.map((c) => c.server)];
    const run = (m: Matcher, from: number, to = records.length - 1) => {
      const out: FlowGroup[] = [];
      for (let offset = from; offset <= to; offset++) {
        m.add(HeldSide.of(records[offset]!), offset, out);
        m.advance(out);
      }
      return out;
    };
    const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 4 }, { watermarkMs: 0, emittedThrough: -1 });
    const unit1 = run(m, 0, 4);
    const committed = { watermarkMs: m.watermarkMs, emittedThrough: 4, offset: m.heldFromOffset()! };
    const unit2 = run(m, 5);
    assert.deepEqual(unit1.map((g) => [g.slotStartMs, g.client !== null, g.server !== null, g.late, g.capFlushed]), [
      [T0, true, false, false, true],
      [T0, true, false, false, true],
      [T0, true, false, false, true],
    ]);
    // Nothing is lost: the servers of the closed slot come out late, the later slot's connections whole as their servers arrive.
    assert.deepEqual(unit2.map((g) => [g.client !== null, g.server?.local_port, g.late, g.capFlushed]), [
      [false, 80, true, false],
      [false, 80, true, false],
      [false, 80, true, false],
      [true, 80, false, false],
      [true, 80, false, false],
    ]);
    assert.equal(m.held, 0);

    // A restart from what the unit after offset 4 committed holds the same records and emits the same rest.
    assert.equal(committed.offset, 3);
    const restored = new Matcher({ graceMs: SLOT_MS, maxHeld: 4 }, committed);
    const replayed = run(restored, committed.offset);
    assert.equal(restored.held, m.held);
    assert.deepEqual(replayed.map((g) => [g.key, g.late, g.capFlushed]), unit2.map((g) => [g.key, g.late, g.capFlushed]));
  });

  it('adds up two records of one side in one slot (a reused 4-tuple), fields of the later one', () => {
    const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
    const first = connection(1, A, B, T0).client;
    const again = { ...connection(2, A, B, T0).client, opened: false, closed: true, min_rtt_us: first.min_rtt_us + 1 };
    const out: FlowGroup[] = [];
    m.add(HeldSide.of({ ...first, opened: true, closed: false }), 1, out);
    m.add(HeldSide.of(again), 2, out);
    assert.equal(m.held, 1);
    m.advanceTo(T0 + 1, out);
    const c = out[0]!.client!;
    assert.deepEqual(
      [c.bytes_sent, c.segs_received, c.retrans_segs, c.min_rtt_us, c.srtt_us, c.opened, c.closed, c.owner, c.local_port],
      [first.bytes_sent + again.bytes_sent, first.segs_received + again.segs_received, first.retrans_segs + again.retrans_segs, first.min_rtt_us, again.srtt_us, true, true, again.owner, A.port],
    );
    assert.deepEqual(HeldSide.histogram(c), mergeHistograms(first.rtt_hist, again.rtt_hist));
  });

  describe('an end left to the next slot whole while its peer was read in this one', () => {
    /**
     * One connection's records as the agents send them: `early` (the role read in slot 0,
     * open, then closing in slot 1) and the other end, closed before its agent read it and so
     * left whole to slot 1 (see joinEarlierEnd). Bytes from the sockets' own totals.
     */
    function records(early: 'client' | 'server') {
      const c = connection(1, A, B, T0);
      const whole = { client: c.client, server: c.server }[early === 'client' ? 'server' : 'client'];
      const mine = { client: c.client, server: c.server }[early];
      const zero = { bytes_sent: 0, bytes_received: 0, retrans_segs: 0, rto_count: 0, resets_sent: 0, resets_received: 0 };
      return {
        totals: { c2s: c.client.bytes_sent, s2c: c.client.bytes_received },
        sent: [
          { ...mine, opened: true, closed: false },
          { ...mine, ...zero, slot_start_ms: T0 + SLOT_MS, segs_sent: 1, segs_received: 1, opened: false, closed: true },
          { ...whole, slot_start_ms: T0 + SLOT_MS, opened: true, closed: true },
        ],
      };
    }

    /** Bytes per direction over every row, each row from the view rows.ts gives it. */
    function stored(out: FlowGroup[]) {
      let c2s = 0;
      let s2c = 0;
      for (const g of out) {
        c2s += g.client ? g.client.bytes_sent : g.server!.bytes_received;
        s2c += g.client ? g.client.bytes_received : g.server!.bytes_sent;
      }
      return { c2s, s2c };
    }

    for (const early of ['client', 'server'] as const) {
      it(`${early} read open first: one row at the earlier slot, every byte counted once`, () => {
        const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
        const { totals, sent } = records(early);
        const out: FlowGroup[] = [];
        sent.forEach((r, i) => m.add(HeldSide.of(r), i, out));
        assert.equal(out.length, 1, 'out as soon as both ends are in');
        m.advanceTo(m.closeAllWatermark(), out);
        assert.deepEqual(out.map((g) => [g.slotStartMs - T0, g.client !== null, g.server !== null]), [[0, true, true]]);
        assert.deepEqual(stored(out), totals);
        const mine = out[0]![early]!;
        assert.deepEqual([mine.opened, mine.closed, mine.segs_sent], [true, true, sent[0]!.segs_sent + 1]);
        assert.equal(m.held, 0);
      });
    }

    it('without the join the same records would count the early bytes twice (the check above can fail)', () => {
      const { totals, sent } = records('server');
      const lone: FlowGroup = { key: 0, slotStartMs: T0, slotMs: SLOT_MS, client: null, server: HeldSide.of(sent[0]!), late: false, capFlushed: false };
      const both: FlowGroup = { ...lone, slotStartMs: T0 + SLOT_MS, client: HeldSide.of(sent[2]!), server: HeldSide.of(sent[1]!) };
      assert.notDeepEqual(stored([lone, both]), totals);
    });

    it('leaves apart another socket on the same 4-tuple (a later end that opened, an earlier one that closed) and a connection that goes on', () => {
      const changes: { at: number[]; opened?: boolean; closed?: boolean }[] = [{ at: [1], opened: true }, { at: [0], closed: true }, { at: [1, 2], closed: false }];
      for (const change of changes) {
        const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
        const { sent } = records('server');
        const out: FlowGroup[] = [];
        const { at, ...fields } = change;
        sent.forEach((r, i) => m.add(HeldSide.of(at.includes(i) ? { ...r, ...fields } : r), i, out));
        m.advanceTo(m.closeAllWatermark(), out);
        assert.deepEqual(out.map((g) => [g.slotStartMs - T0, g.client !== null, g.server !== null]).sort(), [[0, false, true], [SLOT_MS, true, true]], JSON.stringify(change));
      }
    });

    it('after a restore, a join completed at or before the committed offset is dropped with its lone end', () => {
      const { sent } = records('server');
      const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
      sent.forEach((r, i) => m.add(HeldSide.of(r), i, []));
      const restored = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: 2 });
      const out: FlowGroup[] = [];
      assert.deepEqual(sent.map((r, i) => restored.add(HeldSide.of(r), i, out)), [true, true, false]);
      restored.advanceTo(restored.closeAllWatermark(), out);
      assert.deepEqual([out.length, restored.held], [0, 0]);
    });
  });

  describe("an end read open in the slot its peer closed in, whose close comes in the next", () => {
    /** The server closed within slot 0; the client, read open there, closes in slot 1. */
    function records() {
      const c = connection(1, A, B, T0);
      const zero = { bytes_sent: 0, bytes_received: 0, retrans_segs: 0, rto_count: 0, resets_sent: 0, resets_received: 0 };
      return [
        { ...c.server, opened: true, closed: true },
        { ...c.client, opened: true, closed: false },
        { ...c.client, ...zero, slot_start_ms: T0 + SLOT_MS, segs_sent: 1, segs_received: 1, opened: false, closed: true },
      ];
    }

    it('holds the group until its slot closes and takes the close in: one row, every segment counted', () => {
      const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
      const sent = records();
      const out: FlowGroup[] = [];
      sent.forEach((r, i) => m.add(HeldSide.of(r), i, out));
      assert.deepEqual([out.length, m.held], [0, 3], 'held: the client end may still close');
      m.advanceTo(m.closeAllWatermark(), out);
      assert.deepEqual(out.map((g) => [g.slotStartMs - T0, g.client !== null, g.server !== null]), [[0, true, true]]);
      const c = out[0]!.client!;
      assert.deepEqual([c.opened, c.closed, c.segs_sent, c.segs_received, c.bytes_sent], [true, true, sent[1]!.segs_sent + 1, sent[1]!.segs_received + 1, sent[1]!.bytes_sent]);
      assert.equal(m.held, 0);
    });

    it('leaves apart a later record that opened (another socket on the same 4-tuple)', () => {
      const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
      const out: FlowGroup[] = [];
      records().forEach((r, i) => m.add(HeldSide.of(i === 2 ? { ...r, opened: true } : r), i, out));
      m.advanceTo(m.closeAllWatermark(), out);
      assert.deepEqual(out.map((g) => [g.slotStartMs - T0, g.client !== null, g.server !== null]), [[0, true, true], [SLOT_MS, true, false]]);
      assert.equal(m.held, 0);
    });

    it('takes nothing in once both ends closed (a record of a reused 4-tuple closed the open end)', () => {
      const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
      const [server, client] = records();
      const out: FlowGroup[] = [];
      const later = { ...server!, slot_start_ms: T0 + SLOT_MS, opened: false, closed: false };
      [server!, client!, { ...client!, closed: true }, later].forEach((r, i) => m.add(HeldSide.of(r), i, out));
      m.advanceTo(m.closeAllWatermark(), out);
      assert.deepEqual(out.map((g) => [g.slotStartMs - T0, g.client !== null, g.server !== null]), [[0, true, true], [SLOT_MS, false, true]]);
    });

    it('after a restore, holds the group again and emits it once, at its slot\'s close', () => {
      const sent = records();
      const m = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: 0, emittedThrough: -1 });
      const before: FlowGroup[] = [];
      sent.forEach((r, i) => m.add(HeldSide.of(r), i, before));
      const restored = new Matcher({ graceMs: SLOT_MS, maxHeld: 1000 }, { watermarkMs: m.watermarkMs, emittedThrough: 2 });
      const after: FlowGroup[] = [];
      assert.deepEqual(sent.map((r, i) => restored.add(HeldSide.of(r), i, after)), [true, true, true]);
      restored.advanceTo(restored.closeAllWatermark(), after);
      assert.deepEqual([before.length, after.length, restored.held], [0, 1, 0]);
    });
  });
});
