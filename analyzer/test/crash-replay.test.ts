// Exactly once in effect: the analyzer (a child process) is stopped right after ClickHouse
// acknowledged an insert and before the offsets were committed, then SIGKILLed, ten times
// while data keeps arriving. After a clean final run, ClickHouse holds every record once:
// no duplicate rows, none missing, rollups equal to the raw rows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sampleDnsRecords, sampleTcpEvents, type TcpRecord } from '@meshlens/schemas';
import { SLOT_MS, T0, connection, createEnv, produceDns, produceEvents, produceTcp, query, spawnAnalyzer, waitForRows, type TestEnv } from './harness.js';

const CYCLES = 10;
const PAIRS = 30;
const DNS = 20;
const EVENTS = 10;

describe('crash between insert and commit, then replay', () => {
  let env: TestEnv;

  before(async () => {
    env = await createEnv();
  });

  after(async () => {
    await env.cleanup();
  });

  /** One wave of traffic in its own slot; the two ends of each connection travel in separate messages. */
  async function wave(w: number): Promise<void> {
    const slot = T0 + w * SLOT_MS;
    const pairs = Array.from({ length: PAIRS }, (_, i) =>
      connection(w * 1000 + i, { ip: `10.1.${w}.${i + 1}`, port: 40000 + i, node: 'n1' }, { ip: '10.2.0.1', port: 8080, node: 'n2' }, slot),
    );
    const clients: TcpRecord[] = pairs.map((p) => p.client);
    await produceTcp(env, clients);
    await produceTcp(env, pairs.map((p) => p.server));
    await produceDns(env, sampleDnsRecords(DNS, w + 1, slot));
    await produceEvents(env, sampleTcpEvents(EVENTS, w + 1, slot));
  }

  it('stores every record exactly once after ten kills at the worst moment', async () => {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      await wave(cycle);
      const child = spawnAnalyzer(env, { MESHLENS_ANALYZER_HALT_BEFORE_COMMIT_AFTER_INSERTS: String(1 + (cycle % 3)) });
      const outcome = await Promise.race([child.halted.then(() => 'halted'), child.exited.then(() => 'exited')]);
      assert.equal(outcome, 'halted', `cycle ${cycle}: the analyzer exited instead of reaching the crash point`);
      process.kill(child.pid, 'SIGKILL');
      assert.deepEqual(await child.exited, { code: null, signal: 'SIGKILL' });
    }
    const survivor = spawnAnalyzer(env);
    const total = { flows: CYCLES * PAIRS, dns: CYCLES * DNS, events: CYCLES * EVENTS };
    await waitForRows<{ n: number[] }>(
      env,
      'SELECT [(SELECT count() FROM tcp_flows), (SELECT count() FROM dns_queries), (SELECT count() FROM tcp_events)] AS n',
      // At least everything: a duplicate must fail the exact counts below, not time out here.
      (r) => [total.flows, total.dns, total.events].every((want, i) => Number(r[0]?.n[i] ?? 0) >= want),
      120_000,
    );
    process.kill(survivor.pid, 'SIGTERM');
    assert.equal((await survivor.exited).code, 0);

    const [counts] = await query<{ n: number[] }>(env, 'SELECT [(SELECT count() FROM dns_queries), (SELECT count() FROM tcp_events)] AS n');
    assert.deepEqual(counts!.n.map(Number), [total.dns, total.events]);
    const [flows] = await query<{ n: number[] }>(
      env,
      "SELECT [count(), uniqExact(conn_key, slot_start), countIf(observed = 'both'), countIf(late)] AS n FROM tcp_flows",
    );
    assert.deepEqual(flows!.n.map(Number), [total.flows, total.flows, total.flows, 0]);
    const [others] = await query<{ n: number[] }>(
      env,
      'SELECT [(SELECT uniqExact(ts, qname, client_port) FROM dns_queries), (SELECT uniqExact(ts, local_port) FROM tcp_events)] AS n',
    );
    assert.deepEqual(others!.n.map(Number), [total.dns, total.events]);
    // The views below the raw tables were deduplicated with them.
    const [rollups] = await query<{ n: number[] }>(
      env,
      'SELECT [(SELECT sum(flows) FROM flows_by_service_1m), (SELECT sum(flows) FROM flows_by_zone_1m), (SELECT sum(flows) FROM flows_by_node_1m), (SELECT sum(queries) FROM dns_by_server_1m)] AS n',
    );
    assert.deepEqual(rollups!.n.map(Number), [total.flows, total.flows, total.flows, total.dns]);
  });
});
