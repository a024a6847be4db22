// Both ends of a connection must have records in the same slots, or the analyzer sees a
// one-sided flow. The sweep reads the kernel's socket map while connections open and close
// right after a slot boundary, and that read is not a snapshot. Real loopback connections
// in a lab namespace, one agent scoped to it; ground truth is the pairing of the two ends.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { Lines } from '@meshlens/e2e/netlab';
import { connectionKey, type TcpRecord } from '@meshlens/schemas';
import { msUntilNextSlot, slotStart } from '../src/slots.js';
import { scrapeMetrics, socketLab } from './support/socket-lab.js';

const SLOT_MS = 1000;

interface Run {
  records: TcpRecord[];
  /** Sockets the kernel map had no room for (an end missing for a reason other than ours). */
  overflows(): Promise<number>;
  /** SIGTERM (which sweeps the unfinished slot) and every record written. */
  stop(): Promise<TcpRecord[]>;
}

/** (connection, slot) pairs whose ends do not have the same number of records. */
function oneSided(records: TcpRecord[]): { key: string; client: number; server: number }[] {
  // Ports can be reused over many connections, so one key and slot may hold more than one
  // pair of ends: compare counts.
  const ends = new Map<string, { client: number; server: number }>();
  for (const r of records) {
    const k = `${connectionKey(r.local, r.remote)} ${r.slot_start_ms}`;
    const e = ends.get(k) ?? { client: 0, server: 0 };
    e[r.role] += 1;
    ends.set(k, e);
  }
  return [...ends].filter(([, e]) => e.client !== e.server).map(([key, e]) => ({ key, ...e }));
}

describe('records of connections around a slot boundary', () => {
  const env = socketLab('hag2');

  async function startAgent(): Promise<Run> {
    const { agent, metricsUrl } = await env.startAgent('close', SLOT_MS, 'pipe');
    // What attached is in /metrics: here, on a kernel that takes the whole object, every program.
    const attached = [...(await scrapeMetrics(metricsUrl))].filter(([k]) => k.startsWith('meshlens_agent_program_attached{'));
    assert.ok(attached.length >= 8 && attached.every(([, v]) => v === 1), JSON.stringify(attached));
    for (const p of ['ml_sockops', 'ml_connect4']) assert.ok(attached.some(([k]) => k === `meshlens_agent_program_attached{program="${p}"}`), p);
    const records: TcpRecord[] = [];
    const lines = createInterface({ input: agent.stdout! });
    lines.on('line', (line) => {
      const r = JSON.parse(line) as TcpRecord & { type: string };
      if (r.type === 'tcp') records.push(r);
    });
    const collected = once(lines, 'close');
    return {
      records,
      async overflows() {
        return (await scrapeMetrics(metricsUrl)).get('meshlens_agent_kernel_counter{counter="sock_map_full"}') ?? 0;
      },
      async stop() {
        const exited = once(agent, 'exit');
        agent.kill('SIGTERM');
        await exited;
        await collected;
        return records;
      },
    };
  }

  it('closed just after a boundary: both ends have records in the same slots', async (t) => {
    const run = await startAgent();
    const connections = 5000;
    const holder = env.lab.host('node').spawn(env.sockets, ['hold', String(connections)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Lines(holder, holder.stdout!).next((l) => l === 'ready', 60_000);
    // Past the first sweep that sees them all, then the close: all 10,000 ends close within
    // milliseconds after a boundary, while that boundary's sweep is reading the map.
    await new Promise((r) => setTimeout(r, msUntilNextSlot(Date.now(), SLOT_MS) + SLOT_MS + 2));
    const closedAt = Date.now();
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    await new Promise((r) => setTimeout(r, msUntilNextSlot(Date.now(), SLOT_MS) + SLOT_MS / 2)); // its sweep has run
    const lost = await run.overflows();
    const records = await run.stop();

    // Only the slots from the close on: the connections were opened back to back, and one
    // opened across a boundary (see the next case) is not what this case is about.
    const closing = records.filter((r) => r.slot_start_ms >= slotStart(closedAt, SLOT_MS));
    const closed = closing.filter((r) => r.closed).length;
    const bad = oneSided(closing);
    t.diagnostic(`${records.length} records, ${closing.length} after the close (${closed} with closed set), ${lost} overflows, ${bad.length} one-sided`);
    assert.equal(lost, 0, 'every end fit in the kernel map');
    assert.ok(records.filter((r) => r.opened).length === 2 * connections, 'both ends of every connection opened');
    assert.ok(closed >= connections, `only ${closed} of ${2 * connections} ends report their close: the close was not seen`);
    assert.deepEqual(bad.slice(0, 5), [], `${bad.length} (connection, slot) pairs are one-sided`);
  });

  it('opened and closed back to back across boundaries: one-sided only when the two ends opened on either side of one', async (t) => {
    const run = await startAgent();
    // Paced so that our own closed sockets, kept until the next sweep, never fill the kernel
    // map; 4 s at 1 s slots crosses three or four boundaries.
    const connections = 20_000;
    const rate = 5000;
    await env.lab.host('node').exec(env.sockets, ['churn', String(connections), String(rate)], { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, msUntilNextSlot(Date.now(), SLOT_MS) + SLOT_MS / 2));
    const lost = await run.overflows();
    const records = await run.stop();

    const slots = new Set(records.map((r) => r.slot_start_ms)).size;
    const bad = oneSided(records);
    t.diagnostic(`${records.length} records, ${lost} overflows, ${slots} slots, ${bad.length} one-sided (connection, slot) pairs`);
    assert.equal(lost, 0, 'every end fit in the kernel map');
    assert.equal(records.filter((r) => r.opened).length, 2 * connections, 'both ends of every connection opened');
    assert.ok(slots >= 3, `the load spanned only ${slots} slots: fewer than two boundaries crossed under load`);
    // A connection whose client opened just before a boundary and whose server end (made
    // microseconds later, at ESTABLISHED) just after it belongs to two slots on any slot
    // clock: we measured 2-18 pairs per run (more when the machine is overloaded and sweeps
    // run late) and allow 40 (0.1% of the ends). A sweep that reports whichever end its read
    // of the map happened to find made 150 pairs one-sided in a run like this one (and 1-2%
    // of all at higher rates).
    assert.ok(bad.length <= connections / 500, `${bad.length} one-sided (connection, slot) pairs: ${JSON.stringify(bad.slice(0, 3))}`);
  });
});
