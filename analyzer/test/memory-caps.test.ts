// The analyzer's memory bounds at work with real Kafka and ClickHouse: a partition holding
// more records than maxHeldRecords releases its oldest slot early instead of growing, and
// DNS-learnt names beyond maxDnsNames are evicted; both are counted in /metrics, and every
// record produced still ends up in a stored row.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sampleDnsRecords } from '@meshlens/schemas';
import type { Analyzer } from '../src/index.js';
import { T0, connection, createEnv, produceDns, produceTcp, query, until, waitForRows, type TestEnv } from './harness.js';

const CONNECTIONS = 30;
const MAX_HELD = 4;

describe('memory caps', () => {
  let env: TestEnv;
  let analyzer: Analyzer;

  before(async () => {
    env = await createEnv();
    analyzer = await env.start({ maxHeldRecords: MAX_HELD, maxDnsNames: 2 });
  });

  after(async () => {
    await env.cleanup();
  });

  const metricsText = async () => (await fetch(`http://127.0.0.1:${analyzer.httpPort}/metrics`)).text();
  const metricValue = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? null : Number(line.slice(series.length + 1));
  };

  it('releases held records early past maxHeldRecords, counts them, and stores every record', async () => {
    const conns = Array.from({ length: CONNECTIONS }, (_, i) => connection(i, { ip: `10.7.0.${i + 1}`, port: 41000 + i, node: 'n1' }, { ip: '10.7.1.1', port: 80, node: 'n2' }, T0));
    // Every client before any server: without the cap each partition would hold all its clients.
    await produceTcp(env, [...conns.map((c) => c.client), ...conns.map((c) => c.server)]);
    const rows = await waitForRows<{ observed: string; late: boolean; n: string }>(
      env,
      'SELECT observed, late, toString(count()) AS n FROM tcp_flows GROUP BY observed, late ORDER BY observed, late',
      (r) => r.reduce((a, x) => a + Number(x.n) * (x.observed === 'both' ? 2 : 1), 0) >= 2 * CONNECTIONS,
    );
    const sides = rows.reduce((a, x) => a + Number(x.n) * (x.observed === 'both' ? 2 : 1), 0);
    assert.equal(sides, 2 * CONNECTIONS, 'every record produced is in exactly one stored row');
    const [dups] = await query<{ n: string }>(env, 'SELECT toString(count()) AS n FROM (SELECT client_port, observed FROM tcp_flows GROUP BY client_port, observed HAVING count() > 1)');
    assert.equal(dups!.n, '0');

    // Rows released by the cap are the one-sided rows that are not late; the rest of their slot came late.
    const early = rows.filter((r) => !r.late && r.observed !== 'both').reduce((a, x) => a + Number(x.n), 0);
    assert.ok(early > 0, 'the cap was reached');
    const text = await metricsText();
    assert.equal(metricValue(text, 'meshlens_analyzer_memory_cap_flushed_records_total'), early);
    assert.equal(metricValue(text, 'meshlens_analyzer_unmatched_total{reason="memory_cap"}'), early);
  });

  it('evicts DNS-learnt names past maxDnsNames and counts the evictions', async () => {
    const answers = ['203.0.113.1', '203.0.113.2', '203.0.113.3'].map((ip, i) => ({ ...sampleDnsRecords(1, 9, T0 + i)[0]!, rcode: 0, timed_out: false, qname: `ext-${i}.example`, answers: [ip] }));
    await produceDns(env, answers);
    await until('the third name evicts the first', async () => metricValue(await metricsText(), 'meshlens_analyzer_dns_names_evicted_total') === 1);
  });
});
