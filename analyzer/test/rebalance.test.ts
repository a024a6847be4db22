// Two analyzers share the partitions; one leaves mid-stream while it holds unmatched halves
// of connections. The other takes its partitions over from the committed offsets and the
// held state they describe: every connection still ends up as one matched row, once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Analyzer } from '../src/index.js';
import { PARTITIONS, SLOT_MS, T0, connection, createEnv, produceTcp, query, until, waitForRows, type TestEnv } from './harness.js';

const WAVES = 6;
const PAIRS = 40;

describe('partitions moving between analyzers', () => {
  let env: TestEnv;

  before(async () => {
    env = await createEnv();
  });

  after(async () => {
    await env.cleanup();
  });

  it('matches every connection exactly once across a rebalance', async () => {
    // A long idle flush: a half is held until its other end arrives or the watermark closes
    // its slot, so the leaving analyzer certainly holds some when it goes.
    const leave = await env.start({ idleFlushMs: 60_000 });
    const stay = await env.start({ idleFlushMs: 60_000 });
    const tcpPartitions = (a: Analyzer) => a.assigned()[env.topics.tcp] ?? [];
    await until('both analyzers share the tcp partitions', () => tcpPartitions(leave).length > 0 && tcpPartitions(stay).length > 0 && tcpPartitions(leave).length + tcpPartitions(stay).length === PARTITIONS);
    for (let w = 0; w < WAVES; w++) {
      const pairs = Array.from({ length: PAIRS }, (_, i) => connection(w * 100 + i, { ip: `10.3.${w}.${i + 1}`, port: 40000 + i, node: 'n1' }, { ip: '10.4.0.1', port: 443, node: 'n2' }, T0 + w * SLOT_MS));
      await produceTcp(env, pairs.map((p) => p.client));
      if (w === WAVES / 2) {
        // The clients of this wave are in; wait until the leaving analyzer holds its share of them.
        const heldByLeave = async () => (await leave.metrics.held.get()).values.filter((v) => String(v.labels.partition).startsWith(`${env.topics.tcp}/`)).reduce((a, v) => a + v.value, 0);
        await until('the leaving analyzer holds unmatched halves', async () => (await heldByLeave()) > 0);
        await leave.stop();
      }
      await produceTcp(env, pairs.map((p) => p.server));
    }
    // The last slots close by the idle flush of the remaining analyzer (60 s) or, sooner, by
    // a later slot: one more client-only record per partition moves every watermark on.
    await produceTcp(env, Array.from({ length: 12 }, (_, i) => connection(9000 + i, { ip: `10.9.0.${i + 1}`, port: 50000 + i, node: 'n1' }, { ip: '10.4.0.1', port: 443, node: 'n2' }, T0 + (WAVES + 2) * SLOT_MS).client));
    const total = WAVES * PAIRS;
    await waitForRows<{ n: string }>(env, `SELECT toString(count()) AS n FROM tcp_flows WHERE slot_start < fromUnixTimestamp64Milli(${T0 + WAVES * SLOT_MS})`, (r) => Number(r[0]?.n ?? 0) >= total, 90_000);
    const [row] = await query<{ n: number[] }>(
      env,
      `SELECT [count(), uniqExact(conn_key, slot_start), countIf(observed = 'both')] AS n FROM tcp_flows WHERE slot_start < fromUnixTimestamp64Milli(${T0 + WAVES * SLOT_MS})`,
    );
    assert.deepEqual(row!.n.map(Number), [total, total, total]);
  });
});
