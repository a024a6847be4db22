/** The triage rules on hand-made aggregates: when a change counts, and which nodes explain it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fromSamples } from '@meshlens/schemas';
import { failureRate, type Agg } from '../src/api/health.js';
import { confiningNodes, RULES, worsening, type Cell } from '../src/api/triage-rules.js';

function agg(opened: number, failures: number, rttUs: number[] = []): Agg {
  const h = fromSamples(rttUs);
  return { flows: opened, opened, bytes_c2s: 0, bytes_s2c: 0, segments: 0, retransmits: 0, resets: 0, connect_failures: failures, syn_timeouts: 0, client_rtt: h, server_rtt: { idx: [], cnt: [] } };
}
const cell = (clientNode: string, serverNode: string, a: Agg): Cell => ({ clientNode, serverNode, agg: a });

describe('triage rules', () => {
  it('counts a SYN timeout as a troubled attempt, not as an attempt more (it opened)', () => {
    // 8 opened, 2 of them after SYN retransmits, 2 refused: 4 troubled attempts of 10.
    assert.equal(failureRate({ ...agg(8, 2), syn_timeouts: 2 }), 4 / 10);
    assert.equal(failureRate(agg(0, 0)), null);
  });

  it('counts a change only when it is both relatively and absolutely worse', () => {
    const rule = RULES.connectivity;
    assert.equal(worsening(0.04, 0, rule), null, 'below the absolute floor');
    assert.equal(worsening(0.3, 0.2, rule), null, 'less than twice the baseline');
    assert.equal(worsening(0.5, 0.1, rule), (0.5 - 0.1) / 0.1);
    assert.equal(worsening(0.5, null, rule), (0.5 - 0) / rule.floor, 'no baseline: measured against the floor');
    assert.equal(worsening(null, 0.1, rule), null);
  });

  it('confines failures to the one node that has them', () => {
    const cells = [cell('a1', 'b1', agg(10, 0)), cell('a2', 'b1', agg(10, 0)), cell('a1', 'b2', agg(0, 10)), cell('a2', 'b2', agg(0, 10))];
    assert.deepEqual(confiningNodes(cells, agg(40, 0), 'connectivity'), ['b2']);
  });

  it('calls a slowdown of every node pair zone-wide', () => {
    const slow = [4000, 4100, 4200];
    const cells = [cell('a1', 'c1', agg(1, 0, slow)), cell('a1', 'c2', agg(1, 0, slow)), cell('a2', 'c1', agg(1, 0, slow)), cell('a2', 'c2', agg(1, 0, slow))];
    assert.equal(confiningNodes(cells, agg(4, 0, [1000, 1050, 1100]), 'latency'), null);
  });
});
